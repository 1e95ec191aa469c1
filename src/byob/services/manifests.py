"""Signed manifests: the keys that sign them (show, rotate) and verifying a delivered manifest
and its files."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from byob.domain.signing import Keyring, public_keys_by_kid, verify_signature
from byob.services.ports import Adapters
from byob.store import signing_keys

_CHUNK = 1 << 20


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...

    def close(self) -> None: ...


class DeliveredFiles(Protocol):
    """Where a manifest's files are read back from: a directory, a bucket."""

    def open(self, key: str) -> Readable | None:
        """The object's bytes; None when there is no such object."""

    def url(self, key: str) -> str: ...


@dataclass(frozen=True, kw_only=True)
class Verification:
    kid: str | None
    signature_ok: bool
    files_checked: int  # 0 when no files were read
    problems: tuple[str, ...]  # each names what failed

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True, kw_only=True)
class Rotation:
    kid: str  # the new current key
    previous: str  # the key it replaces, still published
    stored: bool  # False: the keys come from settings, which byob cannot change
    key_text: str | None = None  # the new private key to set, when not stored


def verify_manifest(
    raw: bytes, keys: Mapping[str, bytes], files: DeliveredFiles | None = None
) -> Verification:
    """Check the signature of a manifest against ``keys`` (kid → public key) and, given where
    its files are, every file's size and SHA-256."""
    try:
        document = json.loads(raw)
    except ValueError:
        return Verification(
            kid=None, signature_ok=False, files_checked=0, problems=("not a manifest: not JSON",)
        )
    if not isinstance(document, dict) or not isinstance(document.get("files"), list):
        return Verification(
            kid=None,
            signature_ok=False,
            files_checked=0,
            problems=("not a manifest: no list of files",),
        )
    signature = verify_signature(document, keys)
    problems = [signature.problem] if signature.problem else []
    checked = 0
    if files is not None:
        for entry in document["files"]:
            problem = _check_file(entry, files)
            checked += 1
            if problem:
                problems.append(problem)
    return Verification(
        kid=signature.kid,
        signature_ok=signature.ok,
        files_checked=checked,
        problems=tuple(problems),
    )


def _check_file(entry: Any, files: DeliveredFiles) -> str | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
        return f"file entry {entry!r} has no key"
    key = entry["key"]
    body = files.open(key)
    if body is None:
        return f"file {key} is missing ({files.url(key)})"
    digest, size = hashlib.sha256(), 0
    try:
        while chunk := body.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    finally:
        body.close()
    if size != entry.get("bytes"):
        return f"file {key} size differs: {size} bytes, the manifest says {entry.get('bytes')}"
    if digest.hexdigest() != entry.get("sha256"):
        return f"file {key} sha256 differs from the manifest's"
    return None


class ManifestService:
    def __init__(self, adapters: Adapters) -> None:
        self.adapters = adapters

    def keyring(self) -> Keyring:
        return self.adapters.signing_keys

    def public_keys(self) -> dict[str, bytes]:
        """kid → public key, of every key byob publishes (current and previous)."""
        return public_keys_by_kid(self.keyring().public_keys())

    def rotate(self, *, actor: str) -> Rotation:
        """A new signing key for the manifests written from now on; the old one stays
        published, so the manifests it signed still verify. On the embedded default the key is
        added to the keyring file; when the keys come from BYOB_SIGNING_KEY, a new key is made
        for the operator to set (nothing changes until they do)."""
        settings = self.adapters.settings
        before = self.keyring().current.public.kid
        if settings.signing_key:
            text = signing_keys.new_key_text()
            new = signing_keys.parse_key(text, "BYOB_SIGNING_KEY").public.kid
            return Rotation(kid=new, previous=before, stored=False, key_text=text)
        keyring = signing_keys.add_key(settings.home)
        rotation = Rotation(kid=keyring.current.public.kid, previous=before, stored=True)
        with self.adapters.state.atomic() as tx:
            tx.audit.record(
                actor=actor,
                action="keys.rotate",
                connection_id=None,
                changes={"key": rotation.kid, "previous": before},
                now=self.adapters.clock(),
            )
        return rotation
