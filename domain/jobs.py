"""Sync job counts: how many records of a run were inserted, modified, deleted, unchanged and so on."""

from __future__ import annotations

from dataclasses import dataclass, fields

from domain.plan import Outcome


@dataclass
class Counts:
    inserted: int = 0
    modified: int = 0
    deleted: int = 0
    unchanged: int = 0
    skipped: int = 0
    failed: int = 0
    coupled: int = 0
    uncoupled: int = 0

    def add(self, outcome: Outcome, n: int = 1) -> None:
        setattr(self, outcome.value, getattr(self, outcome.value) + n)

    def merge(self, other: Counts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def total(self) -> int:
        return sum(self.as_dict().values())

    def __str__(self) -> str:
        shown = [f"{n} {name}" for name, n in self.as_dict().items() if n]
        return ", ".join(shown) or "nothing to do"
