"""`byob connections …` and `byob models check`."""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum
from typing import Annotated, Any

import typer

from byob.cli import output
from byob.cli.root import ACTOR, ConnectionArg, JsonOpt, build_services, connections_cli, models_cli
from byob.domain import role_setup
from byob.domain.connections import (
    NEXT_STEPS,
    AuthKind,
    Connection,
    ConnectionType,
    after_resume,
    after_validation,
)
from byob.errors import InvalidFieldError


@connections_cli.command("create")
def create(
    name: Annotated[str, typer.Option(help="Connection name, unique within the tenant.")],
    tenant: Annotated[
        str, typer.Option(help="The tenant whose rows go to (or come from) this bucket.")
    ],
    type: Annotated[str, typer.Option("--type", help="s3, athena or local.")] = "s3",
    direction: Annotated[
        str,
        typer.Option(
            "--direction",
            help="export (byob writes the tenant's rows to the bucket) or import (byob reads "
            "the files the tenant drops there; --type s3, with --import).",
        ),
    ] = "export",
    import_name: Annotated[
        str,
        typer.Option(
            "--import", help="With --direction import: the models file's [[imports]] entry to load."
        ),
    ] = "",
    account_id: Annotated[
        str, typer.Option(help="The recipient's AWS account ID (12 digits).")
    ] = "",
    bucket: Annotated[str, typer.Option(help="S3 bucket name.")] = "",
    region: Annotated[str, typer.Option(help="The bucket's AWS region.")] = "",
    base_path: Annotated[
        str | None, typer.Option(help="Folder under the bucket (optional).")
    ] = None,
    path: Annotated[str, typer.Option(help="Directory, for --type local.")] = "",
    role_arn: Annotated[
        str | None, typer.Option(help="An existing role ARN instead of the generated one.")
    ] = None,
    access_key_id: Annotated[
        str | None,
        typer.Option(
            help="HMAC auth: an IAM user's access key ID; the secret is read from BYOB_SECRET_ACCESS_KEY or a prompt."
        ),
    ] = None,
    workgroup: Annotated[str, typer.Option(help="Athena workgroup.")] = "primary",
    schema: Annotated[str, typer.Option(help="Athena: Glue database and data folder.")] = "",
    database: Annotated[str, typer.Option(help="Athena: folder for query results.")] = "",
    frequency: Annotated[
        int,
        typer.Option(
            "--frequency",
            help="Minutes between transfers, aligned to UTC: 15, 60, 360, 720 or 1440 (daily).",
        ),
    ] = 1440,
    models: Annotated[
        str | None,
        typer.Option(
            "--models",
            help="The models it receives, comma-separated (default: every offered model).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a draft connection and print the IAM material to paste."""
    secret = None
    if access_key_id:
        secret = os.environ.get("BYOB_SECRET_ACCESS_KEY") or typer.prompt(
            "Secret access key", hide_input=True
        )
    services = build_services()
    created = services.connections.create(
        actor=ACTOR,
        name=name,
        tenant=tenant,
        type=type,
        account_id=account_id,
        bucket=bucket,
        region=region,
        base_path=base_path,
        path=path,
        role_arn=role_arn,
        access_key_id=access_key_id,
        secret_access_key=secret,
        workgroup=workgroup,
        schema=schema,
        database=database,
        frequency_minutes=frequency,
        direction=direction,
        import_name=import_name,
        models=models,
    )
    conn = created.connection
    if as_json:
        view = services.connections.view(conn)
        output.emit_json(
            {"connection": view, **created.policies, "warnings": list(created.warnings)}
        )
        return
    if conn.is_import:
        table = services.imports.spec(conn).table
        output.console.print(
            f"Created draft import connection [bold]{conn.name}[/]: byob reads the files of "
            f"import {conn.import_name} from {conn.location()} into {table}",
            highlight=False,
        )
    else:
        output.console.print(f"Created draft connection [bold]{conn.name}[/] → {conn.location()}")
    for warning in created.warnings:
        output.console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)
    _print_policies(created.policies)
    _print_next_steps(conn)


def _print_next_steps(conn: Connection) -> None:
    if conn.is_import:
        checks = "assumes the role, lists the base path, reads a file, checks it cannot write"
    elif conn.type is ConnectionType.LOCAL:
        checks = "writes and deletes a test file"
    else:
        checks = "assumes the role, writes and deletes a test object"
    first = ""
    if conn.auth is AuthKind.ROLE:
        first = (
            f"create the role {conn.role_name} in AWS account {conn.account_id} with the trust "
            "policy and the permissions policy above, then "
        )
    elif conn.auth is AuthKind.HMAC:
        first = (
            f"attach the permissions policy above to the IAM user of {conn.access_key_id}, then "
        )
    output.console.print(
        f"\n[bold]Next[/]: {first}run `byob connections validate {conn.name}` ({checks}) and "
        f"`byob connections activate {conn.name}`",
        highlight=False,
        soft_wrap=True,
    )


class PolicyFormat(StrEnum):
    POLICIES = "policies"
    CLOUDFORMATION = "cloudformation"
    TERRAFORM = "terraform"
    CLI = "cli"


@connections_cli.command("policy")
def policy(
    name: ConnectionArg,
    format: Annotated[
        PolicyFormat,
        typer.Option(
            "--format",
            help="policies (the documents to paste), or the role as code to run: a "
            "cloudformation template, a terraform snippet or aws cli commands.",
        ),
    ] = PolicyFormat.POLICIES,
    as_json: JsonOpt = False,
) -> None:
    """Print the role name, trust policy and permissions policy again, or the role as code."""
    services = build_services()
    policies = services.connections.policies(services.connections.get(name), operator_notes=True)
    if as_json:
        output.emit_json(policies)
    elif format is PolicyFormat.POLICIES:
        _print_policies(policies)
    else:
        _print_role_setup(name, policies, format)


def _print_role_setup(name: str, policies: dict[str, Any], format: PolicyFormat) -> None:
    """The code alone on stdout, ready to redirect to a file; where to run it on stderr."""
    setup = policies.get("role_setup")
    if setup is None:
        raise InvalidFieldError(
            f"connection {name!r} uses an access key, not a role: there is no role to create; "
            "attach its permissions policy (--format policies) to the key's IAM user",
            field="format",
        )
    if format is PolicyFormat.CLOUDFORMATION:
        cfn = setup["cloudformation"]
        sys.stdout.write(role_setup.template_text(cfn["template"]))
        if cfn["launch_url"]:
            output.errors.print(f"Launch stack: {cfn['launch_url']}", soft_wrap=True)
        output.errors.print(cfn["note"], soft_wrap=True)
        if cfn.get("operator_note"):
            output.errors.print(cfn["operator_note"], soft_wrap=True)
    else:
        sys.stdout.write(setup["terraform" if format is PolicyFormat.TERRAFORM else "aws_cli"])


def _print_policies(policies: dict[str, Any]) -> None:
    if not policies:
        return
    if "role_name" in policies:
        output.console.print(
            f"\n[bold]IAM role name[/] (create it with exactly this name): {policies['role_name']}"
            if policies["generated_role"]
            else f"\n[bold]IAM role[/] (yours: give it the trust policy and permissions policy "
            f"below): {policies['role_name']}"
        )
        output.console.print(f"[bold]Role ARN[/]: {policies['role_arn']}")
        output.console.print(f"[bold]External ID[/]: {policies['external_id']}")
        output.console.print("\n[bold]Trust policy[/]:")
        output.console.print_json(json.dumps(policies["trust_policy"]))
    output.console.print("\n[bold]Permissions policy[/]:")
    output.console.print_json(json.dumps(policies["permissions_policy"]))


@connections_cli.command("list")
def list_(tenant: Annotated[str | None, typer.Option()] = None, as_json: JsonOpt = False) -> None:
    """List connections, with their health, latest transfer and next run."""
    services = build_services()
    views = services.connections.every_view(tenant=tenant)
    if as_json:
        output.emit_json({"connections": views})
        return
    output.table(
        "Connections",
        ["name", "tenant", "type", "direction", "status", "location", "last transfer", "next run"],
        [
            [
                v["name"],
                v["tenant"],
                v["type"],
                direction_text(v),
                status_text(v),
                v["location"],
                _last_transfer(v["last_transfer"]),
                v["next_run"] or "",
            ]
            for v in views
        ],
    )


def direction_text(view: dict[str, Any]) -> str:
    """ "export", or "import" and the import it loads."""
    return f"import {view['import']}" if view["direction"] == "import" else str(view["direction"])


def status_text(view: dict[str, Any]) -> str:
    """The status, and why transfers are held when the connection is failing."""
    failing = view["failing"]
    if failing is None:
        return str(view["status"])
    return f"{view['status']}, failing ({failing['check']}) since {failing['since']:%Y-%m-%d %H:%M}"


def _last_transfer(transfer: dict[str, Any] | None) -> str:
    if transfer is None:
        return ""
    return (
        f"{transfer['status']} {transfer['started_at']:%Y-%m-%d %H:%M} ({transfer['rows']:,} rows)"
    )


@connections_cli.command("show")
def show(name: ConnectionArg, as_json: JsonOpt = False) -> None:
    """Show a connection: its settings, health, latest validation, latest transfer and next
    run."""
    services = build_services()
    data = services.connections.view(services.connections.get(name))
    if as_json:
        output.emit_json({"connection": data})
        return
    output.record(f"Connection {data['name']}", _shown_fields(data))
    if data["validation"]:
        _print_checks(data["validation"]["checks"])


# The settings each kind of connection has, and their labels; the rest do not apply to it.
_REMOTE = [
    ("account ID", "account_id"),
    ("bucket", "bucket"),
    ("region", "region"),
    ("base path", "base_path"),
]
_BY_AUTH = {
    "role": [("role name", "role_name"), ("role ARN", "role_arn"), ("external ID", "external_id")],
    "hmac": [("access key ID", "access_key_id")],
}
_ATHENA = [
    ("workgroup", "workgroup"),
    ("Glue database", "schema"),
    ("query results folder", "database"),
]


def _shown_fields(view: dict[str, Any]) -> list[tuple[str, Any]]:
    settings = [] if view["type"] == "local" else _REMOTE + _BY_AUTH.get(view["auth"], [])
    if view["type"] == "athena":
        settings += _ATHENA
    failing = view["failing"]
    validation = view["validation"]
    return [
        ("ID", view["id"]),
        ("tenant", view["tenant"]),
        ("type", view["type"]),
        ("direction", view["direction"]),
        *([("import", view["import"])] if view["direction"] == "import" else []),
        *([("models", _models_text(view))] if view["direction"] == "export" else []),
        ("status", status_text(view)),
        *([("failing", failing["message"]), ("what to do", failing["fix"])] if failing else []),
        ("location", view["location"]),
        ("auth", view["auth"]),
        *[(label, view[key]) for label, key in settings],
        ("frequency", f"every {view['frequency_minutes']} minutes"),
        ("next run", view["next_run"]),
        ("validated", _validated(validation)),
        ("last transfer", _last_transfer(view["last_transfer"]) or None),
        ("created", view["created_at"]),
        ("updated", view["updated_at"]),
    ]


def _validated(validation: dict[str, Any] | None) -> str | None:
    if validation is None:
        return None
    outcome = "passed" if validation["passed"] else "failed"
    stale = "" if validation["current"] else " (settings changed since: validate again)"
    return f"{outcome} {output.when(validation['at'])}{stale}"


@connections_cli.command("validate")
def validate(name: ConnectionArg, as_json: JsonOpt = False) -> None:
    """Run the connection's checks against AWS (or the directory) and keep the result."""
    done = build_services().connections.validate(name, actor=ACTOR)
    from byob.services.views import check_view

    conn = done.connection
    # As every door shows them: with what to fix; the operator's note stays (this is theirs).
    checks = [check_view(c, operator_notes=True) for c in done.validation.checks]
    if as_json:
        output.emit_json({"connection": conn.name, "passed": done.passed, "checks": checks})
    else:
        _print_checks(checks)
        step = after_validation(conn, passed=done.passed)
        hint = {
            "validated": f" (`byob connections activate {conn.name}`)",
            "validated_paused": f" (`byob connections resume {conn.name}`)",
        }.get(step, "")
        output.console.print(
            f"[bold {'green' if done.passed else 'red'}]{NEXT_STEPS[step]}[/]{hint}"
        )
    if not done.passed:
        raise typer.Exit(1)


def _print_checks(checks: list[dict[str, Any]]) -> None:
    marks = {
        "passed": "[green]✔ passed[/]",
        "failed": "[red]✘ failed[/]",
        "warning": "[yellow]! warning[/]",
        "skipped": "[dim]- skipped[/]",
    }
    output.table(
        "Validation",
        ["check", "result", "AWS code", "details"],
        [
            [
                c["name"],
                marks.get(c["outcome"], c["outcome"]),
                c.get("aws_code") or "",
                c["message"] + (f"\nWhat to fix: {c['fix']}" if c.get("fix") else ""),
            ]
            for c in checks
        ],
    )


@connections_cli.command("activate")
def activate(name: ConnectionArg, as_json: JsonOpt = False) -> None:
    """Activate a validated connection: transfers begin."""
    services = build_services()
    conn = services.connections.activate(name, actor=ACTOR)
    if as_json:
        output.emit_json({"connection": services.connections.view(conn)})
    else:
        output.console.print(f"Connection [bold]{conn.name}[/] is [green]active[/]")


@connections_cli.command("resume")
def resume(name: ConnectionArg, as_json: JsonOpt = False) -> None:
    """Resume a paused connection (its settings must still be validated): transfers go on."""
    services = build_services()
    conn = services.connections.resume(name, actor=ACTOR)
    if as_json:
        output.emit_json({"connection": services.connections.view(conn)})
    else:
        output.console.print(f"Connection [bold]{conn.name}[/]: {NEXT_STEPS[after_resume(conn)]}")


@models_cli.command("check")
def check_models(
    tenant: Annotated[
        str | None, typer.Option(help="Also count this tenant's rows in each model.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check every model against the source: columns, types, that the source user may read
    them, rows with a NULL cursor; exits 1 when a model's transfers would fail."""
    from byob.services.views import model_view

    services = build_services()
    models = services.models.check(tenant=tenant)
    imports = services.models.check_imports()
    captures = services.deletes.capture_states()
    problems = [p for m in models for p in m.problems] + [p for i in imports for p in i.problems]
    problems += [c.problem for c in captures if c.problem]
    if as_json:
        output.emit_json(
            {
                "models": [model_view(m) for m in models],
                "imports": [
                    {"name": i.name, "table": i.table, "problems": list(i.problems)}
                    for i in imports
                ],
                "delete_capture": [c.as_dict() for c in captures],
            }
        )
    else:
        for checked in imports:
            state = "[green]OK[/]" if not checked.problems else "[bold red]problems[/]"
            output.console.print(f"import {checked.name} → {checked.table}: {state}")
            for problem in checked.problems:
                output.errors.print(f"[bold red]problem:[/] {problem}", soft_wrap=True)
        for m in models:
            output.table(
                f"model {m.name} ← {m.model.spec.source}",
                ["column", "source column", "type", "Athena type"],
                [[c.name, c.source_name, str(c.type), c.type.glue_type()] for c in m.model.columns],
            )
            if m.tenant_rows is not None:
                output.console.print(f"tenant {tenant!r}: {m.tenant_rows:,} rows")
            for warning in m.warnings:
                output.console.print(f"[yellow]warning:[/] {warning}")
            for problem in m.problems:
                output.errors.print(f"[bold red]problem:[/] {problem}", soft_wrap=True)
        if tenant is not None and not any(m.tenant_rows for m in models):
            output.console.print(
                f"[yellow]warning:[/] tenant {tenant!r} has no rows in any model; check that it "
                "is the tenant column's exact value"
            )
        for capture in captures:
            said = {True: "installed", False: "not installed", None: "unknown"}[capture.installed]
            output.console.print(f"model {capture.model}: hard-delete capture {said}")
            if capture.problem:
                output.errors.print(f"[bold red]problem:[/] {capture.problem}", soft_wrap=True)
        ok = sum(1 for m in models if not m.problems)
        output.console.print(f"[green]{ok} of {len(models)} models OK[/]")
    if problems:
        raise typer.Exit(1)


@connections_cli.command("update")
def update(
    name: ConnectionArg,
    new_name: Annotated[str | None, typer.Option("--name", help="Rename.")] = None,
    bucket: Annotated[str | None, typer.Option()] = None,
    region: Annotated[str | None, typer.Option()] = None,
    base_path: Annotated[str | None, typer.Option()] = None,
    account_id: Annotated[str | None, typer.Option()] = None,
    role_arn: Annotated[str | None, typer.Option()] = None,
    access_key_id: Annotated[
        str | None,
        typer.Option(
            help="Switch to (or rotate) HMAC keys; the secret from BYOB_SECRET_ACCESS_KEY or a prompt."
        ),
    ] = None,
    rotate_secret: Annotated[
        bool, typer.Option("--rotate-secret", help="Replace the HMAC secret.")
    ] = False,
    frequency: Annotated[
        int | None, typer.Option("--frequency", help="Minutes: 15, 60, 360, 720 or 1440.")
    ] = None,
    models: Annotated[
        str | None,
        typer.Option(
            "--models",
            help="The models it receives, comma-separated ('*': every offered model); a model "
            "selected again starts with a backfill.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a connection; changing where or how it writes returns it to draft."""
    changes = {
        k: v
        for k, v in {
            "name": new_name,
            "bucket": bucket,
            "region": region,
            "base_path": base_path,
            "account_id": account_id,
            "role_arn": role_arn,
            "access_key_id": access_key_id,
            "frequency_minutes": frequency,
            "models": models,
        }.items()
        if v is not None
    }
    secret = None
    if access_key_id or rotate_secret:
        secret = os.environ.get("BYOB_SECRET_ACCESS_KEY") or typer.prompt(
            "Secret access key", hide_input=True
        )
    services = build_services()
    updated = services.connections.update(name, changes, secret_access_key=secret, actor=ACTOR)
    conn, policy_changed = updated.connection, updated.policy_changed()
    if as_json:
        view = {"connection": services.connections.view(conn)}
        output.emit_json(view | ({"policy_changed": policy_changed} if policy_changed else {}))
        return
    output.console.print(f"Connection [bold]{conn.name}[/] updated; status {conn.status}")
    if policy_changed:
        output.console.print(f"[yellow]note:[/] {policy_changed['message']}", highlight=False)
        for change in updated.policy_changes:
            output.console.print(f"statement {change.sid}", highlight=False)
            for line in change.lines():
                output.console.print(f"  {line}", highlight=False, markup=False)


@connections_cli.command("pause")
def pause(name: ConnectionArg, as_json: JsonOpt = False) -> None:
    """Stop a connection's transfers until it is resumed."""
    services = build_services()
    conn = services.connections.pause(name, actor=ACTOR)
    if as_json:
        output.emit_json({"connection": services.connections.view(conn)})
    else:
        output.console.print(f"Connection [bold]{conn.name}[/] is paused")


@connections_cli.command("delete")
def delete(
    name: ConnectionArg,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Forget a connection and its history (delivered data stays in the bucket)."""
    if not yes:
        typer.confirm(f"Delete connection {name} and its transfer history?", abort=True)
    build_services().connections.delete(name, actor=ACTOR)
    if as_json:
        output.emit_json({"deleted": name})
    else:
        output.console.print(f"Connection [bold]{name}[/] deleted")


def _models_text(view: dict[str, Any]) -> str:
    """What an export connection receives now, and how it was chosen."""
    receives, chosen = view["receives"], view["models"]
    if receives is None:  # the models file could not be read: the selection as stored
        return ", ".join(chosen) if chosen else "every offered model"
    if chosen is None:
        return f"every offered model ({', '.join(receives)})" if receives else "every offered model"
    return ", ".join(receives) or "none (no model it selected is offered now)"
