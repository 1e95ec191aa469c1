"""Small transfers: what one incremental of 0, 1, 10 or 100 new rows costs, in one process.

The target: byob's own time per small incremental at most 50 ms, not counting the round
trips to S3. Each (destination, row count) runs one transfer on each of N connections
(`services.transfers.run`, the path the CLI and the workers take): a local directory, and an
S3 bucket on an in-process moto server reached through a role, as recipients onboard.

Before each round the source gets exactly that many new rows per tenant, with a newer cursor
(the bench runs with no settle lag), and every transfer must deliver exactly them. Each
connection's first transfer (a full export of its one seed row, which also assumes its role
and makes its S3 client) is a warm-up, timed apart.

The time spent in storage is measured apart: for S3, inside AWS requests, on the clients byob
makes (botocore's before-call/after-call events: serialising, signing, the HTTP round trip to
the emulator and parsing the answer); for a local directory, in fsync (each file and its
directory, made durable before the state store records them). byob's own time is the
transfer's wall time less that.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import psycopg
from byob_contender import Destination
from outputs import EMULATOR_CREDENTIALS, S3Emulator
from rich.table import Table

from byob.aws.sessions import AwsConfig, AwsSessions
from byob.container import Byob
from byob.services import Services
from byob.settings import load_settings

ROW_COUNTS = (0, 1, 10, 100)
FIRST_ID = 10**12  # above every id build_source gives


@dataclass
class StorageClock:
    """Time spent in storage: inside AWS API calls on every client hooked (`hook`), and in
    fsync while `timing_fsync` is on."""

    seconds: float = 0.0
    calls: int = 0

    @contextmanager
    def timing_fsync(self) -> Iterator[None]:
        """Every os.fsync of this process (the local destination's) timed, until the end."""
        fsync = os.fsync

        def timed(fd: int) -> None:
            start = time.perf_counter()
            try:
                fsync(fd)
            finally:
                self.seconds += time.perf_counter() - start
                self.calls += 1

        os.fsync = timed
        try:
            yield
        finally:
            os.fsync = fsync

    def hook(self, client: Any) -> None:
        events = client.meta.events
        events.register("before-call", self._started, unique_id="bench-aws-clock-start")
        events.register("after-call", self._finished, unique_id="bench-aws-clock-end")
        events.register("after-call-error", self._finished, unique_id="bench-aws-clock-error")

    def reset(self) -> None:
        self.seconds, self.calls = 0.0, 0

    def _started(self, context: dict[str, Any], **_: Any) -> None:
        # The call's own context dict: concurrent calls (multipart parts) do not mix.
        context["bench_started"] = time.perf_counter()

    def _finished(self, context: dict[str, Any], **_: Any) -> None:
        started = context.pop("bench_started", None)
        if started is not None:
            self.seconds += time.perf_counter() - started
            self.calls += 1


def clocked_sessions(endpoint_url: str, clock: StorageClock) -> AwsSessions:
    """byob's AWS sessions on the emulator, every client they make hooked to ``clock``."""
    credentials = EMULATOR_CREDENTIALS
    service = boto3.Session(
        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
        region_name=credentials["AWS_DEFAULT_REGION"],
    )
    sessions = AwsSessions(AwsConfig(endpoint_url=endpoint_url), service)
    make_client = sessions.client

    def client(*args: Any, **kwargs: Any) -> Any:
        made = make_client(*args, **kwargs)
        clock.hook(made)
        return made

    sessions.client = client  # type: ignore[method-assign]
    return sessions


@dataclass
class Timings:
    """One (destination, row count): per transfer, wall and storage milliseconds."""

    wall_ms: list[float] = field(default_factory=list)
    storage_ms: list[float] = field(default_factory=list)
    storage_calls: list[int] = field(default_factory=list)

    def add(self, wall: float, storage: float, calls: int) -> None:
        self.wall_ms.append(wall * 1000)
        self.storage_ms.append(storage * 1000)
        self.storage_calls.append(calls)

    def figures(self) -> dict[str, float | int]:
        own = [w - a for w, a in zip(self.wall_ms, self.storage_ms, strict=True)]
        return {
            "transfers": len(self.wall_ms),
            "wall_median_ms": round(statistics.median(self.wall_ms), 1),
            "wall_p90_ms": round(percentile(self.wall_ms, 90), 1),
            # AWS requests (S3) or fsync calls (local)
            "storage_median_ms": round(statistics.median(self.storage_ms), 1),
            "storage_calls_per_transfer": round(statistics.mean(self.storage_calls), 1),
            "own_median_ms": round(statistics.median(own), 1),
            "own_p90_ms": round(percentile(own, 90), 1),
        }


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class SourceRows:
    """New rows for the bench's tenants, each newer than every row before it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.next_id = FIRST_ID

    def add(self, tenants: list[str], per_tenant: int) -> None:
        if per_tenant == 0:
            return
        count = per_tenant * len(tenants)
        with psycopg.connect(self.url, autocommit=True) as db:
            db.execute(
                "INSERT INTO tiny SELECT %s + i, (%s::text[])[1 + i %% %s], 1.00, clock_timestamp() "
                "FROM generate_series(0, %s - 1) AS i",
                (self.next_id, tenants, len(tenants), count),
            )
        self.next_id += count


@dataclass(frozen=True)
class BenchConnection:
    destination: str  # "local" | "s3"
    name: str
    tenant: str


def onboard(services: Services, destination: Destination, tenant: str) -> None:
    """Create, validate and activate, as an operator would (not timed)."""
    connections = services.connections
    name = f"small-{destination.type}-{tenant}"
    connections.create(actor="bench", name=name, tenant=tenant, **destination.create_kwargs(tenant))
    done = connections.validate(name, actor="bench")
    assert done.passed, [r.as_dict() for r in done.results]
    connections.activate(name, actor="bench")


def wait_past_second(started_at: datetime | None) -> None:
    """A connection's next transfer may not start in the second its last one started (file
    names carry the second, and byob sleeps to the next one): wait here, untimed."""
    if started_at is None:
        return
    while time.time() < int(started_at.timestamp()) + 1.001:
        time.sleep(0.01)


class SmallTransfers:
    def __init__(self, services: Services, clock: StorageClock, rows: SourceRows) -> None:
        self.services = services
        self.clock = clock
        self.rows = rows
        self.last_started: dict[str, datetime] = {}

    def transfer(self, conn: BenchConnection, expected_rows: int) -> tuple[float, float, int]:
        """One timed transfer: wall seconds, seconds in storage, and storage calls."""
        wait_past_second(self.last_started.get(conn.name))
        self.clock.reset()
        start = time.perf_counter()
        results = self.services.transfers.run(conn.name, actor="bench")
        wall = time.perf_counter() - start
        [result] = results
        record = result.record
        assert record.status.value == "succeeded", record
        assert record.rows == expected_rows, (conn, record.rows, expected_rows)
        self.last_started[conn.name] = record.started_at
        return wall, self.clock.seconds, self.clock.calls

    def round(self, conns: list[BenchConnection], new_rows: int) -> dict[str, Timings]:
        """``new_rows`` more rows for every tenant, then one transfer of each connection."""
        self.rows.add(sorted({c.tenant for c in conns}), new_rows)
        timings: dict[str, Timings] = {}
        for conn in conns:
            timings.setdefault(conn.destination, Timings()).add(*self.transfer(conn, new_rows))
        return timings


@contextmanager
def small_transfer_services(
    settings_options: dict[str, Any], clock: StorageClock
) -> Iterator[tuple[Services, S3Emulator]]:
    """byob on the bench's state store and source, its AWS on an in-process emulator."""
    with S3Emulator() as emulator:
        byob = Byob(
            load_settings(**settings_options, aws_endpoint_url=emulator.endpoint_url),
            aws=clocked_sessions(emulator.endpoint_url, clock),
        )
        try:
            yield Services(byob), emulator
        finally:
            byob.close()


