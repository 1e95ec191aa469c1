"""Structured JSON logs: one object per line, with the connection and transfer when known,
and anything that looks like a secret redacted."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

# The connection and transfer the current thread works on; set around each transfer.
context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "byob_log_context", default=None
)

# Tokens, AWS secret keys and passwords in URLs never reach a log line.
_SECRETS = [
    (re.compile(r"byob_(key|link)_[A-Za-z0-9_-]{20,}"), r"byob_\1_[redacted]"),
    (
        re.compile(
            r"(?i)(secret[_-]?access[_-]?key|aws_secret_access_key|password|token)(['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+"
        ),
        r"\1\2[redacted]",
    ),
    (re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])"), "[redacted-40]"),
    (re.compile(r"(\w+://[^:/\s]+:)[^@\s]+@"), r"\1[redacted]@"),
]


def redact(text: str) -> str:
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
            **(context.get() or {}),
            # Fields a line carries for machines (`log.info(..., extra={"fields": {...}})`).
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


def configure(*, json_lines: bool = True, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if json_lines else logging.Formatter("%(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
