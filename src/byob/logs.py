"""Logs as JSON objects, one a line, with the connection and transfer when known, or as text
for people; either way anything that looks like a secret is redacted."""

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


def _redacted_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted_value(v) for v in value]
    return value


def _redacted(record: logging.LogRecord, formatter: logging.Formatter) -> logging.LogRecord:
    """A copy of ``record`` whose message, exception and stack text and fields are redacted.

    Both formatters render only this copy, so a line holds no secret in either mode (uvicorn's
    access lines carry request paths, which hold connection-link tokens). A copy, because other
    handlers of the same record are not ours to change."""
    copy = logging.makeLogRecord(record.__dict__)
    copy.msg, copy.args = redact(record.getMessage()), None
    text = record.exc_text
    if record.exc_info and not text:
        text = formatter.formatException(record.exc_info)
    if text:
        copy.exc_text = redact(text)
    if record.stack_info:
        copy.stack_info = redact(record.stack_info)
    if hasattr(record, "fields"):
        copy.fields = _redacted_value(record.fields)
    return copy


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        record = _redacted(record, self)
        entry: dict[str, Any] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **(context.get() or {}),
            # Fields a line carries for machines (`log.info(..., extra={"fields": {...}})`).
            **getattr(record, "fields", {}),
        }
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """One line for people (and any exception or stack after it), redacted as JSON lines are."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return super().format(_redacted(record, self))


def configure(*, json_lines: bool = True, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
