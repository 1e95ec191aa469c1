"""Prometheus metrics at /metrics: transfers by status, rows and bytes delivered, durations,
queue depth and the age of the oldest waiting job. Read from the state store at scrape time,
so every API instance reports the same numbers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import sqlalchemy as sa
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from byob.store import tables as T

if TYPE_CHECKING:
    from byob.app import Byob

DURATION_BUCKETS = (1, 5, 15, 60, 300, 900, 3600, 14400)
QueueProbe = Callable[[], tuple[int, float]]  # (waiting jobs, oldest age in seconds)


class ByobCollector(Collector):
    def __init__(self, byob: Byob, queue_probe: QueueProbe) -> None:
        self.byob = byob
        self.queue_probe = queue_probe

    def collect(self) -> Iterator[object]:  # type: ignore[override]
        c = T.transfers.c
        by_status = GaugeMetricFamily("byob_transfers", "Transfers by status", labels=["status"])
        for status, n in sorted(self.byob.transfers.counts_by_status().items()):
            by_status.add_metric([status], n)
        yield by_status
        with self.byob.engine.connect() as db:
            rows, size = db.execute(
                sa.select(
                    sa.func.coalesce(sa.func.sum(c.rows), 0),
                    sa.func.coalesce(sa.func.sum(c.bytes), 0),
                ).where(c.status == "succeeded")
            ).one()
            durations = [
                (finished - started).total_seconds()
                for started, finished in db.execute(
                    sa.select(c.started_at, c.finished_at).where(
                        c.status == "succeeded", c.finished_at.is_not(None)
                    )
                )
            ]
        yield CounterMetricFamily(
            "byob_rows_delivered", "Rows delivered by succeeded transfers", value=int(rows)
        )
        yield CounterMetricFamily(
            "byob_bytes_delivered",
            "Parquet bytes delivered by succeeded transfers",
            value=int(size),
        )
        buckets, total = [], 0
        for bound in DURATION_BUCKETS:
            buckets.append((str(float(bound)), sum(1 for d in durations if d <= bound)))
        buckets.append(("+Inf", len(durations)))
        total = sum(durations)
        hist = HistogramMetricFamily(
            "byob_transfer_duration_seconds", "Duration of succeeded transfers"
        )
        hist.add_metric([], buckets, sum_value=total)
        yield hist
        depth, oldest = self.queue_probe()
        yield GaugeMetricFamily("byob_queue_depth", "Transfers waiting for a worker", value=depth)
        yield GaugeMetricFamily(
            "byob_queue_oldest_age_seconds", "Age of the oldest waiting transfer", value=oldest
        )
