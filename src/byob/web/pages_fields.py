"""The wizard's field checks: byob.domain's own rules, so the pages say exactly what the API
says, both while the recipient types and when the form is submitted."""

from __future__ import annotations

from collections.abc import Callable

from byob.domain import fields
from byob.domain.connections import _athena_fields, model_selection
from byob.errors import InvalidFieldError

_PROBE = {"workgroup": "primary", "schema": "byob_probe_schema", "database": "byob_probe_db"}


def _athena(name: str) -> Callable[[str, dict[str, str]], object]:
    """One of the Athena fields, checked with harmless values for the other two (the rule
    that schema and database differ needs both, so the form's schema is used for database)."""

    def check(value: str, context: dict[str, str]) -> object:
        if name == "database" and context.get("schema"):
            try:
                return _athena_fields(workgroup="primary", schema=context["schema"], database=value)
            except InvalidFieldError as exc:
                if exc.field == "database":
                    raise
        probe = dict(_PROBE)
        probe[name] = value
        if name != "database" and probe["database"] == value:
            probe["database"] = value + "_x"
        return _athena_fields(**probe)

    return check


def _role_arn(value: str, context: dict[str, str]) -> object:
    try:
        account = fields.account_id(context.get("account_id", ""))
    except InvalidFieldError:
        # No usable account ID yet (its own message says so): check the ARN's shape only.
        parts = value.strip().split(":")
        account = parts[4] if len(parts) > 4 else "000000000000"
    return fields.role_arn(value, expected_account_id=account)


CHECKS: dict[str, Callable[[str, dict[str, str]], object]] = {
    "name": lambda v, _: fields.connection_name(v),
    "account_id": lambda v, _: fields.account_id(v),
    "bucket": lambda v, _: fields.bucket_name(v),
    "region": lambda v, _: fields.region(v),
    "base_path": lambda v, _: fields.base_path(v),
    "role_arn": _role_arn,
    "access_key_id": lambda v, _: fields.access_key_id(v),
    "secret_access_key": lambda v, _: fields.secret_access_key(v),
    "workgroup": _athena("workgroup"),
    "schema": _athena("schema"),
    "database": _athena("database"),
}


def field_message(name: str, value: str, context: dict[str, str] | None = None) -> str | None:
    """The rule's message for this field's value, or None when it is valid."""
    check = CHECKS.get(name)
    if check is None:
        return f"unknown field {name!r}"
    try:
        check(value, context or {})
    except InvalidFieldError as exc:
        if exc.field in (None, name):
            return exc.message
    return None


def check_form(values: dict[str, str], secret: str, *, secret_required: bool) -> dict[str, str]:
    """Every field of the bucket step that has a problem → its message."""
    names = ["name", "account_id", "bucket", "region", "base_path"]
    if values["type"] == "athena":
        names += ["workgroup", "schema", "database"]
    if values["auth"] == "hmac":
        names.append("access_key_id")
    elif values["role_arn"]:
        names.append("role_arn")
    errors: dict[str, str] = {}
    for name in names:
        message = field_message(name, values[name], values)
        if message:
            errors[name] = message
    if values["auth"] == "hmac" and (secret or secret_required):
        message = field_message("secret_access_key", secret)
        if message:
            errors["secret_access_key"] = message
    return errors


MODELS_SHOWN = "models_shown"  # a hidden field: the form showed the models' checkboxes


def model_choice(
    form: dict[str, list[str]], offered: list[str], stored: tuple[str, ...] | None = None
) -> list[str] | None:
    """The selection a form's model checkboxes make: the ``stored`` selection when they
    check exactly its models (re-saving a step keeps a named list named, even one that holds
    every model offered today), ``["*"]`` when every offered model is checked (so a model
    offered later reaches the connection too), else the checked ones (none is the domain's
    to refuse); None when the form showed no checkboxes (a script's form leaves the selection
    as it is)."""
    if MODELS_SHOWN not in form:
        return None
    picked = [name for name in form.get("models", []) if name]
    if stored is not None and set(picked) == set(stored):
        return list(stored)
    if offered and set(offered) <= set(picked):
        return ["*"]
    return picked


def selection_message(selection: list[str] | None) -> str | None:
    """The domain's message for a selection it refuses (none checked), or None."""
    if selection is None:
        return None
    try:
        model_selection(selection)
    except InvalidFieldError as exc:
        return exc.message
    return None
