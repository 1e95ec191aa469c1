"""The source port: describe tables, tell the time, stream a tenant's rows in a window."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import datetime

import pyarrow as pa

from byob.domain.models import ResolvedModel
from byob.domain.types import ColumnType
from byob.domain.windows import Window

SourceColumn = tuple[str, ColumnType, bool]  # name, type, nullable


class Source(ABC):
    """A database holding every tenant's rows."""

    @abstractmethod
    def columns(self, table: str) -> list[SourceColumn]:
        """The table's columns in order; empty when the table does not exist."""

    @abstractmethod
    def now(self) -> datetime:
        """The source's own clock (UTC), which cursor values are written with."""

    @abstractmethod
    def read(self, model: ResolvedModel, tenant: str, window: Window) -> Iterator[pa.RecordBatch]:
        """Stream the tenant's rows with ``window.low < cursor <= window.high``, columns in the
        model's order. Batches are not yet cast to the model's schema."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def quote_ident(name: str) -> str:
    """Quote an identifier for SQL (PostgreSQL and SQLite agree on double quotes)."""
    return '"' + name.replace('"', '""') + '"'


def quote_table(name: str) -> str:
    """Quote a possibly schema-qualified table name ``schema.table``."""
    return ".".join(quote_ident(part) for part in name.split("."))
