"""The planner's answer for one record: what to write where, what to couple, and what to report."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from domain.coupling import Coupling
from domain.values import Record, Value


class Outcome(StrEnum):
    """How a record counts in its sync job (one outcome per record)."""

    INSERTED = "inserted"
    MODIFIED = "modified"
    DELETED = "deleted"
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"
    FAILED = "failed"
    COUPLED = "coupled"
    UNCOUPLED = "uncoupled"


class ErrorKind(StrEnum):
    CONFLICT = "conflict"
    LOOKUP = "lookup"
    TRANSFORM = "transform"
    DELETED = "deleted"
    AMBIGUOUS = "ambiguous"
    REJECTED = "rejected"  # the target system refused the write
    DIRECTION = "direction"


@dataclass(frozen=True)
class Change:
    """One field that a plan writes: `before` is None for a record being created."""

    system: str
    column: str
    before: Value
    after: Value


@dataclass(frozen=True)
class Conflict:
    field: str
    current: dict[str, Value]
    base: dict[str, Value]

    def describe(self) -> str:
        parts = ", ".join(f"{s}: {self.base.get(s)!r} → {v!r}" for s, v in self.current.items())
        return f"{self.field} changed on both sides ({parts})"


@dataclass
class RecordPlan:
    origin: str
    origin_key: str
    outcome: Outcome
    reason: str = ""
    error_kind: ErrorKind | None = None
    coupling: Coupling | None = None
    updates: dict[str, Record] = field(default_factory=dict)
    create_in: str | None = None
    create_values: Record = field(default_factory=dict)
    mirrored: Record = field(default_factory=dict)  # the part of create_values that the source's fields gave
    delete_in: str | None = None
    couple_to: str | None = None
    uncouple: bool = False
    unsettled: frozenset[str] = frozenset()
    changes: tuple[Change, ...] = ()
    conflicts: tuple[Conflict, ...] = ()

    @property
    def writes(self) -> bool:
        return bool(self.updates or self.create_in or self.delete_in)

    @property
    def failed(self) -> bool:
        return self.outcome is Outcome.FAILED
