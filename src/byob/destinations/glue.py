"""The Glue catalog for Athena connections: the database, one table per model with partition
projection, and the `<model>_latest` view. DDL goes through the Glue API (synchronous, and
within the granted actions), never through Athena DDL. The recipient may keep tables of its own
in the database: byob drops only those it created (a table at a model's location in the bucket,
a `_latest` view it owns)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import date, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from byob.aws.sessions import aws_error_code
from byob.domain import athena
from byob.domain.models import ResolvedModel
from byob.errors import DestinationError

_DENIED = ("AccessDeniedException", "AccessDenied", "403")
_MISSING = ("EntityNotFoundException",)


class GlueCatalog:
    def __init__(
        self, client_of: Callable[[], Any], *, account_id: str, database: str, bucket: str, who: str
    ) -> None:
        # Asked for at each use, not held (as S3Destination's): a fan-out keeps a catalog per
        # connection open for its whole run, and the clients stay in a bounded cache instead.
        self._client_of = client_of
        self.account_id = account_id
        self.database = database
        self.bucket = bucket
        self.who = who

    @property
    def client(self) -> Any:
        return self._client_of()

    def _error(self, exc: BaseException, action: str, resource: str) -> DestinationError:
        code = aws_error_code(exc)
        if code in _DENIED:
            return DestinationError(
                f"AccessDeniedException on {action}: the permissions policy attached to "
                f"{self.who} must allow {action} on arn:aws:glue:*:{self.account_id}:{resource}",
                aws_code="AccessDeniedException",
            )
        return DestinationError(f"{code} on {action} of {resource}: {exc}", aws_code=code)

    def ensure_database(self) -> bool:
        """Get or create the Glue database; True when it was created."""
        try:
            self.client.get_database(Name=self.database)
            return False
        except ClientError as exc:
            if aws_error_code(exc) not in _MISSING:
                raise self._error(exc, "glue:GetDatabase", f"database/{self.database}") from exc
        except BotoCoreError as exc:
            raise self._error(exc, "glue:GetDatabase", f"database/{self.database}") from exc
        try:
            self.client.create_database(
                DatabaseInput={"Name": self.database, "Description": "Data delivered by byob"}
            )
        except ClientError as exc:
            if aws_error_code(exc) != "AlreadyExistsException":
                raise self._error(exc, "glue:CreateDatabase", f"database/{self.database}") from exc
        return True

    def get_table(self, name: str) -> dict[str, Any] | None:
        try:
            table: dict[str, Any] = self.client.get_table(DatabaseName=self.database, Name=name)[
                "Table"
            ]
            return table
        except ClientError as exc:
            if aws_error_code(exc) in _MISSING:
                return None
            raise self._error(exc, "glue:GetTable", f"table/{self.database}/{name}") from exc

    def models(self) -> set[str]:
        """The models that have a table or a `_latest` view byob created in the database."""
        found: set[str] = set()
        try:
            for page in self.client.get_paginator("get_tables").paginate(
                DatabaseName=self.database
            ):
                found.update(
                    model for t in page["TableList"] if (model := self._byob_model(t)) is not None
                )
        except ClientError as exc:
            if aws_error_code(exc) in _MISSING:
                return set()  # no database yet: nothing to drop
            raise self._error(exc, "glue:GetTables", f"table/{self.database}/*") from exc
        except BotoCoreError as exc:
            raise self._error(exc, "glue:GetTables", f"table/{self.database}/*") from exc
        return found

    def _byob_model(self, table: dict[str, Any]) -> str | None:
        """The model a table or view is byob's for: a table at the model's own location, or a
        `_latest` view byob owns. None for anything else (the recipient's own)."""
        name = str(table.get("Name", ""))
        if table.get("TableType") == "VIRTUAL_VIEW" and name.endswith(athena.LATEST_SUFFIX):
            try:
                definition: Any = athena.decode_view(str(table.get("ViewOriginalText", "")))
            except ValueError:  # not a Presto view (base64 of JSON) at all
                return None
            owned = isinstance(definition, dict) and definition.get("owner") == "byob"
            return name.removesuffix(athena.LATEST_SUFFIX) if owned else None
        location = table.get("StorageDescriptor", {}).get("Location")
        if table.get("TableType") == "EXTERNAL_TABLE" and location == athena.table_location(
            self.bucket, self.database, name
        ):
            return name
        return None

    def drop_model(self, model: str) -> list[str]:
        """Remove the model's table and `_latest` view (the view first: it reads the table),
        those byob created; the data files stay. The names dropped; missing ones are skipped,
        so a drop that failed halfway is finished by the next."""
        dropped = []
        for name in (model + athena.LATEST_SUFFIX, model):
            table = self.get_table(name)
            if table is None or self._byob_model(table) != model:
                continue
            try:
                self.client.delete_table(DatabaseName=self.database, Name=name)
            except ClientError as exc:
                if aws_error_code(exc) in _MISSING:
                    continue  # dropped meanwhile
                raise self._error(exc, "glue:DeleteTable", f"table/{self.database}/{name}") from exc
            except BotoCoreError as exc:
                raise self._error(exc, "glue:DeleteTable", f"table/{self.database}/{name}") from exc
            dropped.append(name)
        return dropped

    def keep_only(self, models: Collection[str]) -> list[str]:
        """Drop the tables and views of every model but ``models`` (those received): the
        names dropped."""
        dropped: list[str] = []
        for model in sorted(self.models() - set(models)):
            dropped += self.drop_model(model)
        return dropped

    def sync(
        self, model: ResolvedModel, *, transfer_date: date, snapshot: datetime | None = None
    ) -> dict[str, Any]:
        """Before files are written: the table has every column they carry, its projection
        range covers the day they land in, and the latest-version view matches, reading from
        the newest full refresh (``snapshot``, its start) on."""
        self.ensure_database()
        current = athena.glue_columns(
            [(c.name, c.type) for c in model.delivered_columns],
            {c.name: c.description for c in model.delivered_columns},
        )
        existing = self.get_table(model.name)
        if existing is None:
            table = athena.table_input(
                model=model.name,
                bucket=self.bucket,
                prefix=self.database,
                columns=current,
                earliest=transfer_date,
                description=model.spec.description,
            )
            self._write_table("glue:CreateTable", table, create=True)
        else:
            table = _as_input(existing)
            columns = athena.merge_columns(table["StorageDescriptor"]["Columns"], current)
            start = athena.projection_start(table["Parameters"])
            changed = columns != table["StorageDescriptor"]["Columns"]
            if start is None or start > transfer_date:
                # A query outside the projection range silently returns no rows.
                table["Parameters"]["projection.dt.range"] = f"{transfer_date.isoformat()},NOW"
                changed = True
            table["StorageDescriptor"]["Columns"] = columns
            if table.get("Description", "") != model.spec.description:
                table["Description"] = model.spec.description
                changed = True
            if changed:
                self._write_table("glue:UpdateTable", table, create=False)
        self._sync_view(model, table["StorageDescriptor"]["Columns"], snapshot)
        return table

    def _sync_view(
        self, model: ResolvedModel, columns: list[dict[str, str]], snapshot: datetime | None
    ) -> None:
        view = athena.view_input(
            schema=self.database,
            model=model.name,
            columns=columns,
            primary_key=[model.column(k).name for k in model.spec.primary_key],
            cursor=model.cursor.name,
            snapshot=snapshot,
        )
        existing = self.get_table(view["Name"])
        if existing is None:
            self._write_table("glue:CreateTable", view, create=True)
        elif existing.get("ViewOriginalText") != view["ViewOriginalText"]:
            self._write_table("glue:UpdateTable", view, create=False)

    def _write_table(self, action: str, table: dict[str, Any], *, create: bool) -> None:
        try:
            if create:
                self.client.create_table(DatabaseName=self.database, TableInput=table)
            else:
                self.client.update_table(
                    DatabaseName=self.database, TableInput=table, SkipArchive=True
                )
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, action, f"table/{self.database}/{table['Name']}") from exc


_INPUT_KEYS = (
    "Name",
    "Description",
    "Owner",
    "Retention",
    "StorageDescriptor",
    "PartitionKeys",
    "ViewOriginalText",
    "ViewExpandedText",
    "TableType",
    "Parameters",
)
_SD_KEYS = (
    "Columns",
    "Location",
    "InputFormat",
    "OutputFormat",
    "Compressed",
    "SerdeInfo",
    "BucketColumns",
    "SortColumns",
    "Parameters",
    "StoredAsSubDirectories",
)


def _as_input(table: dict[str, Any]) -> dict[str, Any]:
    """GetTable's answer carries read-only fields UpdateTable refuses; keep the input ones."""
    out = {k: table[k] for k in _INPUT_KEYS if k in table}
    out["StorageDescriptor"] = {
        k: v for k, v in table["StorageDescriptor"].items() if k in _SD_KEYS
    }
    out["Parameters"] = dict(table.get("Parameters", {}))
    return out
