"""Athena's validation checks: the workgroup, the Glue database, a real query, and where its
results land. Each raises CheckFailed / CheckWarning with what to fix."""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from byob.aws.sessions import aws_error_code
from byob.destinations.glue import GlueCatalog
from byob.domain.connections import Connection
from byob.domain.layout import join
from byob.errors import DestinationError

_DENIED = ("AccessDeniedException", "AccessDenied", "403")


class CheckFailed(Exception):
    def __init__(
        self, message: str, aws_code: str | None = None, *, operator_note: str = ""
    ) -> None:
        super().__init__(message)
        self.message, self.aws_code = message, aws_code
        # What only byob's operator can act on (byob's own configuration): never shown to
        # a recipient, who sees `message` alone.
        self.operator_note = operator_note


class CheckWarning(CheckFailed):
    """Nothing is known to be wrong, but something deserves the recipient's attention."""


def output_location(conn: Connection) -> str:
    return f"s3://{join(conn.bucket, conn.database, 'athena_output')}/"


class AthenaChecks:
    def __init__(
        self, *, conn: Connection, athena: Any, glue: Any, who: str, timeout: float
    ) -> None:
        self.conn = conn
        self.athena = athena
        self.glue = glue
        self.who = who
        self.timeout = timeout
        self.query_id: str | None = None

    def _denied(self, exc: BaseException, action: str, resource: str) -> CheckFailed:
        code = aws_error_code(exc)
        if code in _DENIED:
            return CheckFailed(
                f"AccessDeniedException on {action}: the permissions policy attached to "
                f"{self.who} must allow {action} on {resource}",
                "AccessDeniedException",
            )
        return CheckFailed(f"{code} on {action}: {exc}", code)

    def workgroup(self) -> str:
        wg = self.conn.workgroup
        arn = f"arn:aws:athena:{self.conn.region}:{self.conn.account_id}:workgroup/{wg}"
        try:
            found = self.athena.get_work_group(WorkGroup=wg).get("WorkGroup")
        except ClientError as exc:
            if aws_error_code(exc) == "InvalidRequestException":
                raise CheckFailed(
                    f"workgroup {wg!r} does not exist in {self.conn.region}; create it or use "
                    "'primary'",
                    "InvalidRequestException",
                ) from exc
            raise self._denied(exc, "athena:GetWorkGroup", arn) from exc
        except BotoCoreError as exc:
            raise self._denied(exc, "athena:GetWorkGroup", arn) from exc
        if not found:  # some endpoints answer an empty document rather than an error
            raise CheckFailed(
                f"workgroup {wg!r} does not exist in {self.conn.region}; create it or use 'primary'",
                "InvalidRequestException",
            )
        config = found.get("Configuration", {})
        if config.get("ManagedQueryResultsConfiguration", {}).get("Enabled"):
            raise CheckFailed(
                f"workgroup {wg!r} uses Athena managed query results, so results cannot land "
                f"in {output_location(self.conn)}; turn managed results off or pick another "
                "workgroup",
                "ManagedQueryResults",
            )
        enforced = config.get("EnforceWorkGroupConfiguration", False)
        their_location = config.get("ResultConfiguration", {}).get("OutputLocation", "")
        if (
            enforced
            and their_location
            and not their_location.startswith(output_location(self.conn))
        ):
            raise CheckWarning(
                f"workgroup {wg!r} enforces its own result location {their_location}: query "
                f"results will go there, not to {output_location(self.conn)}; the role must be "
                "allowed to write there too",
                "EnforceWorkGroupConfiguration",
            )
        return f"workgroup {wg!r} exists" + (" and enforces its settings" if enforced else "")

    def glue_database(self) -> str:
        glue = self.glue
        catalog = GlueCatalog(
            lambda: glue,
            account_id=self.conn.account_id,
            database=self.conn.schema,
            bucket=self.conn.bucket,
            who=self.who,
        )
        try:
            created = catalog.ensure_database()
        except DestinationError as exc:
            raise CheckFailed(exc.message, exc.aws_code) from exc
        return f"Glue database {self.conn.schema!r} " + ("created" if created else "exists")

    def athena_query(self) -> str:
        arn = f"arn:aws:athena:{self.conn.region}:{self.conn.account_id}:workgroup/{self.conn.workgroup}"
        try:
            self.query_id = self.athena.start_query_execution(
                QueryString="SELECT 1",
                WorkGroup=self.conn.workgroup,
                QueryExecutionContext={"Database": self.conn.schema},
                ResultConfiguration={"OutputLocation": output_location(self.conn)},
            )["QueryExecutionId"]
        except (ClientError, BotoCoreError) as exc:
            raise self._denied(exc, "athena:StartQueryExecution", arn) from exc
        deadline = time.monotonic() + self.timeout
        delay = 0.2
        while True:
            try:
                status = self.athena.get_query_execution(QueryExecutionId=self.query_id)[
                    "QueryExecution"
                ]["Status"]
            except (ClientError, BotoCoreError) as exc:
                raise self._denied(exc, "athena:GetQueryExecution", arn) from exc
            state = status["State"]
            if state == "SUCCEEDED":
                return f"SELECT 1 succeeded (query {self.query_id})"
            if state in ("FAILED", "CANCELLED"):
                reason = status.get("StateChangeReason", "no reason given")
                raise CheckFailed(
                    f"the test query {state.lower()}: {reason}. Athena needs s3:PutObject, "
                    f"s3:GetBucketLocation and s3:ListBucket on {self.conn.bucket} to write results",
                    f"Query{state.title()}",
                )
            if time.monotonic() > deadline:
                raise CheckFailed(
                    f"the test query did not finish in {self.timeout:.0f} s", "Timeout"
                )
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def athena_output_location(self) -> str:
        if self.query_id is None:
            raise CheckFailed("no test query ran", None)
        execution = self.athena.get_query_execution(QueryExecutionId=self.query_id)[
            "QueryExecution"
        ]
        actual = execution.get("ResultConfiguration", {}).get("OutputLocation", "")
        if not actual.startswith(output_location(self.conn)):
            raise CheckFailed(
                f"query results landed in {actual or 'an unknown place'}, not under "
                f"{output_location(self.conn)}; check the workgroup's result settings",
                "OutputLocation",
            )
        return f"results landed in {actual}"
