"""Signed manifests through the real `byob` command: a delivery verifies, a changed manifest, a
changed file and a stranger's key each fail naming what, a rotation keeps old manifests
verifiable, and the README's stand-alone check agrees (run as a recipient would, without byob)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.acceptance

BYOB = [sys.executable, "-m", "byob.cli"]
README = Path(__file__).resolve().parents[2] / "README.md"


def byob(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BYOB, *args], env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    source = tmp_path / "source.sqlite"
    with sqlite3.connect(source) as db:
        db.execute(
            "CREATE TABLE invoices (id INTEGER PRIMARY KEY, tenant_id TEXT, updated_at TIMESTAMPTZ)"
        )
        db.executemany(
            "INSERT INTO invoices VALUES (?, ?, '2026-01-01 00:00:00.000000')",
            [(i, "acme" if i % 2 else "globex") for i in range(1, 21)],
        )
    db.close()
    config = tmp_path / "byob.toml"
    config.write_text(
        f'[source]\nurl = "sqlite:///{source}"\n[[models]]\nname = "invoices"\n'
        'table = "invoices"\ntenant_column = "tenant_id"\ncursor_column = "updated_at"\n'
        'primary_key = ["id"]\n'
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BYOB_")}
    return clean | {
        "BYOB_HOME": str(tmp_path / ".byob"),
        "BYOB_CONFIG": str(config),
        "BYOB_SETTLE_LAG_SECONDS": "0",
    }


def deliver(env: dict[str, str], out: Path) -> list[Path]:
    """Onboard a local connection once and run a transfer; the manifests, oldest first."""
    if not out.exists():
        created = byob(
            env,
            *["connections", "create", "--name", "l1", "--tenant", "acme", "--type", "local"],
            *["--path", str(out)],
        )
        assert created.returncode == 0, created.stderr
        assert byob(env, "connections", "validate", "l1").returncode == 0
        assert byob(env, "connections", "activate", "l1").returncode == 0
    ran = byob(env, "transfers", "run", "l1", "--json")
    assert ran.returncode == 0, ran.stderr
    return sorted(out.glob("**/_manifests/**/*.json"))


def readme_snippet(tmp_path: Path) -> Path:
    text = README.read_text()
    code = text.split("```python\n# verify-a-manifest", 1)[1].split("```", 1)[0]
    path = tmp_path / "verify.py"
    path.write_text("# verify-a-manifest" + code)
    return path


def test_a_delivery_verifies_and_each_tampering_is_named(
    env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    [manifest] = deliver(env, out)
    signed = json.loads(manifest.read_text())
    assert signed["signature"]["alg"] == "Ed25519"

    shown = byob(env, "keys", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    [key] = json.loads(shown.stdout)["keys"]
    assert key["kid"] == signed["signature"]["kid"] and key["current"]

    ok = byob(env, "manifests", "verify", str(manifest), "--data-dir", str(out))
    assert ok.returncode == 0, ok.stderr
    assert f"signed by key {key['kid']}" in ok.stdout and "1 files match" in ok.stdout

    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(signed | {"rows": signed["rows"] + 1}, indent=2))
    tampered = byob(env, "manifests", "verify", str(changed))
    assert tampered.returncode == 1
    assert "signature does not match: the manifest was changed or not signed by this vendor" in (
        tampered.stderr
    )

    stranger = env | {"BYOB_HOME": str(tmp_path / "elsewhere")}  # a keyring of its own
    unknown = byob(stranger, "manifests", "verify", str(manifest))
    assert unknown.returncode == 1 and f"unknown key id '{key['kid']}'" in unknown.stderr

    [entry] = signed["files"]
    data = out / entry["key"]
    original = data.read_bytes()
    data.write_bytes(original[:100] + bytes([original[100] ^ 1]) + original[101:])
    bad_file = byob(env, "manifests", "verify", str(manifest), "--data-dir", str(out), "--json")
    assert bad_file.returncode == 1
    error = json.loads(bad_file.stdout)["error"]
    assert error["code"] == "manifest_invalid"
    assert error["message"] == f"file {entry['key']} sha256 differs from the manifest's"
    data.write_bytes(original)


def test_after_a_rotation_new_manifests_use_the_new_key_and_old_ones_still_verify(
    env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    [first] = deliver(env, out)
    rotated = byob(env, "keys", "rotate", "--json")
    assert rotated.returncode == 0, rotated.stderr
    rotation = json.loads(rotated.stdout)
    assert rotation["stored"] and rotation["signing_key"] is None
    assert rotation["previous"] == json.loads(first.read_text())["signature"]["kid"]

    second = next(m for m in deliver(env, out) if m != first)
    assert json.loads(second.read_text())["signature"]["kid"] == rotation["kid"]
    keys = json.loads(byob(env, "keys", "show", "--json").stdout)["keys"]
    assert [(k["kid"], k["current"]) for k in keys] == [
        (rotation["kid"], True),
        (rotation["previous"], False),
    ]
    for manifest in (first, second):
        checked = byob(env, "manifests", "verify", str(manifest), "--data-dir", str(out))
        assert checked.returncode == 0, checked.stderr


def test_with_settings_keys_rotate_prints_what_to_set(env: dict[str, str]) -> None:
    current = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
    rotated = byob(env | {"BYOB_SIGNING_KEY": current}, "keys", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    assert "BYOB_SIGNING_KEYS_OLD" in rotated.stdout and "BYOB_SIGNING_KEY" in rotated.stdout
    new_key = rotated.stdout.strip().splitlines()[-1]
    after = byob(
        env | {"BYOB_SIGNING_KEY": new_key, "BYOB_SIGNING_KEYS_OLD": current},
        "keys",
        "show",
        "--json",
    )
    assert after.returncode == 0, after.stderr
    assert [k["current"] for k in json.loads(after.stdout)["keys"]] == [True, False]


def test_the_readmes_snippet_verifies_without_byob(env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    [manifest] = deliver(env, out)
    keys = tmp_path / "byob-keys.json"
    keys.write_text(byob(env, "keys", "show", "--json").stdout)
    snippet = readme_snippet(tmp_path)
    # -I: isolated from byob's sources (the working directory, PYTHONPATH); only cryptography.
    run = [sys.executable, "-I", str(snippet)]

    ok = subprocess.run([*run, str(manifest), str(keys), str(out)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "manifest OK" in ok.stdout

    signed = json.loads(manifest.read_text())
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(signed | {"tenant": "globex"}, indent=2))
    refused = subprocess.run([*run, str(changed), str(keys)], capture_output=True, text=True)
    assert refused.returncode != 0 and "InvalidSignature" in refused.stderr

    data = out / signed["files"][0]["key"]
    data.write_bytes(data.read_bytes() + b"\0")
    bad_file = subprocess.run(
        [*run, str(manifest), str(keys), str(out)], capture_output=True, text=True
    )
    assert bad_file.returncode != 0 and "differs from the manifest" in bad_file.stderr
