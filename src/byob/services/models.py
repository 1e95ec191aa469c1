"""The models file, checked against the source: every model's columns and types, that the
source user may read them, the rows whose cursor is NULL (which no window holds), and, for a
tenant, how many rows each model has of it."""

from __future__ import annotations

from dataclasses import dataclass

from byob.domain.models import Column, ModelSpec, NullCursor, ResolvedModel, resolve
from byob.errors import ByobError
from byob.services.ports import Adapters


@dataclass(frozen=True, kw_only=True)
class CheckedModel:
    model: ResolvedModel
    null_cursor_rows: int  # of every tenant
    tenant_rows: int | None  # of the tenant asked about
    problems: tuple[str, ...]  # what will make its transfers fail, and what to do
    warnings: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.model.name


@dataclass(frozen=True, kw_only=True)
class OfferedModel:
    """A model the vendor shares, as a connection's holder chooses among them."""

    spec: ModelSpec
    # The columns its files hold (hashed ones marked, excluded ones absent); None when the
    # source could not be read to resolve them.
    columns: tuple[Column, ...] | None

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True, kw_only=True)
class CheckedImport:
    name: str
    table: str
    problems: tuple[str, ...]  # what will make its loads fail, and what to do


class ModelService:
    def __init__(self, adapters: Adapters) -> None:
        self.adapters = adapters

    def check(self, *, tenant: str | None = None) -> list[CheckedModel]:
        """Every model resolved against the source and read with the model's own columns; an
        unreadable one raises, naming the grant to give."""
        checked = []
        with self.adapters.source() as src:
            for spec in self.adapters.models_file.models:
                model = resolve(spec, src.model_columns(spec))
                src.check_access(model)
                nulls = src.count(model, null_cursor=True)
                problems, warnings = _null_cursor_findings(model, nulls)
                checked.append(
                    CheckedModel(
                        model=model,
                        null_cursor_rows=nulls,
                        tenant_rows=src.count(model, tenant=tenant) if tenant is not None else None,
                        problems=problems,
                        warnings=model.warnings + warnings,
                    )
                )
        return checked

    def create_import_ledger(self) -> None:
        """The ledger imports record each loaded file in, in the [source] database."""
        self.adapters.import_target().ensure_ledger()

    def check_imports(self) -> list[CheckedImport]:
        """Every import against its target table in the [source] PostgreSQL database."""
        imports = self.adapters.models_file.imports
        if not imports:
            return []
        try:
            target = self.adapters.import_target()
        except ByobError as exc:
            return [
                CheckedImport(name=i.name, table=i.table, problems=(exc.message,)) for i in imports
            ]
        return [
            CheckedImport(name=i.name, table=i.table, problems=tuple(target.check(i)))
            for i in imports
        ]

    def resolved(self) -> list[ResolvedModel]:
        """Every model resolved against the source (no counting)."""
        with self.adapters.source() as src:
            return [
                resolve(spec, src.model_columns(spec)) for spec in self.adapters.models_file.models
            ]

    def offered(self, *, columns: bool = True) -> list[OfferedModel]:
        """The offered models, in the models file's order, with their delivered columns when
        asked; a source that cannot be read leaves the columns out (the pages still show),
        and a models file that cannot be read offers nothing."""
        try:
            specs = self.adapters.models_file.offered_models
        except ByobError:
            return []
        resolved: dict[str, tuple[Column, ...]] = {}
        if columns and specs:
            try:
                with self.adapters.source() as src:
                    for spec in specs:
                        model = resolve(spec, src.model_columns(spec))
                        resolved[spec.name] = model.delivered_columns
            except ByobError:
                resolved = {}
        return [OfferedModel(spec=s, columns=resolved.get(s.name)) for s in specs]

    def tenant_rows(self, tenant: str, models: list[str]) -> dict[str, int]:
        """Rows of each of these models that belong to the tenant."""
        specs = [s for s in self.adapters.models_file.models if s.name in models]
        with self.adapters.source() as src:
            return {
                model.name: src.count(model, tenant=tenant)
                for model in (resolve(spec, src.model_columns(spec)) for spec in specs)
            }


def _null_cursor_findings(
    model: ResolvedModel, nulls: int
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if not nulls:
        return (), ()
    cursor = model.spec.cursor_column
    policy = model.spec.on_null_cursor
    said = f"model {model.name!r}: {nulls} rows have a NULL {cursor!r} and belong to no window"
    if policy is NullCursor.FAIL:
        return (
            f"{said}: transfers of their tenants fail until they are dealt with. Give them a "
            f"value and add a NOT NULL constraint, COALESCE {cursor!r} in a query model, or set "
            'on_null_cursor = "backfill_only" or "exclude"',
        ), ()
    if policy is NullCursor.BACKFILL_ONLY:
        return (), (f"{said}: they are delivered by backfills and full refreshes only",)
    return (), (f"{said}: every transfer leaves them out and counts them",)
