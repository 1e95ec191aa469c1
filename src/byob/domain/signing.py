"""Signed manifests: Ed25519 over a manifest's canonical JSON, and the keys that verify them.

The canonical form is RFC 8785 (JSON Canonicalization Scheme) for the values a manifest holds:
objects with members sorted by key, arrays, strings, integers, booleans and null, no
whitespace, UTF-8. A manifest holds no floats (sizes and counts are integers, times are ISO
strings), and there JCS's number rule is plain decimal integers; ``canonical_json`` refuses
floats and integers beyond 2**53 rather than guess. Its keys are ASCII, so sorting them by
UTF-16 code units (JCS) and by code points (Python) agree, and

    json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

gives the same bytes: what the README's stand-alone check uses. The signature covers the
manifest without its ``signature`` member.

Depends on ``cryptography`` only: no I/O."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALG = "Ed25519"
SIGNATURE = "signature"  # the member of a signed manifest that holds its signature
_MAX_EXACT_INT = 2**53  # beyond it, JSON numbers lose precision in JavaScript readers (JCS)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def from_b64url(text: str) -> bytes:
    """Decode base64url with or without its padding; ValueError when it is not base64url."""
    text = text.strip()
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def canonical_json(value: Any) -> bytes:
    """RFC 8785 bytes of a JSON value without floats (see the module docstring)."""
    return _canon(value).encode("utf-8")


def _canon(value: Any) -> str:
    if value is None or isinstance(value, bool | str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int):
        if abs(value) > _MAX_EXACT_INT:
            raise ValueError(f"integer {value} is too large to sign exactly")
        return str(value)
    if isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise ValueError(f"object key {key!r} is not a string")
        members = sorted(value.items(), key=lambda kv: kv[0].encode("utf-16-be"))
        return "{" + ",".join(f"{_canon(k)}:{_canon(v)}" for k, v in members) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_canon(v) for v in value) + "]"
    raise ValueError(f"{type(value).__name__} has no canonical form here (floats are refused)")


def key_id(public_key: bytes) -> str:
    """A short, stable name of a public key: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(public_key).hexdigest()[:16]


@dataclass(frozen=True, kw_only=True)
class PublicKey:
    kid: str
    raw: bytes  # the 32-byte Ed25519 public key

    def as_jwk(self, *, current: bool) -> dict[str, Any]:
        """The key as a JSON Web Key (RFC 8037), as /.well-known/byob-keys.json lists it."""
        return {
            "kty": "OKP",
            "crv": ALG,
            "kid": self.kid,
            "x": b64url(self.raw),
            "use": "sig",
            "current": current,
        }


@dataclass(frozen=True)
class Signer:
    """Signs with one private key; built from its 32-byte seed."""

    seed: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.seed) != 32:
            raise ValueError("an Ed25519 private key is 32 bytes")

    @property
    def public(self) -> PublicKey:
        # public_bytes_raw, not public_bytes(Encoding.Raw, …): the serialization package (SSH
        # and PEM loaders, ~7 ms) stays out of every transfer's start-up.
        raw = self._key().public_key().public_bytes_raw()
        return PublicKey(kid=key_id(raw), raw=raw)

    def _key(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.seed)

    def sign(self, document: Mapping[str, Any]) -> dict[str, Any]:
        """The document with its ``signature`` member (any earlier one replaced)."""
        unsigned = {k: v for k, v in document.items() if k != SIGNATURE}
        value = self._key().sign(canonical_json(unsigned))
        return unsigned | {SIGNATURE: {"alg": ALG, "kid": self.public.kid, "value": b64url(value)}}


@dataclass(frozen=True)
class Keyring:
    """The key manifests are signed with now, and the earlier ones still published so that
    manifests they signed still verify."""

    current: Signer
    previous: tuple[PublicKey, ...] = ()

    def public_keys(self) -> list[PublicKey]:
        """Current first, then earlier ones, each once."""
        out: dict[str, PublicKey] = {}
        for key in (self.current.public, *self.previous):
            out.setdefault(key.kid, key)
        return list(out.values())

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set published at /.well-known/byob-keys.json."""
        current = self.current.public.kid
        return {"keys": [k.as_jwk(current=k.kid == current) for k in self.public_keys()]}


def keys_from_jwks(jwks: Mapping[str, Any]) -> dict[str, bytes]:
    """kid → raw public key, from a published key set; ValueError when it is not one."""
    try:
        return {
            str(k["kid"]): from_b64url(str(k["x"]))
            for k in jwks["keys"]
            if k.get("kty") == "OKP" and k.get("crv") == ALG
        }
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError("not a key set: expected {'keys': [{'kid': …, 'x': …}, …]}") from exc


@dataclass(frozen=True, kw_only=True)
class SignatureCheck:
    ok: bool
    kid: str | None
    problem: str | None = None  # what failed, in words a recipient can act on


def verify_signature(document: Mapping[str, Any], keys: Mapping[str, bytes]) -> SignatureCheck:
    """Check a manifest's signature against known public keys (kid → raw key)."""
    sig = document.get(SIGNATURE)
    if not isinstance(sig, Mapping):
        return SignatureCheck(ok=False, kid=None, problem="the manifest is not signed")
    kid = sig.get("kid")
    if sig.get("alg") != ALG:
        return SignatureCheck(
            ok=False, kid=None, problem=f"unsupported signature algorithm {sig.get('alg')!r}"
        )
    if not isinstance(kid, str) or kid not in keys:
        known = ", ".join(sorted(keys)) or "none"
        return SignatureCheck(
            ok=False,
            kid=str(kid),
            problem=f"unknown key id {kid!r}: not one of this vendor's keys (known: {known})",
        )
    unsigned = {k: v for k, v in document.items() if k != SIGNATURE}
    try:
        body = canonical_json(unsigned)
        Ed25519PublicKey.from_public_bytes(keys[kid]).verify(
            from_b64url(str(sig.get("value", ""))), body
        )
    except (InvalidSignature, ValueError):
        return SignatureCheck(
            ok=False,
            kid=kid,
            problem="signature does not match: the manifest was changed or not signed by this "
            "vendor",
        )
    return SignatureCheck(ok=True, kid=kid)


def public_keys_by_kid(keys: Iterable[PublicKey]) -> dict[str, bytes]:
    return {k.kid: k.raw for k in keys}
