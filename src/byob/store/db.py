"""Engines and migrations for the state store."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pydantic_core
import sqlalchemy as sa

from byob.errors import ConfigError

MIGRATIONS = Path(__file__).parent / "migrations"


# Every state-store session in UTC: psycopg then returns timestamptz values as UTC datetimes
# and tables.UTCDateTime need not convert each one.
_UTC = {"options": "-c TimeZone=UTC"}


def _json_loads(data: bytes | str) -> Any:
    """A JSON value read back (psycopg hands over the bytes): pydantic-core's parser, the
    standard library's for anything it refuses (a lone surrogate), so that each reads as
    before. A page of the connections list reads ~75 (most of them `null`, on which
    json.loads spends 4 µs detecting the encoding of bytes): 0.4 ms of it, 0.1 this way."""
    try:
        return pydantic_core.from_json(data)
    except ValueError:
        return json.loads(data)


def create_engine(url: str) -> sa.Engine:
    """An engine for sqlite:///… (the embedded default) or postgresql://…"""
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
        # Kept open for as many requests as a busy server runs at once: overflow connections
        # are closed when returned, and reopening one per few requests cost PostgreSQL more
        # CPU than the queries (make load).
        engine = sa.create_engine(
            url, pool_size=20, max_overflow=10, connect_args=_UTC, json_deserializer=_json_loads
        )
        _ping_when_idle(engine)
        return engine
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            # WAL lets readers (the API) run while a worker writes; foreign keys are off by
            # default in SQLite.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    if url.startswith("postgresql+"):
        engine = sa.create_engine(url, connect_args=_UTC, json_deserializer=_json_loads)
        _ping_when_idle(engine)
        return engine
    raise ConfigError(
        "BYOB_DATABASE_URL must start with sqlite:/// or postgresql://", field="BYOB_DATABASE_URL"
    )


IDLE_BEFORE_PING = 2.0  # seconds a pooled connection may rest and still be used unchecked


def _ping_when_idle(engine: sa.Engine) -> None:
    """A pooled connection that rested for a while is pinged before use, and replaced if
    PostgreSQL went away meanwhile (restarted, failed over, idle timeout). Unlike
    ``pool_pre_ping``, a connection in steady use is not: under load that round trip before
    every query cost as much as a small query. A restart while a connection is in use breaks
    that use only, and SQLAlchemy then drops every connection of the pool."""

    @sa.event.listens_for(engine, "checkin")
    def _rested_since(_dbapi_conn, record):  # type: ignore[no-untyped-def]
        record.info["checked_in"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _alive(dbapi_conn, record, _proxy):  # type: ignore[no-untyped-def]
        rested = time.monotonic() - record.info.get("checked_in", -math.inf)
        if rested < IDLE_BEFORE_PING:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)  # what pool_pre_ping runs (outside a transaction)
        except Exception as exc:
            # The pool discards this connection and checks out (or opens) another.
            raise sa.exc.DisconnectionError(str(exc)) from exc


def _head_revision() -> str:
    # Revision files are named <revision>_<slug>.py with increasing revisions.
    return max(p.name.split("_", 1)[0] for p in (MIGRATIONS / "versions").glob("[0-9]*_*.py"))


def _current_revision(engine: sa.Engine) -> str | None:
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    except sa.exc.DBAPIError:
        return None


def migrate(engine: sa.Engine, revision: str = "head") -> None:
    """Bring the schema up to date (idempotent; skips loading Alembic when already current,
    which keeps every CLI command quick to start)."""
    if revision == "head" and _current_revision(engine) == _head_revision():
        return
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
