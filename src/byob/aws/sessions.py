"""Sessions for byob's own principal and for each connection's credentials.

A connection's role is assumed with its external ID and a session name saying who and why;
credentials refresh themselves before they expire, so a long transfer (each multipart part is
signed on its own) never runs on expired credentials.

Transfers reuse a connection's session and clients (`connection_client`): assuming the role and
making a client cost ~55 ms per transfer, more than byob's own work on a small incremental.
Sessions are kept for a bounded number of connections (their clients weigh ~0.5 MB), the
assumed-role credentials for many more, so a connection whose session was dropped makes a
client again but does not assume its role again.
The trade-off: credentials already issued live until they expire (an hour), so a recipient who
changes the role's trust policy stops byob's transfers at the next refresh, not at the next
transfer (a permissions policy, or AWS's "revoke active sessions", applies at once either way).
Validation never uses the cache: it proves that the role can be assumed now.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import partial
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import (
    AssumeRoleCredentialFetcher,
    Credentials,
    DeferredRefreshableCredentials,
)
from botocore.exceptions import BotoCoreError, ClientError
from botocore.loaders import create_loader

from byob.domain.connections import AuthKind, Connection
from byob.errors import ConfigError, DestinationError

_SESSION_NAME_UNSAFE = re.compile(r"[^\w+=,.@-]")


def role_session_name(conn: Connection) -> str:
    """Shows in the recipient's CloudTrail: which service, which connection."""
    return ("byob-" + _SESSION_NAME_UNSAFE.sub("-", conn.name))[:64]


@dataclass(frozen=True, kw_only=True)
class AwsConfig:
    endpoint_url: str = ""
    max_attempts: int = 5
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    # Connections whose session and clients are kept for their next transfer (least recently
    # used dropped first): a session with its clients holds ~0.5 MB, so this bounds what a
    # process holds however many connections it serves (256 of them were ~120 MB).
    cached_connections: int = 64
    # Connections whose assumed-role credentials are kept after their session and clients are
    # dropped (a few hundred bytes each): a connection served again makes a client, but does
    # not assume its role again until the credentials near expiry. One scan feeding 200
    # connections through 64 kept sessions otherwise assumed a role for nearly every one.
    cached_credentials: int = 10_000

    def botocore_config(self, **overrides: Any) -> Config:
        options: dict[str, Any] = {
            "retries": {"max_attempts": self.max_attempts, "mode": "adaptive"},
            "connect_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
            # Buckets with dots in their names break virtual-hosted TLS; path style works
            # everywhere, including S3-compatible endpoints.
            "s3": {"addressing_style": "path"} if self.endpoint_url else {},
        }
        options.update(overrides)
        return Config(**options)


