"""Checking that coupled records agree: every mapped field of every coupled pair, in bulk."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from adapters.runtime import Runtime
from adapters.store.store import CHUNK
from domain.compare import disagreements
from domain.coupling import Coupling
from domain.mapping import TableMapping
from domain.values import Record
from workers.usecases.references import fetch_lookups


@dataclass
class Mismatch:
    mapping: str
    keys: dict[str, str | None]
    problems: list[str]


@dataclass
class VerifyReport:
    pairs: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    open_errors: int = 0

    @property
    def converged(self) -> bool:
        return not self.mismatches


def verify(rt: Runtime, mappings: Sequence[str] | None = None) -> VerifyReport:
    """Compares both records of every coupled pair; a pair with an open error is still reported."""
    report = VerifyReport()
    for mapping in rt.mappings.ordered(mappings):
        offset = 0
        while chunk := rt.store.list_couplings(mapping, limit=CHUNK, offset=offset):
            offset += len(chunk)
            report.pairs += len(chunk)
            report.mismatches.extend(_check(rt, mapping, chunk))
        report.open_errors += rt.store.count_errors(mapping.name)
    return report


def _check(rt: Runtime, mapping: TableMapping, couplings: list[Coupling]) -> list[Mismatch]:
    records: dict[str, dict[str, Record]] = {}
    for system in mapping.systems:
        keys = [key for c in couplings if (key := c.keys[system])]
        records[system] = rt.connector(system).read(mapping.side(system), keys, mapping.columns(system))
    lookups = fetch_lookups(rt, mapping, {s: list(r.values()) for s, r in records.items()})
    found = []
    for coupling in couplings:
        pair = {s: records[s].get(coupling.keys[s] or "") for s in mapping.systems}
        missing = [s for s, r in pair.items() if r is None]
        if missing:
            found.append(
                Mismatch(
                    mapping.name, coupling.keys, [f"no {s} record {coupling.keys[s]!r}" for s in missing]
                )
            )
            continue
        problems = disagreements(mapping, {s: r for s, r in pair.items() if r is not None}, lookups)
        if problems:
            found.append(Mismatch(mapping.name, coupling.keys, problems))
    return found
