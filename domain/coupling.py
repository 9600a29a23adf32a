"""A coupling: the link between two records of a mapping, with the base values of the last sync."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from domain.values import Record, Value


class CouplingStatus(StrEnum):
    SYNCED = "synced"  # both sides agreed after the last sync
    COUPLED = "coupled"  # linked, never synchronized: no base yet
    PENDING = "pending"  # a counterpart is being created; its key is not known yet
    FAILED = "failed"  # the last sync of the pair failed (see the errors)
    SKIPPED = "skipped"  # failed repeatedly; parked until someone retries it


@dataclass
class Coupling:
    mapping: str
    keys: dict[str, str | None]
    base: dict[str, Record] | None = None
    versions: dict[str, Value] = field(default_factory=dict)
    status: CouplingStatus = CouplingStatus.COUPLED
    failures: int = 0
    skipped: bool = False
    last_error: str | None = None
    id: int | None = None

    def key(self, system: str) -> str | None:
        return self.keys.get(system)

    def base_of(self, system: str) -> Record | None:
        if self.base is None:
            return None
        return self.base.get(system)
