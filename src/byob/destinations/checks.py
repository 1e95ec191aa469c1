"""Validation checks: each named, timed out, and reported in words a recipient can act on."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from time import monotonic
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from byob.aws.sessions import AwsSessions, aws_error_code, role_session_name
from byob.destinations.athena_checks import AthenaChecks
from byob.destinations.athena_checks import CheckFailed as _CheckFailed
from byob.destinations.athena_checks import CheckWarning as _CheckWarning
from byob.destinations.base import Destination
from byob.destinations.import_checks import ImportChecks
from byob.domain import layout
from byob.domain.connections import AuthKind, Connection, ConnectionType
from byob.domain.imports import ImportSpec
from byob.errors import ByobError, DestinationError


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    WARNING = "warning"  # does not block activation
    SKIPPED = "skipped"  # an earlier check failed


@dataclass(frozen=True, kw_only=True)
class CheckResult:
    name: str
    outcome: Outcome
    message: str
    aws_code: str | None = None
    duration_ms: int = 0
    at: datetime
    # About byob's own configuration (e.g. its AWS endpoint), for the operator's pages and
    # the log only: a recipient cannot act on it, and must not read byob's settings.
    operator_note: str = ""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "outcome": self.outcome.value,
            "message": self.message,
            "aws_code": self.aws_code,
            "duration_ms": self.duration_ms,
            "at": self.at.isoformat(),
        }
        if self.operator_note:
            out["operator_note"] = self.operator_note
        return out


def passed(results: list[CheckResult]) -> bool:
    return all(r.outcome in (Outcome.PASSED, Outcome.WARNING) for r in results)


class ConnectionChecks:
    """Runs a connection's checks in order; a failed check skips the ones that depend on it."""

    def __init__(
        self,
        *,
        conn: Connection,
        destination: Destination,
        aws: AwsSessions | None,
        secret_access_key: str | None,
        timeout: float,
        strict_trust: bool = True,
        import_spec: ImportSpec | None = None,
    ) -> None:
        self.conn = conn
        self.destination = destination
        self.aws = aws
        self.secret = secret_access_key
        self.timeout = timeout
        # On AWS a trust policy without the external ID condition fails validation; an
        # S3-compatible endpoint or emulator may not evaluate trust policies at all.
        self.strict_trust = strict_trust
        self.import_spec = import_spec  # an import connection's, as the models file declares it
        self.test_key = layout.connection_test_key(conn.data_prefix, secrets.token_hex(8))

    def run(self) -> list[CheckResult]:
        plan: list[tuple[str, Callable[[], str]]] = []
        if self.conn.type is not ConnectionType.LOCAL:
            if self.conn.auth is AuthKind.ROLE:
                plan.append(("assume_role", self._assume_role))
                plan.append(("external_id_required", self._external_id_required))
            else:
                plan.append(("credentials", self._credentials))
            plan.append(("bucket_region", self._bucket_region))
        if self.conn.is_import:
            reading = self._import()
            plan += [
                ("list_base_path", reading.list_base_path),
                ("read_object", reading.read_first_bytes),
                ("write_refused", reading.write_refused),
            ]
        else:
            plan += [("write_test_object", self._write), ("delete_test_object", self._delete)]
        if self.conn.type is ConnectionType.ATHENA:
            athena = self._athena()
            plan += [
                ("workgroup", athena.workgroup),
                ("glue_database", athena.glue_database),
                ("athena_query", athena.athena_query),
                ("athena_output_location", athena.athena_output_location),
            ]
        results: list[CheckResult] = []
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="check")
        try:
            for name, check in plan:
                if results and not passed(results):
                    results.append(
                        _result(name, Outcome.SKIPPED, f"skipped: {results[-1].name} failed")
                    )
                    continue
                results.append(self._timed(pool, name, check))
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        return results

    def _timed(self, pool: ThreadPoolExecutor, name: str, check: Callable[[], str]) -> CheckResult:
        start = monotonic()
        future = pool.submit(check)
        note = ""
        try:
            message = future.result(timeout=self.timeout)
            outcome, code = Outcome.PASSED, None
        except FutureTimeout:
            outcome, code = Outcome.FAILED, "Timeout"
            message = f"no answer within {self.timeout:.0f} s; check the region and network, then revalidate"
        except _CheckWarning as exc:
            outcome, code, message = Outcome.WARNING, exc.aws_code, exc.message
            note = exc.operator_note
        except _CheckFailed as exc:
            outcome, code, message = Outcome.FAILED, exc.aws_code, exc.message
            note = exc.operator_note
        except ByobError as exc:
            outcome, code, message = Outcome.FAILED, getattr(exc, "aws_code", None), exc.message
        except Exception as exc:
            outcome, code = Outcome.FAILED, type(exc).__name__
            message = f"the check could not complete: {type(exc).__name__}: {exc}"
        if (
            name == "delete_test_object"
            and outcome is Outcome.FAILED
            and self.conn.first_activated_at
        ):
            # Recipients may withdraw s3:DeleteObject once active (the seeds say so).
            outcome = Outcome.WARNING
            message += f" (the test object {self.destination.url(self.test_key)} was left behind; you may delete it)"
        return _result(
            name, outcome, message, code, int((monotonic() - start) * 1000), operator_note=note
        )

    def _import(self) -> ImportChecks:
        assert self.aws is not None
        session = self.aws.for_connection(self.conn, self.secret)
        return ImportChecks(
            conn=self.conn,
            s3=self.aws.client(session, "s3", self.conn.region),
            spec=self.import_spec,
            who=self._who(),
        )

    def _who(self) -> str:
        if self.conn.auth is AuthKind.ROLE:
            return f"role {self.conn.role_name or self.conn.role_arn}"
        return f"the IAM user of access key {self.conn.access_key_id}"

    def _athena(self) -> AthenaChecks:
        assert self.aws is not None
        session = self.aws.for_connection(self.conn, self.secret)
        return AthenaChecks(
            conn=self.conn,
            athena=self.aws.client(session, "athena", self.conn.region),
            glue=self.aws.client(session, "glue", self.conn.region),
            who=self._who(),
            timeout=self.timeout,
        )

    def _assume_role(self) -> str:
        assert self.aws is not None
        sts = self.aws.service_client("sts", self.conn.region)
        try:
            sts.assume_role(
                RoleArn=self.conn.role_arn,
                ExternalId=self.conn.external_id,
                RoleSessionName=role_session_name(self.conn),
                DurationSeconds=900,
            )
        except (ClientError, BotoCoreError) as exc:
            code = aws_error_code(exc)
            raise _CheckFailed(
                f"{code} on AssumeRole of {self.conn.role_arn}: create the role "
                f"{self.conn.role_name or self.conn.role_arn} in account {self.conn.account_id} "
                "with exactly the trust policy shown (it must name byob's principal and this "
                "connection's external ID)",
                code,
            ) from exc
        return f"assumed {self.conn.role_arn} with the connection's external ID"

    def _external_id_required(self) -> str:
        """The confused-deputy guard: without the external ID, AssumeRole must be refused."""
        assert self.aws is not None
        sts = self.aws.service_client("sts", self.conn.region)
        session_name = role_session_name(self.conn)
        try:
            sts.assume_role(
                RoleArn=self.conn.role_arn, RoleSessionName=session_name, DurationSeconds=900
            )
        except (ClientError, BotoCoreError) as exc:
            code = aws_error_code(exc)
            if code in ("AccessDenied", "AccessDeniedException", "403"):
                return "AssumeRole without the external ID was refused, as it must be"
            raise _CheckFailed(
                f"{code} on AssumeRole without the external ID: {exc}", code
            ) from exc
        wrong_refused = False
        try:
            sts.assume_role(
                RoleArn=self.conn.role_arn,
                RoleSessionName=session_name,
                DurationSeconds=900,
                ExternalId="byob-wrong-external-id-probe",
            )
        except (ClientError, BotoCoreError):
            wrong_refused = True
        hole = (
            f"AssumeRole of {self.conn.role_arn} succeeded without the external ID: the trust "
            "policy lacks the condition StringEquals sts:ExternalId = "
            f"{self.conn.external_id}, so anyone who learns the role ARN could make byob "
            "write into your bucket (the confused-deputy problem). Replace the role's trust "
            "policy with the one shown"
        )
        if self.strict_trust:
            raise _CheckFailed(hole, "ExternalIdNotRequired")
        observed = "refuses a wrong one" if wrong_refused else "accepts a wrong one too"
        raise _CheckWarning(
            "not proven: the AWS endpoint this service uses does not enforce trust policies, so "
            "it could not show that your role refuses callers without the external ID; keep the "
            "role's trust policy exactly as shown (it requires the external ID)",
            "ExternalIdNotEnforced",
            operator_note=(
                f"the endpoint in BYOB_AWS_ENDPOINT_URL accepted AssumeRole of "
                f"{self.conn.role_arn} without the external ID (and {observed}): it does not "
                "evaluate trust policies. AWS itself refuses such a call when the trust policy "
                "has the external ID condition, and fails this check when it has not; "
                "BYOB_STRICT_TRUST_CHECK=true fails it here too"
            ),
        )

    def _bucket_region(self) -> str:
        """S3 tells a bucket's region even to callers without s3:ListBucket (in the 403)."""
        session = self.aws.for_connection(self.conn, self.secret) if self.aws else None
        assert session is not None and self.aws is not None
        s3 = self.aws.client(session, "s3", self.conn.region)
        try:
            response = s3.head_bucket(Bucket=self.conn.bucket)
            headers = response["ResponseMetadata"]["HTTPHeaders"]
        except ClientError as exc:
            code = aws_error_code(exc)
            headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
            if code in ("404", "NoSuchBucket"):
                raise _CheckFailed(
                    f"bucket {self.conn.bucket} does not exist; create it in {self.conn.region} "
                    "or fix the bucket name",
                    "NoSuchBucket",
                ) from exc
        except BotoCoreError as exc:
            raise _CheckFailed(
                f"cannot reach bucket {self.conn.bucket}: {exc}", type(exc).__name__
            ) from exc
        actual = headers.get("x-amz-bucket-region")
        if actual and actual != self.conn.region:
            raise _CheckFailed(
                f"bucket {self.conn.bucket} is in {actual}, not {self.conn.region}; set the "
                f"connection's region to {actual}",
                "WrongRegion",
            )
        if not actual:
            return f"bucket {self.conn.bucket} exists (the endpoint did not report its region)"
        return f"bucket {self.conn.bucket} is in {actual}"

    def _credentials(self) -> str:
        assert self.aws is not None
        session = self.aws.for_connection(self.conn, self.secret)
        try:
            arn = self.aws.client(session, "sts", self.conn.region).get_caller_identity()["Arn"]
        except (ClientError, BotoCoreError) as exc:
            code = aws_error_code(exc)
            raise _CheckFailed(
                f"{code}: AWS refused the access key {self.conn.access_key_id}; check the key ID "
                "and paste the secret access key again",
                code,
            ) from exc
        account = arn.split(":")[4] if arn.count(":") >= 5 else ""
        if account and account != self.conn.account_id:
            raise _CheckFailed(
                f"the access key belongs to account {account}, not {self.conn.account_id}",
                "AccountMismatch",
            )
        return f"the access key works as {arn}"

    def _write(self) -> str:
        body = f"byob connection test for {self.conn.name} at {datetime.now(UTC).isoformat()}\n"
        try:
            self.destination.put(self.test_key, body.encode(), content_type="text/plain")
        except DestinationError as exc:
            raise _CheckFailed(exc.message, exc.aws_code) from exc
        return f"wrote {self.destination.url(self.test_key)}"

    def _delete(self) -> str:
        try:
            self.destination.delete(self.test_key)
        except DestinationError as exc:
            raise _CheckFailed(exc.message, exc.aws_code) from exc
        return f"deleted {self.destination.url(self.test_key)}"


def _result(
    name: str,
    outcome: Outcome,
    message: str,
    code: str | None = None,
    ms: int = 0,
    *,
    operator_note: str = "",
) -> CheckResult:
    return CheckResult(
        name=name,
        outcome=outcome,
        message=message,
        aws_code=code,
        duration_ms=ms,
        at=datetime.now(UTC),
        operator_note=operator_note,
    )
