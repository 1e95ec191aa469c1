"""One settings object, built at each entry point from ``BYOB_*`` variables and passed down."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from byob.errors import ConfigError

DEFAULT_HOME = Path(".byob")
MIN_HASH_SALT_CHARS = 16
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class Settings(BaseSettings):
    """byob's operator configuration."""

    model_config = SettingsConfigDict(env_prefix="BYOB_", extra="forbid", frozen=True)

    home: Path = DEFAULT_HOME
    database_url: str = ""  # default: sqlite file under `home`
    config: Path | None = None  # the models file (TOML)
    secret_key: str = ""  # base64url 32-byte key sealing secrets; default: a 0600 file in home
    secret_keys_old: str = ""  # earlier keys, comma-separated: still open during a rotation
    # base64url 32-byte Ed25519 private key signing manifests; default: a keyring file in home
    signing_key: str = ""
    signing_keys_old: str = ""  # earlier signing keys, comma-separated: still published
    # Keys the hashes of the models' `hash` columns (HMAC-SHA256); default: a 0600 file in
    # home. Changing it changes every hash delivered from then on.
    hash_salt: str = ""
    aws_endpoint_url: str = ""  # an S3-compatible endpoint or the AWS emulator
    public_url: str = "http://127.0.0.1:8080"  # where recipients open connection links
    # "bucket" or "bucket/prefix" in the vendor's account that byob's own identity may write
    # and read: the Launch stack link then loads the template from Amazon S3, as AWS requires.
    template_bucket: str = ""
    webhook_url: str = ""  # POSTed on transfer outcomes and failing connections
    webhook_secret: str = ""  # signs webhook bodies (HMAC-SHA256)
    log_json: bool = True  # one JSON object per log line; false: text for people
    service_principal_arn: str = ""  # default: sts:GetCallerIdentity of byob's credentials
    settle_lag_seconds: Annotated[float, Field(ge=0)] = 30.0
    # `byob transfers run` under --json or with stderr not a terminal: seconds between the
    # JSON progress lines it writes on stderr (0: after every batch).
    progress_interval_seconds: Annotated[float, Field(ge=0)] = 5.0
    file_target_bytes: Annotated[int, Field(ge=1 << 20)] = 256 << 20
    row_group_bytes: Annotated[int, Field(ge=1 << 16)] = 16 << 20
    multipart_part_bytes: Annotated[int, Field(ge=5 << 20)] = 16 << 20
    # One scan of a model's table feeds up to this many connections due together (1: a scan
    # each); their buffered row groups share one budget of fan_out_buffer_bytes.
    fan_out_connections: Annotated[int, Field(ge=1)] = 256
    fan_out_buffer_bytes: Annotated[int, Field(ge=1 << 20)] = 64 << 20
    check_timeout_seconds: Annotated[float, Field(gt=0)] = 20.0
    # The largest request body byob reads (JSON and forms); larger ones are refused with 413.
    max_body_bytes: Annotated[int, Field(ge=1024)] = 1 << 20
    # Requests each client address, and each credential, may make: a burst, then so many a
    # second (429 with Retry-After beyond). 0 turns the limit off.
    rate_limit_per_second: Annotated[float, Field(ge=0)] = 50.0
    rate_limit_burst: Annotated[int, Field(ge=0)] = 500
    # Failed sign-ins (a refused API key, link token or login) an address may make a minute;
    # beyond them its sign-ins are refused (429) until the budget refills. 0: no lockout.
    auth_failures_per_minute: Annotated[int, Field(ge=0)] = 10
    aws_max_attempts: Annotated[int, Field(ge=1)] = 5
    # Runs of one queued transfer job (the first and its retries, with jittered backoff of
    # about 2, 4, 8, 16… s between them) before it fails for good.
    transfer_max_attempts: Annotated[int, Field(ge=1, le=20)] = 6  # queue.MAX_ATTEMPTS
    # How long `byob worker` waits out its PostgreSQL database being away (a restart, a
    # failover) before it stops with exit status 1 for a supervisor to restart it.
    worker_outage_seconds: Annotated[float, Field(gt=0)] = 600.0
    # None: strict on AWS itself, lenient (a warning) on an S3-compatible endpoint or emulator,
    # which may not evaluate trust policies.
    strict_trust_check: bool | None = None

    @field_validator("template_bucket")
    @classmethod
    def _template_bucket(cls, value: str) -> str:
        bucket = value.strip("/").partition("/")[0]
        if value and not _BUCKET_NAME.fullmatch(bucket):
            raise ValueError(
                f"{bucket!r} is not an S3 bucket name: give the bucket, optionally followed by "
                "a key prefix (my-bucket or my-bucket/prefix), without s3://"
            )
        return value.strip("/")

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: str) -> str:
        # Refused here rather than at the first delivery, which would only record an error per
        # event in the outbox. The value is not echoed: a webhook URL's path is often its secret.
        if not value:
            return value
        try:
            url = urlsplit(value)
            # url.port raises ValueError on a port that is not a number in range.
            usable = url.scheme in ("http", "https") and bool(url.hostname) and url.port != 0
        except ValueError:  # a malformed port or IPv6 address
            usable = False
        if not usable:
            raise ValueError(
                "not an http:// or https:// URL with a host; give the endpoint's full URL, "
                "such as https://hooks.example.com/byob"
            )
        return value

    @field_validator("hash_salt")
    @classmethod
    def _hash_salt(cls, value: str) -> str:
        if value and len(value.strip()) < MIN_HASH_SALT_CHARS:
            raise ValueError(
                f"the salt must be at least {MIN_HASH_SALT_CHARS} characters; a short one lets "
                "anyone who guesses it reverse hashes of guessable values such as emails"
            )
        return value.strip()

    @property
    def trust_check_is_strict(self) -> bool:
        if self.strict_trust_check is not None:
            return self.strict_trust_check
        return not self.aws_endpoint_url

    @property
    def state_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'state.sqlite').resolve()}"

    @property
    def is_production(self) -> bool:
        """A PostgreSQL state store: byob may run on many machines, which must share a key."""
        return self.state_url.startswith(("postgresql", "postgres://"))


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning validation errors into one line that names the variable."""
    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        name = "BYOB_" + str(err["loc"][0]).upper() if err["loc"] else "BYOB_*"
        raise ConfigError(f"{name}: {err['msg']}", field=name) from None
    from byob.store.secrets import MAKE_KEY, SecretBox

    if settings.secret_key or settings.secret_keys_old:
        SecretBox.from_text(settings.secret_key or "", settings.secret_keys_old)  # a bad key: now
    elif settings.is_production:
        # A key generated into one machine's home would seal secrets the others cannot open.
        raise ConfigError(
            "BYOB_SECRET_KEY is required with a PostgreSQL state store: every machine running "
            f"byob must seal and open secrets with the same key. Create one with `{MAKE_KEY}` "
            "and set it on every machine",
            field="BYOB_SECRET_KEY",
        )
    from byob.store.signing_keys import parse_key, parse_old

    parse_old(settings.signing_keys_old)  # a bad key: now
    if settings.signing_key:
        parse_key(settings.signing_key, "BYOB_SIGNING_KEY")
    elif settings.is_production:
        # Each machine would sign with a key of its own, published by none of the others.
        raise ConfigError(
            "BYOB_SIGNING_KEY is required with a PostgreSQL state store: every machine running "
            "byob must sign manifests with the same key. Create one with "
            f"`{MAKE_KEY}` and set it on every machine",
            field="BYOB_SIGNING_KEY",
        )
    return settings
