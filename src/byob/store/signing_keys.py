"""Where the keys signing manifests are kept: BYOB_SIGNING_KEY (the current one) and
BYOB_SIGNING_KEYS_OLD (earlier ones, still published), or, on the embedded default, a keyring
file in the home directory (mode 0600, one base64url private key a line, the last one current)
that `byob keys rotate` appends to."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from byob.domain.signing import Keyring, Signer, from_b64url
from byob.errors import ConfigError
from byob.store.secrets import MAKE_KEY

KEYRING_FILE = "signing.keys"


def parse_key(text: str, variable: str) -> Signer:
    """A private key given as base64url of its 32-byte Ed25519 seed."""
    try:
        return Signer(from_b64url(text))
    except ValueError:
        raise ConfigError(
            f"{variable} must be an Ed25519 private key: 32 random bytes in base64url; create "
            f"one with `{MAKE_KEY}`",
            field=variable,
        ) from None


def parse_old(text: str) -> list[Signer]:
    return [parse_key(t, "BYOB_SIGNING_KEYS_OLD") for t in text.split(",") if t.strip()]


def new_key_text() -> str:
    return secrets.token_urlsafe(32)


def keyring_path(home: Path) -> Path:
    return home / KEYRING_FILE


def load_keyring(configured: str, old: str, home: Path) -> Keyring:
    """The configured keys, or (embedded default) the keyring file, created on first use."""
    earlier = parse_old(old)
    if configured:
        current = parse_key(configured, "BYOB_SIGNING_KEY")
    else:
        path = keyring_path(home)
        if not path.exists():
            _create(path, new_key_text() + "\n")
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        if not lines:
            raise ConfigError(f"{path} holds no signing key", field="BYOB_SIGNING_KEY")
        signers = [parse_key(line, str(path)) for line in lines]
        current, earlier = signers[-1], [*reversed(signers[:-1]), *earlier]
    return Keyring(current, tuple(s.public for s in earlier))


def add_key(home: Path) -> Keyring:
    """Append a new key to the keyring file: the one manifests are signed with from now on."""
    path = keyring_path(home)
    if not path.exists():
        load_keyring("", "", home)
    text = path.read_text()
    if text and not text.endswith("\n"):
        text += "\n"
    tmp = _written(path, text + new_key_text() + "\n")
    os.replace(tmp, path)  # readers see the old keyring or the new one, never half of it
    return load_keyring("", "", home)


def _create(path: Path, text: str) -> None:
    """Create ``path`` whole, unless another process has created it first."""
    tmp = _written(path, text)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


def _written(path: Path, text: str) -> Path:
    """``text`` in a new 0600 file beside ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    return tmp
