"""Who is calling: an operator (by API key name, or the CLI) or a recipient holding a link."""

from __future__ import annotations

from dataclasses import dataclass

from byob.domain.credentials import Link


@dataclass(frozen=True, kw_only=True)
class Principal:
    actor: str  # as the audit log names it: "cli", "operator:<key>", "link:<id>"
    link: Link | None = None

    @property
    def is_operator(self) -> bool:
        return self.link is None


CLI = Principal(actor="cli")
