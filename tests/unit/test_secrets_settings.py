"""Secrets sealed at rest, the generated key file, and settings from BYOB_* variables."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from byob.errors import ConfigError, SecretError
from byob.settings import Settings, load_settings
from byob.store.secrets import SecretBox, fingerprint, load_or_create_key

KEY = bytes(range(32))
KEY_TEXT = base64.urlsafe_b64encode(KEY).decode().rstrip("=")
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(KEY)


def test_seal_open_round_trip(box: SecretBox) -> None:
    token = box.seal(SECRET, context="conn-1")
    assert box.open(token, context="conn-1") == SECRET


@pytest.mark.parametrize("plaintext", ["", "x", "ünïcødé ✓", "s" * 5000])
def test_round_trip_any_text(box: SecretBox, plaintext: str) -> None:
    assert box.open(box.seal(plaintext, context="c"), context="c") == plaintext


def test_sealed_text_never_contains_the_plaintext(box: SecretBox) -> None:
    token = box.seal(SECRET, context="conn-1")
    assert token.startswith(f"v2:{box.key_id}:")  # names its key, never holds it
    assert SECRET not in token and KEY_TEXT not in token
    assert base64.urlsafe_b64encode(SECRET.encode()).decode()[:20] not in token
    assert SECRET.encode() not in base64.urlsafe_b64decode(token.split(":", 2)[2])


def test_sealing_twice_differs(box: SecretBox) -> None:
    assert box.seal(SECRET, context="c") != box.seal(SECRET, context="c")


def test_wrong_context_is_refused(box: SecretBox) -> None:
    token = box.seal(SECRET, context="conn-1")
    with pytest.raises(SecretError):
        box.open(token, context="conn-2")


def _flip(token: str, index: int) -> str:
    version, kid, body = token.split(":", 2)
    raw = bytearray(base64.urlsafe_b64decode(body))
    raw[index] ^= 0x01
    return f"{version}:{kid}:{base64.urlsafe_b64encode(bytes(raw)).decode()}"


@pytest.mark.parametrize("index", [0, 11, 12, -1])  # nonce, ciphertext, tag
def test_tampered_token_is_refused(box: SecretBox, index: int) -> None:
    token = box.seal(SECRET, context="c")
    with pytest.raises(SecretError):
        box.open(_flip(token, index), context="c")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda tok: tok.replace("v2:", "v3:", 1),  # a version byob does not know
        lambda tok: tok.replace(tok.split(":")[1], "00000000", 1),  # a key it does not have
        lambda tok: tok.split(":", 1)[1],  # no version
        lambda tok: tok[:-8],  # truncated
        lambda tok: "v1:",
        lambda tok: "v1:!!!not-base64!!!",
        lambda tok: "",
    ],
)
def test_malformed_token_is_refused(box: SecretBox, mangle) -> None:
    token = box.seal(SECRET, context="c")
    with pytest.raises(SecretError):
        box.open(mangle(token), context="c")


def test_wrong_key_is_refused(box: SecretBox) -> None:
    token = box.seal(SECRET, context="c")
    other = SecretBox(bytes(reversed(KEY)))
    with pytest.raises(SecretError) as info:
        other.open(token, context="c")
    assert SECRET not in str(info.value)


def test_from_text_matches_raw_key(box: SecretBox) -> None:
    token = box.seal(SECRET, context="c")
    assert SecretBox.from_text(KEY_TEXT).open(token, context="c") == SECRET
    assert SecretBox.from_text(f"  {KEY_TEXT}=\n").open(token, context="c") == SECRET


@pytest.mark.parametrize("text", ["", "too-short", base64.urlsafe_b64encode(b"k" * 16).decode()])
def test_bad_key_text_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        SecretBox.from_text(text)
    assert info.value.field == "BYOB_SECRET_KEY"


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_key_must_be_32_bytes(size: int) -> None:
    with pytest.raises(ConfigError):
        SecretBox(b"k" * size)


def test_fingerprint_tells_secrets_apart_without_revealing_them() -> None:
    assert fingerprint(SECRET) == fingerprint(SECRET)
    assert fingerprint(SECRET) != fingerprint(SECRET + "x")
    assert len(fingerprint(SECRET)) == 16
    assert SECRET[:8] not in fingerprint(SECRET)


# --- key file -------------------------------------------------------------------------------


def test_load_or_create_key_creates_a_0600_file_once(tmp_path: Path) -> None:
    home = tmp_path / "home" / "nested"
    first = load_or_create_key("", home)
    key_file = home / "secret.key"
    assert key_file.is_file()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    content = key_file.read_text()
    assert len(base64.urlsafe_b64decode(content + "=" * (-len(content) % 4))) == 32

    token = first.seal(SECRET, context="c")
    second = load_or_create_key("", home)
    assert key_file.read_text() == content  # reused, not regenerated
    assert second.open(token, context="c") == SECRET


def test_load_or_create_key_keys_differ_between_homes(tmp_path: Path) -> None:
    token = load_or_create_key("", tmp_path / "a").seal(SECRET, context="c")
    with pytest.raises(SecretError):
        load_or_create_key("", tmp_path / "b").open(token, context="c")


def test_configured_key_wins_and_writes_no_file(tmp_path: Path) -> None:
    box = load_or_create_key(KEY_TEXT, tmp_path)
    assert not (tmp_path / "secret.key").exists()
    assert box.open(SecretBox(KEY).seal(SECRET, context="c"), context="c") == SECRET


# --- settings -------------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("BYOB_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_defaults(clean_env: pytest.MonkeyPatch) -> None:
    s = load_settings()
    assert s.settle_lag_seconds == 30.0
    assert s.file_target_bytes == 256 << 20
    assert s.state_url == f"sqlite:///{(Path('.byob') / 'state.sqlite').resolve()}"


def test_env_vars_are_read(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("BYOB_SETTLE_LAG_SECONDS", "5")
    clean_env.setenv("BYOB_HOME", str(tmp_path))
    clean_env.setenv("BYOB_DATABASE_URL", "postgresql://h/db")
    clean_env.setenv("BYOB_SECRET_KEY", KEY_TEXT)
    clean_env.setenv("BYOB_SIGNING_KEY", KEY_TEXT)
    s = load_settings()
    assert s.settle_lag_seconds == 5.0
    assert s.home == tmp_path
    assert s.state_url == "postgresql://h/db"


def test_overrides_beat_env_and_none_is_ignored(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("BYOB_SETTLE_LAG_SECONDS", "5")
    assert load_settings(settle_lag_seconds=7).settle_lag_seconds == 7
    assert load_settings(settle_lag_seconds=None).settle_lag_seconds == 5


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("BYOB_SETTLE_LAG_SECONDS", "-1"),
        ("BYOB_SETTLE_LAG_SECONDS", "abc"),
        ("BYOB_FILE_TARGET_BYTES", "1000"),
        ("BYOB_ROW_GROUP_BYTES", "12"),
        ("BYOB_MULTIPART_PART_BYTES", str((5 << 20) - 1)),
        ("BYOB_CHECK_TIMEOUT_SECONDS", "0"),
        ("BYOB_AWS_MAX_ATTEMPTS", "zero"),
    ],
)
def test_bad_env_var_names_the_variable(
    clean_env: pytest.MonkeyPatch, var: str, value: str
) -> None:
    clean_env.setenv(var, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.field == var
    assert info.value.message.startswith(f"{var}:")


def test_unknown_override_is_refused(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(no_such_setting=1)
    assert info.value.field == "BYOB_NO_SUCH_SETTING"


def test_settings_are_frozen(clean_env: pytest.MonkeyPatch) -> None:
    s = load_settings()
    assert isinstance(s, Settings)
    with pytest.raises(Exception, match="frozen"):
        s.settle_lag_seconds = 1.0  # type: ignore[misc]


# -- rotation and production mode -------------------------------------------------------------

NEW_KEY = bytes(range(100, 132))
NEW_TEXT = base64.urlsafe_b64encode(NEW_KEY).decode().rstrip("=")


def test_values_sealed_before_key_ids_still_open(box: SecretBox) -> None:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = b"\x01" * 12
    v1 = (
        "v1:"
        + base64.urlsafe_b64encode(
            nonce + AESGCM(KEY).encrypt(nonce, SECRET.encode(), b"c")
        ).decode()
    )
    assert box.open(v1, context="c") == SECRET
    assert not box.sealed_by_current_key(v1)


def test_during_a_rotation_old_keys_open_and_the_new_one_seals(box: SecretBox) -> None:
    old_token = box.seal(SECRET, context="c")
    rotating = SecretBox.from_text(NEW_TEXT, old=KEY_TEXT)
    assert rotating.open(old_token, context="c") == SECRET
    new_token = rotating.seal(SECRET, context="c")
    assert rotating.sealed_by_current_key(new_token) and not rotating.sealed_by_current_key(
        old_token
    )
    with pytest.raises(SecretError):
        SecretBox(NEW_KEY).open(old_token, context="c")  # the old key gone: it no longer opens
    assert SecretBox(NEW_KEY).open(new_token, context="c") == SECRET


def test_a_postgresql_state_store_needs_a_shared_key(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as missing:
        load_settings(database_url="postgresql://h/db")
    assert missing.value.field == "BYOB_SECRET_KEY"
    assert "every machine" in missing.value.message and "token_urlsafe(32)" in missing.value.message
    with pytest.raises(ConfigError) as malformed:
        load_settings(database_url="postgresql://h/db", secret_key="not-a-key")
    assert malformed.value.field == "BYOB_SECRET_KEY"
    with pytest.raises(ConfigError) as old:
        load_settings(secret_key=KEY_TEXT, secret_keys_old="short")
    assert old.value.field == "BYOB_SECRET_KEYS_OLD"
    assert load_settings(
        database_url="postgresql://h/db", secret_key=KEY_TEXT, signing_key=KEY_TEXT
    ).is_production
    assert not load_settings().is_production  # the embedded default makes its own key file


def test_rotate_reseals_every_secret_under_the_new_key(tmp_path: Path) -> None:
    from byob.container import Byob
    from byob.services import Services

    def services(**keys: str) -> Services:
        byob = Byob(
            load_settings(home=tmp_path, service_principal_arn="arn:aws:iam::1:user/b", **keys)
        )
        byob.migrate()
        return Services(byob)

    before = services(secret_key=KEY_TEXT)
    for name in ("h1", "h2"):
        before.connections.create(
            actor="cli",
            name=name,
            tenant="acme",
            type="s3",
            account_id="210987654321",
            bucket="bkt",
            region="us-east-1",
            access_key_id="AKIAIOSFODNN7EXAMPLE",
            secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        )
    before.adapters.close()  # type: ignore[attr-defined]

    with pytest.raises(SecretError, match="BYOB_SECRET_KEYS_OLD"):
        services(secret_key=NEW_TEXT).secrets.rotate(actor="cli")  # the old key not given
    rotating = services(secret_key=NEW_TEXT, secret_keys_old=KEY_TEXT)
    assert rotating.secrets.rotate(actor="cli") == 2
    assert rotating.secrets.rotate(actor="cli") == 0  # already under the new key
    audit = [e for e in rotating.adapters.state.audit.recent() if e["action"] == "secrets.rotate"]
    assert [e["changes"]["resealed"] for e in audit] == [0, 2]
    rotating.adapters.close()  # type: ignore[attr-defined]

    after = services(secret_key=NEW_TEXT)  # the old key gone
    conn = after.connections.get("h1")
    assert after.adapters.secret_of(conn) == "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # type: ignore[attr-defined]
    after.adapters.close()  # type: ignore[attr-defined]
