"""Prometheus metrics at /metrics: connections by status and health, transfers by status, rows
and bytes delivered, durations, queue depth and the age of the oldest waiting job. Read from
the state store at scrape time, so every API instance reports the same numbers."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from byob.domain.connections import Status
from byob.store.state import StateStore

DURATION_BUCKETS = (1, 5, 15, 60, 300, 900, 3600, 14400)
QueueProbe = Callable[[], tuple[int, float]]  # (waiting jobs, oldest age in seconds)


class ByobCollector(Collector):
    def __init__(self, state: StateStore, queue_probe: QueueProbe) -> None:
        self.state = state
        self.queue_probe = queue_probe

    def collect(self) -> Iterator[Metric]:
        connections = GaugeMetricFamily(
            "byob_connections", "Connections by status", labels=["status", "failing"]
        )
        counts = self.state.connections.counts()
        for status in Status:
            for failing in (False, True):
                n = counts.get((status.value, failing), 0)
                if n or not failing:
                    connections.add_metric([status.value, str(failing).lower()], n)
        yield connections
        by_status = GaugeMetricFamily("byob_transfers", "Transfers by status", labels=["status"])
        for status_name, n in sorted(self.state.transfers.counts_by_status().items()):
            by_status.add_metric([status_name], n)
        yield by_status
        rows, size = self.state.transfers.delivered()
        yield CounterMetricFamily(
            "byob_rows_delivered", "Rows delivered by succeeded transfers", value=rows
        )
        yield CounterMetricFamily(
            "byob_bytes_delivered", "Parquet bytes delivered by succeeded transfers", value=size
        )
        durations = self.state.transfers.durations()
        buckets = [
            (str(float(bound)), sum(1 for d in durations if d <= bound))
            for bound in DURATION_BUCKETS
        ]
        buckets.append(("+Inf", len(durations)))
        hist = HistogramMetricFamily(
            "byob_transfer_duration_seconds", "Duration of succeeded transfers"
        )
        hist.add_metric([], buckets, sum_value=sum(durations))
        yield hist
        depth, oldest = self.queue_probe()
        yield GaugeMetricFamily("byob_queue_depth", "Transfers waiting for a worker", value=depth)
        yield GaugeMetricFamily(
            "byob_queue_oldest_age_seconds", "Age of the oldest waiting transfer", value=oldest
        )
