"""Sealing secrets at rest with AES-256-GCM under the operator's key (BYOB_SECRET_KEY)."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from byob.errors import ConfigError, SecretError

_VERSION = "v1"


class SecretBox:
    """Seals and opens short secrets; the connection ID is bound in as associated data, so a
    sealed value copied onto another connection does not open."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ConfigError("BYOB_SECRET_KEY must decode to 32 bytes", field="BYOB_SECRET_KEY")
        self._aead = AESGCM(key)

    @classmethod
    def from_text(cls, text: str) -> SecretBox:
        try:
            return cls(base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4)))
        except ValueError as exc:
            raise ConfigError(
                "BYOB_SECRET_KEY must be 32 random bytes in base64url; create one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`",
                field="BYOB_SECRET_KEY",
            ) from exc

    def seal(self, plaintext: str, *, context: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return f"{_VERSION}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def open(self, token: str, *, context: str) -> str:
        try:
            version, body = token.split(":", 1)
            raw = base64.urlsafe_b64decode(body)
            if version != _VERSION:
                raise ValueError(version)
            return self._aead.decrypt(raw[:12], raw[12:], context.encode()).decode()
        except (ValueError, InvalidTag) as exc:
            raise SecretError() from exc


def fingerprint(secret: str) -> str:
    """Tells two secrets apart without revealing either (a keyed hash is not needed: the
    fingerprint is truncated and stored beside the sealed value, never shown)."""
    return hashlib.sha256(b"byob-secret:" + secret.encode()).hexdigest()[:16]


def load_or_create_key(configured: str, home: Path) -> SecretBox:
    """The configured key, or (embedded default) one generated once into a 0600 file."""
    if configured:
        return SecretBox.from_text(configured)
    path = home / "secret.key"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="))
    return SecretBox.from_text(path.read_text())
