"""The models file, checked against the source."""

from __future__ import annotations

from byob.domain.models import ResolvedModel, resolve
from byob.errors import ByobError
from byob.services.ports import Adapters


class ModelService:
    def __init__(self, adapters: Adapters) -> None:
        self.adapters = adapters

    def check(self) -> list[ResolvedModel]:
        """Every model resolved against the source's columns (errors name the model)."""
        with self.adapters.source() as src:
            return [
                resolve(spec, src.columns(spec.table)) for spec in self.adapters.models_file.models
            ]

    def names(self) -> list[str]:
        """The models' names, or none when the models file cannot be read (pages still show)."""
        try:
            return [m.name for m in self.adapters.models_file.models]
        except ByobError:
            return []
