"""Sealing secrets at rest with AES-256-GCM under the operator's key (BYOB_SECRET_KEY).

A sealed value names the key that sealed it (a short hash of the key, never the key), so that
during a rotation the old keys (BYOB_SECRET_KEYS_OLD) still open what they sealed while every
new value is sealed under the new key; `byob secrets rotate` re-seals the rest."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag

from byob.errors import ConfigError, SecretError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = "v2"  # v2:<key id>:<nonce + ciphertext>; v1 (no key id) still opens
MAKE_KEY = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"


def key_id(key: bytes) -> str:
    """Names a key in sealed values without revealing it."""
    return hashlib.sha256(b"byob-key-id:" + key).hexdigest()[:8]


class SecretBox:
    """Seals and opens short secrets; the connection ID is bound in as associated data, so a
    sealed value copied onto another connection does not open. Seals under ``key``; opens
    under it or any of ``old`` (a rotation in progress)."""

    def __init__(self, key: bytes, old: tuple[bytes, ...] = ()) -> None:
        for k in (key, *old):
            if len(k) != 32:
                raise ConfigError(
                    "BYOB_SECRET_KEY must decode to 32 bytes", field="BYOB_SECRET_KEY"
                )
        # The cipher modules (~4 ms) load with the first box: every command imports this
        # module, few of them seal or open a secret (a transfer to a local folder never).
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self.key_id = key_id(key)
        self._aead: AESGCM = AESGCM(key)
        self._all = {key_id(k): AESGCM(k) for k in (*old, key)}

    @classmethod
    def from_text(cls, text: str, old: str = "") -> SecretBox:
        return cls(
            _decode(text, "BYOB_SECRET_KEY"),
            tuple(_decode(t, "BYOB_SECRET_KEYS_OLD") for t in old.split(",") if t.strip()),
        )

    def seal(self, plaintext: str, *, context: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return f"{_VERSION}:{self.key_id}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def sealed_by_current_key(self, token: str) -> bool:
        return token.startswith(f"{_VERSION}:{self.key_id}:")

    def open(self, token: str, *, context: str) -> str:
        try:
            version, rest = token.split(":", 1)
            if version == _VERSION:
                kid, body = rest.split(":", 1)
                candidates = [self._all[kid]] if kid in self._all else []
            elif version == "v1":
                body, candidates = rest, list(self._all.values())
            else:
                raise ValueError(version)
            raw = base64.urlsafe_b64decode(body)
        except (ValueError, KeyError) as exc:
            raise SecretError() from exc
        for aead in candidates:
            try:
                return aead.decrypt(raw[:12], raw[12:], context.encode()).decode()
            except (InvalidTag, ValueError):  # ValueError: too short to hold a nonce
                continue
        raise SecretError()


def _decode(text: str, variable: str) -> bytes:
    text = text.strip()
    try:
        key = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        key = b""
    if len(key) != 32:
        raise ConfigError(
            f"{variable} must be 32 random bytes in base64url; create one with `{MAKE_KEY}`",
            field=variable,
        )
    return key


def fingerprint(secret: str) -> str:
    """Tells two secrets apart without revealing either (a keyed hash is not needed: the
    fingerprint is truncated and stored beside the sealed value, never shown)."""
    return hashlib.sha256(b"byob-secret:" + secret.encode()).hexdigest()[:16]


def load_or_create_key(configured: str, home: Path, old: str = "") -> SecretBox:
    """The configured key, or (embedded default) one generated once into a 0600 file."""
    if configured:
        return SecretBox.from_text(configured, old)
    path = home / "secret.key"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="))
    return SecretBox.from_text(path.read_text(), old)


def load_or_create_salt(configured: str, home: Path, *, production: bool) -> bytes:
    """The salt of hashed columns (BYOB_HASH_SALT), or (embedded default) one generated once
    into a 0600 file. With a PostgreSQL state store it must be set: machines with salts of
    their own would hash one value differently."""
    if configured:
        return configured.encode()
    if production:
        raise ConfigError(
            "BYOB_HASH_SALT is required when a model hashes columns and the state store is "
            "PostgreSQL: every machine running byob must hash with the same salt. Create one "
            f"with `{MAKE_KEY}` and set it on every machine",
            field="BYOB_HASH_SALT",
        )
    path = home / "hash.salt"
    if not path.exists():
        # Written whole, then linked into place: a process starting at the same moment reads
        # either no file or the whole salt, and the first link wins.
        home.mkdir(parents=True, exist_ok=True)
        draft = home / f".hash.salt.{os.getpid()}"
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip().encode()
