"""`byob keys show|rotate` (the keys signing manifests) and `byob manifests verify`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from byob.cli import output
from byob.cli.root import ACTOR, JsonOpt, build_services, manifests_cli, signing_keys_cli
from byob.errors import ConfigError, ManifestError

WELL_KNOWN = "/.well-known/byob-keys.json"


@signing_keys_cli.command("show")
def show_keys(as_json: JsonOpt = False) -> None:
    """The public keys manifests are verified with: the current one and earlier ones."""
    services = build_services()
    jwks = services.manifests.keyring().jwks()
    where = services.adapters.settings.public_url.rstrip("/") + WELL_KNOWN
    if as_json:
        output.emit_json(jwks | {"published_at": where})
        return
    output.table(
        "Manifest signing keys (Ed25519)",
        ["kid", "public key (base64url)", "state"],
        [[k["kid"], k["x"], "current" if k["current"] else "previous"] for k in jwks["keys"]],
    )
    output.console.print(f"Published at {where}", highlight=False, soft_wrap=True)


@signing_keys_cli.command("rotate")
def rotate_keys(as_json: JsonOpt = False) -> None:
    """A new key for the manifests written from now on; earlier keys stay published, so the
    manifests they signed still verify. With BYOB_SIGNING_KEY set, prints the new key to set
    (byob cannot change its own settings)."""
    rotation = build_services().manifests.rotate(actor=ACTOR)
    if as_json:
        output.emit_json(
            {
                "kid": rotation.kid,
                "previous": rotation.previous,
                "stored": rotation.stored,
                "signing_key": rotation.key_text,
            }
        )
        return
    if rotation.stored:
        output.console.print(
            f"Manifests are now signed with key {rotation.kid}; key {rotation.previous} stays "
            "published, so the manifests it signed still verify.",
            highlight=False,
        )
        return
    output.console.print(
        f"New signing key {rotation.kid} (shown once). On every machine running byob:\n"
        f"  1. add the current BYOB_SIGNING_KEY (key {rotation.previous}) to the front of "
        "BYOB_SIGNING_KEYS_OLD (comma-separated), so it stays published;\n"
        "  2. set BYOB_SIGNING_KEY to the key below;\n"
        "  3. restart byob. Manifests written after that are signed with the new key.",
        highlight=False,
    )
    output.console.print(rotation.key_text or "", highlight=False, soft_wrap=True)


@manifests_cli.command("verify")
def verify(
    manifest: Annotated[
        str, typer.Argument(help="The manifest: a file, or s3://bucket/key.", show_default=False)
    ],
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Check the files too: the directory the delivery's keys start in."),
    ] = None,
    s3: Annotated[
        str | None,
        typer.Option(
            help="Check the files too: s3://bucket[/prefix] the delivery's keys start in."
        ),
    ] = None,
    keys: Annotated[
        str | None,
        typer.Option(
            help=f"The vendor's public keys ({WELL_KNOWN}, a file or https URL); default: this "
            "installation's."
        ),
    ] = None,
    endpoint_url: Annotated[
        str | None, typer.Option(envvar="BYOB_AWS_ENDPOINT_URL", help="An S3-compatible endpoint.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check a manifest's signature and, with --data-dir or --s3, every file's size and
    SHA-256. Exits 1 naming each check that failed."""
    from byob.services.manifests import verify_manifest

    if data_dir is not None and s3 is not None:
        raise ConfigError("give --data-dir or --s3, not both", field="--s3")
    client = _s3_client(endpoint_url) if s3 or manifest.startswith("s3://") else None
    files: Any = None
    if data_dir is not None:
        from byob.destinations.delivered import LocalDeliveredFiles

        files = LocalDeliveredFiles(data_dir)
    elif s3 is not None:
        from byob.destinations.delivered import S3DeliveredFiles

        bucket, prefix = _split_s3(s3, "--s3")
        files = S3DeliveredFiles(client, bucket, prefix)
    public = _load_keys(keys) if keys else build_services().manifests.public_keys()
    result = verify_manifest(_read_manifest(manifest, client), public, files)
    if not result.ok:
        raise ManifestError("; ".join(result.problems), field="manifest")
    checked = f"; {result.files_checked} files match" if files is not None else ""
    if as_json:
        output.emit_json({"ok": True, "kid": result.kid, "files_checked": result.files_checked})
    else:
        output.console.print(
            f"manifest OK: signed by key {result.kid}{checked}", highlight=False, soft_wrap=True
        )


def _s3_client(endpoint_url: str | None) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint_url or None)


def _split_s3(url: str, option: str) -> tuple[str, str]:
    if not url.startswith("s3://") or not url[5:].split("/", 1)[0]:
        raise ConfigError(f"{option} must be s3://bucket[/path]", field=option)
    bucket, _, rest = url[5:].partition("/")
    return bucket, rest


def _read_manifest(where: str, client: Any) -> bytes:
    if where.startswith("s3://"):
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = _split_s3(where, "manifest")
        try:
            body: bytes = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise ManifestError(f"cannot read {where}: {exc}", field="manifest") from exc
        return body
    try:
        return Path(where).read_bytes()
    except OSError as exc:
        raise ManifestError(f"cannot read {where}: {exc.strerror}", field="manifest") from exc


def _load_keys(where: str) -> dict[str, bytes]:
    from byob.domain.signing import keys_from_jwks

    try:
        if where.startswith(("https://", "http://")):
            import urllib.request

            with urllib.request.urlopen(where, timeout=20) as response:
                text = response.read()
        else:
            text = Path(where).read_bytes()
        return keys_from_jwks(json.loads(text))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--keys {where}: {exc}", field="--keys") from exc
