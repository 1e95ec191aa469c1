"""Hard deletes: installing their capture in the source (or printing its SQL), saying where it
is installed, and pruning captured deletes every connection has delivered."""

from __future__ import annotations

from dataclasses import dataclass

from byob.domain.models import ModelSpec
from byob.errors import ByobError, ConfigError
from byob.services.ports import Adapters


@dataclass(frozen=True, kw_only=True)
class CaptureState:
    model: str
    table: str
    declared: bool  # capture_deletes = true in the models file
    installed: bool | None  # None: could not be told (see ``problem``)
    problem: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "model": self.model,
            "table": self.table,
            "capture_deletes": self.declared,
            "installed": self.installed,
            "problem": self.problem,
        }


class DeleteService:
    def __init__(self, adapters: Adapters) -> None:
        self.adapters = adapters

    def capture_sql(self, model: str) -> list[str]:
        """The SQL installing delete capture for a model, for a DBA (no connection needed)."""
        from byob.sources.deleted_rows import capture_sql

        return capture_sql(self._table_model(model))

    def install_capture(self, model: str) -> ModelSpec:
        """Install delete capture for a model in the [source] database."""
        spec = self._table_model(model)
        self.adapters.delete_capture().install(spec)
        return spec

    def capture_states(self) -> list[CaptureState]:
        """Whether capture is installed, for every table model (each has a primary key). A
        model declaring capture_deletes without it gets a problem: its transfers fail."""
        specs = [m for m in self.adapters.models_file.models if m.table]
        if not specs:
            return []
        try:
            capture = self.adapters.delete_capture()
        except ByobError as exc:  # not a PostgreSQL source
            return [
                CaptureState(
                    model=s.name,
                    table=s.table,
                    declared=s.capture_deletes,
                    installed=None,
                    problem=exc.message if s.capture_deletes else None,
                )
                for s in specs
            ]
        states = []
        for spec in specs:
            installed = capture.installed(spec)
            problem = None
            if spec.capture_deletes and not installed:
                problem = (
                    f"model {spec.name!r} has capture_deletes = true but capture is not "
                    f"installed on {spec.table}, so its transfers fail; run `byob models "
                    f"capture-deletes {spec.name} --apply` (or give its SQL to a DBA)"
                )
            states.append(
                CaptureState(
                    model=spec.name,
                    table=spec.table,
                    declared=spec.capture_deletes,
                    installed=installed,
                    problem=problem,
                )
            )
        return states

    def prune(self) -> dict[str, int]:
        """Delete the captured deletes that every connection receiving them has delivered;
        per model, how many. A tenant's bound is the earliest time from which one of its
        connections will still read them (`Transfers.still_read_from`: paused connections
        resume where they stopped, so they hold pruning back; disabled ones do not)."""
        specs = [m for m in self.adapters.models_file.models if m.capture_deletes]
        if not specs:
            return {}
        capture = self.adapters.delete_capture()
        pruned = {}
        for spec in specs:
            # Read before the bounds, so a backfill planned after they are read ends its
            # window no more than the settle lag before this (its source clock less the lag).
            unclaimed = self.adapters.clock()
            bounds = self.adapters.state.transfers.still_read_from(spec.name)
            until = {tenant: bounds.get(tenant, unclaimed) for tenant in capture.tenants(spec.name)}
            pruned[spec.name] = capture.prune(spec.name, until)
        return pruned

    def _table_model(self, name: str) -> ModelSpec:
        spec = self.adapters.models_file.model(name)
        if not spec.table:
            raise ConfigError(
                f"model {name!r} is a query; delete capture needs a table to put a trigger "
                "on (a query model reports deletes with deleted_column)",
                field="model",
            )
        return spec
