"""Telling a database that is away (restarting, failing over, unreachable) from a query that is
wrong: the first is waited out, the second is a bug to report."""

from __future__ import annotations

import psycopg


def is_outage(exc: BaseException | None) -> bool:
    """psycopg's OperationalError or a socket error, however wrapped (SQLAlchemy keeps the
    driver's error in ``orig``, Procrastinate in ``__cause__``)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, psycopg.OperationalError | OSError):
            return True
        exc = getattr(exc, "orig", None) or exc.__cause__
    return False


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
