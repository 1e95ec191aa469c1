"""Prometheus metrics at /metrics: the operator's figures (services/figures.py) in the
Prometheus text format."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from byob.services.figures import Figures

DURATION_BUCKETS = (1, 5, 15, 60, 300, 900, 3600, 14400)


class ByobCollector(Collector):
    def __init__(self, figures: Callable[[], Figures]) -> None:
        self.figures = figures

    def collect(self) -> Iterator[Metric]:
        f = self.figures()
        connections = GaugeMetricFamily(
            "byob_connections", "Connections by status and health", labels=["status", "failing"]
        )
        for (status, failing), n in sorted(f.connections.items()):
            connections.add_metric([status, str(failing).lower()], n)
        yield connections
        by_status = GaugeMetricFamily("byob_transfers", "Transfers by status", labels=["status"])
        for status, n in sorted(f.transfers.items()):
            by_status.add_metric([status], n)
        yield by_status
        yield CounterMetricFamily(
            "byob_rows_delivered", "Rows delivered by succeeded transfers", value=f.rows_delivered
        )
        yield CounterMetricFamily(
            "byob_bytes_delivered",
            "Parquet bytes delivered by succeeded transfers",
            value=f.bytes_delivered,
        )
        yield CounterMetricFamily(
            "byob_rows_imported", "Rows loaded by succeeded import runs", value=f.rows_imported
        )
        yield CounterMetricFamily(
            "byob_bytes_imported",
            "Bytes of the files succeeded import runs loaded",
            value=f.bytes_imported,
        )
        yield GaugeMetricFamily(
            "byob_import_files_rejected",
            "Files import runs rejected, waiting for a retry",
            value=f.import_files_rejected,
        )
        buckets = [
            (str(float(bound)), sum(1 for d in f.durations if d <= bound))
            for bound in DURATION_BUCKETS
        ]
        buckets.append(("+Inf", len(f.durations)))
        hist = HistogramMetricFamily(
            "byob_transfer_duration_seconds", "Duration of succeeded transfers"
        )
        hist.add_metric([], buckets, sum_value=sum(f.durations))
        yield hist
        yield GaugeMetricFamily(
            "byob_queue_depth", "Transfers waiting for a worker", value=f.queue_depth
        )
        yield GaugeMetricFamily(
            "byob_queue_oldest_age_seconds",
            "Age of the oldest waiting transfer",
            value=f.queue_oldest_seconds,
        )