class AwsSessions:
    """Makes boto3 sessions and clients; the only place that knows the endpoint override."""

    def __init__(self, config: AwsConfig, service_session: boto3.Session | None = None) -> None:
        self.config = config
        # One loader of botocore's service models for every session made here: a new session
        # otherwise parses the models' JSON again, which made each connection's first client
        # cost ~200 ms (25–50 ms with the loader shared) — once or more per transfer.
        self._loader = create_loader()
        self._service = service_session or boto3.Session(botocore_session=self._botocore_session())
        # Every kept connection client is made from this one session, each with its own
        # connection's credentials: a session per connection cost ~16 ms of CPU to make, more
        # than the client (~9 ms), 200 connections' transfers ~3 s. Sessions are not
        # thread-safe (clients are): it, the caches and every client made from it are
        # handled under the lock.
        self._clients_core = self._botocore_session()
        self._clients_session = boto3.Session(botocore_session=self._clients_core)
        self._lock = threading.Lock()
        self._cached: OrderedDict[tuple[str, ...], _KeptClients] = OrderedDict()
        self._credentials: OrderedDict[tuple[str, ...], DeferredRefreshableCredentials] = (
            OrderedDict()
        )
        # byob's own STS clients, by region, for assuming roles: a client costs ~11 ms to
        # make, as much again as the AssumeRole call, and is safe to share between threads.
        self._sts_clients: dict[str | None, Any] = {}
        self._sts_lock = threading.Lock()

    def _botocore_session(self) -> botocore.session.Session:
        core = botocore.session.Session()
        core.register_component("data_loader", self._loader)
        return core

    def client(
        self, session: boto3.Session, service: str, region: str | None = None, **cfg: Any
    ) -> Any:
        return session.client(
            service,
            region_name=region or session.region_name or "us-east-1",
            endpoint_url=self.config.endpoint_url or None,
            config=self.config.botocore_config(**cfg),
        )

    def service_client(self, service: str, region: str | None = None, **cfg: Any) -> Any:
        return self.client(self._service, service, region, **cfg)

    def presigning_s3_client(self, region: str) -> Any:
        """An S3 client of byob's own identity, in a bucket's region, whose presigned URLs
        work for anyone holding them (the AWS console, a browser)."""
        # botocore (1.43) presigns S3 with SigV2 and the global host bucket.s3.amazonaws.com
        # unless told otherwise. SigV4 ("s3v4") is what every region accepts (regions since
        # 2014 accept nothing else), and its signature is scoped to region_name, so that must
        # be the bucket's own region. Virtual-hosted style then gives the regional host
        # bucket.s3.<region>.amazonaws.com, which resolves at once (the global host only
        # redirects, and not for opt-in regions); botocore still uses the path for names with
        # dots, which a virtual host's TLS certificate would not cover. An endpoint override
        # (an emulator, an S3-compatible store) keeps path style.
        style = {} if self.config.endpoint_url else {"s3": {"addressing_style": "virtual"}}
        return self.service_client("s3", region, signature_version="s3v4", **style)

    def caller_arn(self) -> str:
        """byob's own principal: the Principal of every trust policy it generates."""
        try:
            arn = self.service_client("sts").get_caller_identity()["Arn"]
        except (ClientError, BotoCoreError) as exc:
            raise ConfigError(
                "cannot tell byob's own AWS identity (sts:GetCallerIdentity failed: "
                f"{exc}); configure AWS credentials or set BYOB_SERVICE_PRINCIPAL_ARN"
            ) from exc
        return _principal_of(arn)

    def for_connection(
        self, conn: Connection, secret_access_key: str | None = None
    ) -> boto3.Session:
        """A session acting in the recipient's account, with credentials of its own (a role is
        assumed afresh: validation proves what the recipient allows now)."""
        core = self._botocore_session()
        # as boto3 itself wires credentials in
        core._credentials = self._connection_credentials(conn, secret_access_key)
        return boto3.Session(botocore_session=core, region_name=conn.region)

    def connection_client(
        self, conn: Connection, service: str, secret_access_key: str | None = None
    ) -> Any:
        """A client acting in the recipient's account, kept for the connection's next transfer
        (with its credentials, which refresh before they expire). A change of role, external
        ID, keys, region or name makes new clients, and so does the next call after AWS
        refused one of them: a role deleted and created again (as a CloudFormation stack's
        update may) refuses credentials issued before."""
        key = _cache_key(conn, secret_access_key)
        with self._lock:
            entry = self._cached.get(key)
            if entry is None:
                entry = _KeptClients(
                    self._connection_credentials(conn, secret_access_key, kept=key)
                )
                self._cached[key] = entry
                while len(self._cached) > self.config.cached_connections:
                    self._cached.popitem(last=False)
            else:
                self._cached.move_to_end(key)
            client = entry.clients.get(service)
            if client is None:
                client = entry.clients[service] = self._kept_client(entry, service, conn.region)
                client.meta.events.register(
                    "after-call", partial(self._forget_when_refused, key, entry)
                )
            return client

    def _connection_credentials(
        self, conn: Connection, secret_access_key: str | None, *, kept: tuple[str, ...] = ()
    ) -> Credentials:
        """The connection's credentials: its keys, or its role's — the ones kept under the
        cache key ``kept`` when given, else new ones that assume the role when first used."""
        if conn.auth is AuthKind.ROLE:
            return (
                self._kept_credentials(kept, conn) if kept else self._assume_role_credentials(conn)
            )
        if conn.auth is AuthKind.HMAC:
            if not secret_access_key:
                raise DestinationError("the connection's secret access key is missing")
            return Credentials(conn.access_key_id, secret_access_key, method="explicit")
        raise DestinationError(f"connection {conn.name!r} has no AWS credentials")

    def _kept_client(self, entry: _KeptClients, service: str, region: str | None) -> Any:
        """A client of the shared session signing with ``entry``'s credentials (under the
        lock). A client takes its session's credentials object when it is made and signs
        with it from then on (refreshing it as it needs), so the session holds each
        connection's credentials only while that connection's client is made."""
        core = self._clients_core
        core._credentials = entry.credentials  # as boto3 itself wires credentials in
        try:
            return self.client(self._clients_session, service, region)
        finally:
            core._credentials = None

    def _forget_when_refused(
        self, key: tuple[str, ...], entry: _KeptClients, parsed: dict[str, Any], **_: Any
    ) -> None:
        """After-call hook of a kept client: a refusal drops its clients and credentials."""
        code = parsed.get("Error", {}).get("Code") if isinstance(parsed, dict) else None
        if code in _REFUSALS:
            with self._lock:
                if self._cached.get(key) is entry:
                    del self._cached[key]
                    self._credentials.pop(key, None)

    def _kept_credentials(
        self, key: tuple[str, ...], conn: Connection
    ) -> DeferredRefreshableCredentials:
        """The connection's assumed-role credentials, kept (under the lock) while its session
        comes and goes; they refresh themselves before they expire."""
        credentials = self._credentials.get(key)
        if credentials is None:
            credentials = self._credentials[key] = self._assume_role_credentials(conn)
            while len(self._credentials) > self.config.cached_credentials:
                self._credentials.popitem(last=False)
        else:
            self._credentials.move_to_end(key)
        return credentials

    def _assume_role_credentials(self, conn: Connection) -> DeferredRefreshableCredentials:
        """Credentials that assume the connection's role when first used, and again before
        they expire."""
        fetcher = AssumeRoleCredentialFetcher(
            client_creator=lambda service, **kw: self._sts_client(conn.region),
            source_credentials=self._service.get_credentials(),
            role_arn=conn.role_arn,
            extra_args={"ExternalId": conn.external_id, "RoleSessionName": role_session_name(conn)},
        )
        return DeferredRefreshableCredentials(
            method="assume-role", refresh_using=fetcher.fetch_credentials
        )

    def _sts_client(self, region: str | None) -> Any:
        with self._sts_lock:
            client = self._sts_clients.get(region)
            if client is None:
                client = self._sts_clients[region] = self.service_client("sts", region)
            return client


