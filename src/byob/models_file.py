"""The models file (TOML): the source database and the models to export from it."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from byob.domain.models import ModelSpec, NullCursor
from byob.errors import ByobError, ConfigError

if TYPE_CHECKING:
    from byob.domain.imports import ImportSpec

_MODEL_KEYS = {
    "name",
    "table",
    "query",
    "tenant_column",
    "cursor_column",
    "primary_key",
    "columns",
    "on_null_cursor",
    "deleted_column",
    "capture_deletes",
    "offered",
    "exclude",
    "hash",
    "description",
    "column_descriptions",
}
_IMPORT_KEYS = {
    "name",
    "table",
    "tenant_column",
    "format",
    "columns",
    "key_pattern",
    "delimiter",
    "header",
    "max_file_bytes",
    "on_change",
}


@dataclass(frozen=True, kw_only=True)
class SourceConfig:
    url: str  # postgresql://… or sqlite:///path


@dataclass(frozen=True, kw_only=True)
class ModelsFile:
    source: SourceConfig
    models: tuple[ModelSpec, ...]
    imports: tuple[ImportSpec, ...] = ()

    @property
    def offered_models(self) -> tuple[ModelSpec, ...]:
        """The models the vendor shares (``offered``, the default): what "every model" means."""
        return tuple(m for m in self.models if m.offered)

    def offered_model(self, name: str) -> ModelSpec:
        """The model by name, refused when the models file does not offer it."""
        spec = self.model(name)
        if not spec.offered:
            raise ConfigError(
                f"model {name!r} is not offered (offered = false in the models file), so it "
                "is never transferred; set offered = true to share it",
                field="model",
            )
        return spec

    def model(self, name: str) -> ModelSpec:
        for m in self.models:
            if m.name == name:
                return m
        known = ", ".join(m.name for m in self.models)
        raise ConfigError(f"no model named {name!r} (models: {known})", field="model")

    def import_spec(self, name: str) -> ImportSpec:
        """The ``[[imports]]`` entry an import connection names."""
        for spec in self.imports:
            if spec.name == name:
                return spec
        known = ", ".join(i.name for i in self.imports) or "none declared"
        raise ConfigError(
            f"no import named {name!r} in the models file (imports: {known})", field="import"
        )


def load_models_file(path: Path) -> ModelsFile:
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} not found; pass --config FILE or set BYOB_CONFIG"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_models_file(raw, origin=str(path), base_dir=path.parent)


def parse_models_file(raw: dict[str, Any], *, origin: str, base_dir: Path) -> ModelsFile:
    source = raw.get("source")
    if not isinstance(source, dict) or not (source.get("url") or source.get("path")):
        raise ConfigError(
            f'{origin}: [source] needs url = "postgresql://…" or path = "file.sqlite"',
            field="source",
        )
    for key in ("url", "path"):
        if key in source and not isinstance(source[key], str):
            raise ConfigError(f"{origin}: [source] {key} must be text", field=f"source.{key}")
    url = source.get("url") or ""
    if not url:
        sqlite_path = Path(source["path"])
        if not sqlite_path.is_absolute():
            sqlite_path = base_dir / sqlite_path
        url = f"sqlite:///{sqlite_path.resolve()}"
    if not url.startswith(("postgresql://", "postgres://", "sqlite:///")):
        raise ConfigError(
            f"{origin}: [source] url must start with postgresql:// or sqlite:///",
            field="source.url",
        )
    entries = raw.get("models")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{origin}: declare at least one [[models]] table", field="models")
    models: list[ModelSpec] = []
    for index, entry in enumerate(entries):
        models.append(_parse_model(entry, where=f"{origin}: models[{index}]"))
    names = [m.name for m in models]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{origin}: model names must be unique: {', '.join(dupes)}", field="name")
    imports = _parse_imports(raw.get("imports"), origin=origin)
    return ModelsFile(source=SourceConfig(url=url), models=tuple(models), imports=imports)


def _parse_imports(entries: Any, *, origin: str) -> tuple[ImportSpec, ...]:
    if entries is None:
        return ()
    if not isinstance(entries, list):
        raise ConfigError(f"{origin}: imports must be [[imports]] tables", field="imports")
    imports = tuple(
        _parse_import(entry, where=f"{origin}: imports[{index}]")
        for index, entry in enumerate(entries)
    )
    names = [i.name for i in imports]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(
            f"{origin}: import names must be unique: {', '.join(dupes)}", field="name"
        )
    return imports


def _parse_model(entry: Any, *, where: str) -> ModelSpec:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be a table of keys")
    unknown = set(entry) - _MODEL_KEYS
    if unknown:
        raise ConfigError(
            f"{where}: unknown keys {', '.join(sorted(unknown))} (allowed: "
            f"{', '.join(sorted(_MODEL_KEYS))})",
            field=sorted(unknown)[0],
        )
    name = entry.get("name")
    where = f"{where} ({name!r})" if name else where
    for key in ("name", "tenant_column", "cursor_column"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise ConfigError(f"{where}: {key} is required and must be text", field=key)
    for key in ("table", "query"):
        if key in entry and (not isinstance(entry[key], str) or not entry[key].strip()):
            raise ConfigError(f"{where}: {key} must be non-empty text", field=key)
    if ("table" in entry) == ("query" in entry):
        raise ConfigError(
            f'{where}: give either table = "schema.table" or query = "SELECT …"', field="table"
        )
    null_cursor = entry.get("on_null_cursor", NullCursor.FAIL.value)
    if null_cursor not in {n.value for n in NullCursor}:
        raise ConfigError(
            f"{where}: on_null_cursor must be one of "
            f"{', '.join(n.value for n in NullCursor)} (got {null_cursor!r})",
            field="on_null_cursor",
        )
    pk = entry.get("primary_key")
    if isinstance(pk, str):
        pk = [pk]
    if not isinstance(pk, list) or not pk or not all(isinstance(k, str) for k in pk):
        raise ConfigError(
            f"{where}: primary_key must be a column name or a list of them", field="primary_key"
        )
    deleted_column = entry.get("deleted_column", "")
    if not isinstance(deleted_column, str):
        raise ConfigError(f"{where}: deleted_column must be a column name", field="deleted_column")
    capture_deletes = entry.get("capture_deletes", False)
    if not isinstance(capture_deletes, bool):
        raise ConfigError(
            f"{where}: capture_deletes must be true or false", field="capture_deletes"
        )
    policy = _column_policy(entry, where=where)
    columns = entry.get("columns")
    if columns is not None and (
        not isinstance(columns, list)
        or not columns
        or not all(isinstance(c, str) for c in columns)
        or len(set(columns)) != len(columns)
    ):
        raise ConfigError(
            f"{where}: columns must be a non-empty list of column names", field="columns"
        )
    try:
        return ModelSpec(
            name=entry["name"],
            table=entry.get("table", ""),
            query=entry.get("query", "").strip().rstrip(";").strip(),
            on_null_cursor=NullCursor(null_cursor),
            tenant_column=entry["tenant_column"],
            cursor_column=entry["cursor_column"],
            primary_key=tuple(pk),
            columns=tuple(columns) if columns else None,
            deleted_column=deleted_column,
            capture_deletes=capture_deletes,
            **policy,
        )
    except ByobError as exc:
        raise ConfigError(f"{where}: {exc.message}", field=exc.field) from None


def _column_policy(entry: dict[str, Any], *, where: str) -> dict[str, Any]:
    """``offered``, ``exclude``, ``hash``, ``description`` and ``column_descriptions``, as
    ModelSpec fields (their rules against each other are ModelSpec's, against the source
    resolve's)."""
    offered = entry.get("offered", True)
    if not isinstance(offered, bool):
        raise ConfigError(f"{where}: offered must be true or false", field="offered")
    lists: dict[str, tuple[str, ...]] = {}
    for key in ("exclude", "hash"):
        names = entry.get(key, [])
        if (
            not isinstance(names, list)
            or not all(isinstance(n, str) and n for n in names)
            or len(set(names)) != len(names)
        ):
            raise ConfigError(
                f'{where}: {key} must be a list of column names, e.g. {key} = ["email"]', field=key
            )
        lists[key] = tuple(names)
    description = entry.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{where}: description must be text", field="description")
    described = entry.get("column_descriptions", {})
    if not isinstance(described, dict) or not all(isinstance(v, str) for v in described.values()):
        raise ConfigError(
            f"{where}: column_descriptions must map column names to text, e.g. "
            'column_descriptions = { email = "The customer\'s sign-in address" }',
            field="column_descriptions",
        )
    return {
        "offered": offered,
        "exclude": lists["exclude"],
        "hashed": lists["hash"],
        "description": description.strip(),
        "column_descriptions": tuple((k, v.strip()) for k, v in described.items()),
    }


def _parse_import(entry: Any, *, where: str) -> ImportSpec:
    # The import rules load only for a models file declaring [[imports]] (start-up time).
    from byob.domain.imports import (
        DEFAULT_MAX_FILE_BYTES,
        ImportFormat,
        ImportSpec,
        OnChange,
        import_column,
    )

    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be a table of keys")
    unknown = set(entry) - _IMPORT_KEYS
    if unknown:
        raise ConfigError(
            f"{where}: unknown keys {', '.join(sorted(unknown))} (allowed: "
            f"{', '.join(sorted(_IMPORT_KEYS))})",
            field=sorted(unknown)[0],
        )
    name = entry.get("name")
    where = f"{where} ({name!r})" if name else where
    for key in ("name", "table", "tenant_column", "format"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise ConfigError(f"{where}: {key} is required and must be text", field=key)
    for key in ("key_pattern", "delimiter"):
        if key in entry and not isinstance(entry[key], str):
            raise ConfigError(f"{where}: {key} must be text", field=key)
    if "header" in entry and not isinstance(entry["header"], bool):
        raise ConfigError(f"{where}: header must be true or false", field="header")
    fmt = entry["format"]
    if fmt not in {f.value for f in ImportFormat}:
        raise ConfigError(
            f"{where}: format must be one of {', '.join(f.value for f in ImportFormat)} "
            f"(got {fmt!r}; gzip is read from a key ending in .gz)",
            field="format",
        )
    if fmt != ImportFormat.CSV and ({"delimiter", "header"} & set(entry)):
        raise ConfigError(
            f"{where}: delimiter and header apply to csv only; remove them", field="format"
        )
    on_change = entry.get("on_change", OnChange.SKIP.value)
    if on_change not in {o.value for o in OnChange}:
        raise ConfigError(
            f"{where}: on_change must be one of {', '.join(o.value for o in OnChange)} "
            f"(got {on_change!r})",
            field="on_change",
        )
    max_bytes = entry.get("max_file_bytes", DEFAULT_MAX_FILE_BYTES)
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ConfigError(
            f"{where}: max_file_bytes must be a positive whole number of bytes",
            field="max_file_bytes",
        )
    columns = entry.get("columns")
    if (
        not isinstance(columns, dict)
        or not columns
        or not all(isinstance(v, str) for v in columns.values())
    ):
        raise ConfigError(
            f"{where}: columns must map column names to PostgreSQL types, e.g. columns = "
            '{ account = "text", quantity = "numeric(18,6)" }',
            field="columns",
        )
    try:
        return ImportSpec(
            name=entry["name"],
            table=entry["table"].strip(),
            tenant_column=entry["tenant_column"],
            format=ImportFormat(fmt),
            columns=tuple(import_column(k, v) for k, v in columns.items()),
            key_pattern=entry.get("key_pattern", "").strip(),
            csv_delimiter=entry.get("delimiter", ","),
            csv_header=entry.get("header", True),
            max_file_bytes=max_bytes,
            on_change=OnChange(on_change),
        )
    except ByobError as exc:
        raise ConfigError(f"{where}: {exc.message}", field=exc.field) from None