def measure(
    settings_options: dict[str, Any],
    source_url: str,
    out_dir: Path,
    *,
    connections: int,
    row_counts: tuple[int, ...] = ROW_COUNTS,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Figures per destination and row count (see the module's docstring)."""
    clock = StorageClock()
    with (
        small_transfer_services(settings_options, clock) as (services, emulator),
        clock.timing_fsync(),
    ):
        bucket = emulator.create_bucket("small")
        destinations = [
            Destination("local", out_dir=out_dir),
            Destination("s3", endpoint_url=emulator.endpoint_url, bucket=bucket),
        ]
        conns = []
        for destination in destinations:
            for i in range(connections):
                tenant = f"small{i}"
                onboard(services, destination, tenant)
                conns.append(
                    BenchConnection(destination.type, f"small-{destination.type}-{tenant}", tenant)
                )
        log(f"small transfers: {len(conns)} connections onboarded")
        bench = SmallTransfers(services, clock, SourceRows(source_url))
        first = bench.round(conns, 1)  # each connection's first transfer: a full export
        figures: dict[str, Any] = {
            "connections_per_destination": connections,
            "first_transfer": {d: t.figures() for d, t in first.items()},
        }
        for new_rows in row_counts:
            for destination, timings in bench.round(conns, new_rows).items():
                figures.setdefault(destination, {})[str(new_rows)] = timings.figures()
        return figures


def table(figures: dict[str, Any]) -> Table:
    out = Table(
        "to",
        "rows",
        "n",
        "wall p50",
        "wall p90",
        "storage p50",
        "calls",
        "own p50",
        "own p90",
        title="small transfers: ms per incremental (storage: S3 requests or fsync; "
        "own: wall - storage)",
    )
    for destination in ("local", "s3"):
        for rows, f in figures.get(destination, {}).items():
            out.add_row(
                destination,
                rows,
                str(f["transfers"]),
                f"{f['wall_median_ms']:.1f}",
                f"{f['wall_p90_ms']:.1f}",
                f"{f['storage_median_ms']:.1f}",
                f"{f['storage_calls_per_transfer']:.0f}",
                f"{f['own_median_ms']:.1f}",
                f"{f['own_p90_ms']:.1f}",
            )
    return out