# Error codes of a request refused for its credentials or their permissions.
_REFUSALS = frozenset(
    {
        "403",
        "AccessDenied",
        "AccessDeniedException",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidAccessKeyId",
        "InvalidClientTokenId",
        "InvalidToken",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
    }
)


class _KeptClients:
    """A connection's credentials and the clients signing with them, by service."""

    __slots__ = ("clients", "credentials")

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials
        self.clients: dict[str, Any] = {}


def _cache_key(conn: Connection, secret_access_key: str | None) -> tuple[str, ...]:
    """Everything a connection's session is made from (the secret only as a digest)."""
    secret = hashlib.sha256(secret_access_key.encode()).hexdigest() if secret_access_key else ""
    return (
        conn.id,
        conn.name,
        conn.auth.value,
        conn.role_arn,
        conn.external_id,
        conn.access_key_id,
        secret,
        conn.region,
    )


def _principal_of(caller_arn: str) -> str:
    """An assumed-role session ARN names the session; trust policies name the role."""
    match = re.fullmatch(r"arn:(aws[\w-]*):sts::(\d{12}):assumed-role/([^/]+)/.+", caller_arn)
    if match:
        partition, account, role = match.groups()
        return f"arn:{partition}:iam::{account}:role/{role}"
    # Some S3-compatible emulators answer an IAM user's identity in the sts namespace.
    match = re.fullmatch(r"arn:(aws[\w-]*):sts::(\d{12}):user/(.+)", caller_arn)
    if match:
        partition, account, user = match.groups()
        return f"arn:{partition}:iam::{account}:user/{user}"
    return caller_arn


def aws_error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__
