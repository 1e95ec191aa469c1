"""The figures an operator monitors (`/metrics` renders them): connections by status and
health, transfers by status, what succeeded transfers delivered and how long they took, and
the queue. Read from the state store, so every API instance reports the same numbers."""

from __future__ import annotations

from dataclasses import dataclass

from byob.domain.connections import Status
from byob.services.ports import Adapters
from byob.services.transfers import TransferService


@dataclass(frozen=True, kw_only=True)
class Figures:
    connections: dict[tuple[str, bool], int]  # (status, failing) → how many
    transfers: dict[str, int]  # status → how many
    rows_delivered: int
    bytes_delivered: int
    rows_imported: int  # by import connections' runs (not counted as delivered)
    bytes_imported: int  # of the files those rows came from
    import_files_rejected: int  # waiting for a retry
    durations: list[float]  # seconds, of each succeeded transfer
    queue_depth: int
    queue_oldest_seconds: float


class FigureService:
    def __init__(self, adapters: Adapters, transfers: TransferService) -> None:
        self.state = adapters.state
        self.transfers = transfers

    def now(self) -> Figures:
        counts = self.state.connections.counts()
        # Every status is reported, at zero too, so a dashboard's series never vanish.
        connections = {(s.value, False): counts.get((s.value, False), 0) for s in Status}
        connections |= {key: n for key, n in counts.items() if key[1]}
        rows, size = self.state.transfers.delivered()
        rows_in, size_in = self.state.transfers.imported()
        depth, oldest = self.transfers.queue_depth()
        return Figures(
            connections=connections,
            transfers=self.state.transfers.counts_by_status(),
            rows_delivered=rows,
            bytes_delivered=size,
            rows_imported=rows_in,
            bytes_imported=size_in,
            import_files_rejected=self.state.import_rejections.count(),
            durations=self.state.transfers.durations(),
            queue_depth=depth,
            queue_oldest_seconds=oldest,
        )
