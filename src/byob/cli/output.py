"""Output for people (Rich) and for scripts (--json); errors reported in exactly one place."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, ProgressColumn

    from byob.domain.transfers import TransferProgress

# Rich is imported when something is shown to a person, not at start-up (~30 ms): a command
# answering in JSON never loads it. The consoles are made on first use (__getattr__ below).
console: Console  # stdout
errors: Console  # stderr


def __getattr__(name: str) -> Console:
    """`console` and `errors`, made (and kept) on first use."""
    if name not in ("console", "errors"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return _console(name)


def _console(name: str = "console") -> Console:
    made: Console | None = globals().get(name)
    if made is None:
        from rich.console import Console

        made = globals()[name] = Console(stderr=name == "errors")
    return made


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "value"):
        return value.value
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=_default) + "\n")


def table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for col in columns:
        t.add_column(col)
    for row in rows:
        t.add_row(*["" if v is None else str(v) for v in row])
    _console().print(t)


MISSING = "—"  # a value that is not there (yet), or does not apply


def shown(value: Any) -> str:
    """A value as people read it: "—" when there is none, a time in UTC to the second."""
    if value is None or value == "":
        return MISSING
    if isinstance(value, datetime):
        return when(value)
    return str(value)


def when(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def window(low: datetime | None, high: datetime) -> str:
    """A transfer's window: the rows whose cursor is above ``low`` and at most ``high``."""
    return f"({'-∞' if low is None else when(low)}, {when(high)}]"


def record(title: str, fields: list[tuple[str, Any]]) -> None:
    """One record as a panel of labelled values."""
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for label, value in fields:
        grid.add_row(label, Text(shown(value)))  # not markup: messages may hold brackets
    _console().print(Panel(grid, title=title, title_align="left", expand=False))


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"


def _figures_column() -> ProgressColumn:
    """A column showing a task's figures as ``progress_figures`` wrote them, or its bare
    count. (A class made here, not at import: Rich is loaded only for a display.)"""
    from rich.progress import ProgressColumn, Task
    from rich.text import Text

    class Figures(ProgressColumn):
        def render(self, task: Task) -> Text:
            figures = task.fields.get("figures")
            if figures is None:
                total = f" of {task.total:,.0f}" if task.total is not None else ""
                figures = f"{task.completed:,.0f}{total}"
            return Text(figures)

    return Figures()


def progress_figures(p: TransferProgress) -> str:
    """Rows of the total ("≈" when it is an estimate), rows/s, bytes written and the time
    left: "12,000 of ≈40,000 rows · 6,000 rows/s · 1.2 MiB · ETA 0:05"."""
    total = "" if p.total is None else f" of {'≈' if p.estimated else ''}{p.total:,}"
    eta = p.eta_seconds
    left = "" if eta is None else f" · ETA {int(eta) // 60}:{int(eta) % 60:02d}"
    return (
        f"{p.rows:,}{total} rows · {p.rows_per_second:,.0f} rows/s · {human_bytes(p.bytes)}{left}"
    )


class ProgressLines:
    """One JSON progress line on stderr every ``interval`` seconds of a transfer, the first
    after ``interval``: a sign of life for a caller reading --json or a pipe."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._last = time.monotonic()

    def __call__(self, p: TransferProgress) -> None:
        now = time.monotonic()
        if now - self._last < self._interval:
            return
        self._last = now
        sys.stderr.write(json.dumps({"progress": p.to_dict()}) + "\n")
        sys.stderr.flush()


@contextmanager
def rows_progress(enabled: bool) -> Iterator[Progress | None]:
    """A progress display of rows per model; nothing when output is for scripts."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        _figures_column(),
        TimeElapsedColumn(),
        console=_console(),
        transient=False,
    ) as progress:
        yield progress
