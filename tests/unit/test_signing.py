"""Signed manifests: the canonical form, signing and verifying, the keyring and its rotation,
and where the public keys are shown."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from byob.container import Byob
from byob.destinations.delivered import LocalDeliveredFiles
from byob.domain.connections import Status
from byob.domain.credentials import parse_lifetime
from byob.domain.signing import (
    Signer,
    canonical_json,
    keys_from_jwks,
    public_keys_by_kid,
    verify_signature,
)
from byob.errors import ConfigError
from byob.services import Services
from byob.services.manifests import verify_manifest
from byob.settings import load_settings
from byob.store.signing_keys import add_key, load_keyring
from byob.web.app import create_app

SEED = bytes(range(32))
DOC: dict[str, Any] = {
    "version": 1,
    "tenant": "acmé",
    "note": None,
    "window": {"cursor_up_to": "2026-01-01T00:00:00+00:00", "cursor_after": None},
    "files": [{"key": "x/a.parquet", "rows": 2, "bytes": 5, "sha256": "0" * 64}],
    "excluded_rows": 0,
    "ok": True,
}


def test_the_canonical_form_is_jcs_and_the_readme_one_liner_for_manifests() -> None:
    assert canonical_json({"b": 1, "a": [True, None, "é\n\u0001"]}) == (
        '{"a":[true,null,"é\\n\\u0001"],"b":1}'.encode()
    )
    one_liner = json.dumps(DOC, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_json(DOC) == one_liner.encode()
    with pytest.raises(ValueError, match="float"):
        canonical_json({"x": 1.5})
    with pytest.raises(ValueError, match="too large"):
        canonical_json({"x": 2**60})


def test_a_signed_document_verifies_and_any_change_is_named() -> None:
    signer = Signer(SEED)
    signed = signer.sign(DOC)
    keys = public_keys_by_kid([signer.public])
    assert signed["signature"]["alg"] == "Ed25519"
    assert signed["signature"]["kid"] == signer.public.kid and len(signer.public.kid) == 16
    assert verify_signature(signed, keys).ok
    # Re-serialized (as written: indented, ASCII escapes) it still verifies.
    assert verify_signature(json.loads(json.dumps(signed, indent=2)), keys).ok

    changed = verify_signature(signed | {"excluded_rows": 1}, keys)
    assert not changed.ok and changed.problem is not None
    assert changed.problem.startswith("signature does not match")
    other = Signer(bytes(32))
    stranger = verify_signature(other.sign(DOC), keys)
    assert stranger.problem is not None and f"unknown key id {other.public.kid!r}" in (
        stranger.problem
    )
    unsigned = verify_signature(DOC, keys)
    assert unsigned.problem == "the manifest is not signed"


def test_the_keyring_file_is_private_and_rotation_keeps_earlier_keys_published(
    tmp_path: Path,
) -> None:
    first = load_keyring("", "", tmp_path)
    path = tmp_path / "signing.keys"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_keyring("", "", tmp_path).current.public == first.current.public  # stable
    before = first.current.sign(DOC)

    rotated = add_key(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert rotated.current.public.kid != first.current.public.kid
    assert [k.kid for k in rotated.public_keys()] == [
        rotated.current.public.kid,
        first.current.public.kid,
    ]
    published = keys_from_jwks(json.loads(json.dumps(rotated.jwks())))
    assert verify_signature(before, published).ok  # old manifests still verify
    assert verify_signature(rotated.current.sign(DOC), published).ok
    assert [k["current"] for k in rotated.jwks()["keys"]] == [True, False]


def test_configured_keys_win_and_a_postgresql_state_store_needs_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("BYOB_SIGNING_KEY", "BYOB_SIGNING_KEYS_OLD", "BYOB_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"  # SEED, base64url
    old = Signer(bytes(32))
    old_text = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    ring = load_keyring(key, old_text, tmp_path)
    assert ring.current.public == Signer(SEED).public and not (tmp_path / "signing.keys").exists()
    assert [k.kid for k in ring.public_keys()] == [Signer(SEED).public.kid, old.public.kid]

    secret = "dGVzdC1rZXktZm9yLWJ5b2ItdGVzdHMtMzItYnl0ZXM"
    with pytest.raises(ConfigError) as missing:
        load_settings(database_url="postgresql://h/db", secret_key=secret)
    assert missing.value.field == "BYOB_SIGNING_KEY" and "every machine" in missing.value.message
    with pytest.raises(ConfigError) as malformed:
        load_settings(signing_key="short")
    assert malformed.value.field == "BYOB_SIGNING_KEY"
    with pytest.raises(ConfigError) as bad_old:
        load_settings(signing_keys_old="short")
    assert bad_old.value.field == "BYOB_SIGNING_KEYS_OLD"


def test_verifying_files_names_the_one_that_differs(tmp_path: Path) -> None:
    import hashlib

    data = tmp_path / "x" / "a.parquet"
    data.parent.mkdir()
    data.write_bytes(b"hello")
    doc = DOC | {
        "files": [
            {
                "key": "x/a.parquet",
                "rows": 2,
                "bytes": 5,
                "sha256": hashlib.sha256(b"hello").hexdigest(),
            }
        ]
    }
    signer = Signer(SEED)
    raw = json.dumps(signer.sign(doc), indent=2).encode()
    keys = public_keys_by_kid([signer.public])
    files = LocalDeliveredFiles(tmp_path)
    good = verify_manifest(raw, keys, files)
    assert good.ok and good.files_checked == 1 and good.kid == signer.public.kid

    data.write_bytes(b"jello")
    assert verify_manifest(raw, keys, files).problems == (
        "file x/a.parquet sha256 differs from the manifest's",
    )
    data.write_bytes(b"hello!")
    [sized] = verify_manifest(raw, keys, files).problems
    assert sized.startswith("file x/a.parquet size differs: 6 bytes")
    data.unlink()
    [missing] = verify_manifest(raw, keys, files).problems
    assert missing.startswith("file x/a.parquet is missing")
    assert verify_manifest(b"{", keys).problems == ("not a manifest: not JSON",)


def test_the_keys_are_published_and_shown_on_the_recipients_page(tmp_path: Path) -> None:
    byob = Byob(
        load_settings(home=tmp_path / ".byob", service_principal_arn="arn:aws:iam::1:role/b")
    )
    byob.migrate()
    services = Services(byob)
    try:
        current = services.manifests.keyring().current.public
        conn = services.connections.create(
            actor="cli",
            name="c1",
            tenant="acme",
            type="s3",
            account_id="210987654321",
            bucket="bkt",
            region="us-east-1",
        ).connection
        # Activated as if validated (no AWS here): the page only reads it.
        services.adapters.state.connections.save(
            type(conn)(**{**conn.__dict__, "status": Status.ACTIVE})
        )
        _, token = services.links.create_for(
            "acme", lifetime=parse_lifetime("1d"), actor="cli", connection="c1", read_only=True
        )
        with TestClient(create_app(services)) as client:
            published = client.get("/.well-known/byob-keys.json")  # no credentials
            assert published.status_code == 200
            [jwk] = published.json()["keys"]
            assert jwk["kid"] == current.kid and jwk["crv"] == "Ed25519" and jwk["current"]
            assert keys_from_jwks(published.json()) == {current.kid: current.raw}

            client.get(f"/connect/{token}")
            page = client.get("/connect/delivery")
            assert page.status_code == 200, page.text[:2000]
            shown = re.sub(r"<[^>]+>", " ", page.text)
            assert current.kid in shown and jwk["x"] in shown
            assert "/.well-known/byob-keys.json" in page.text
    finally:
        byob.close()
