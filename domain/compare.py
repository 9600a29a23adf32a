"""Whether a coupled pair agrees: every mapped field holds, on the target, what its source says."""

from __future__ import annotations

from domain.errors import DomainError
from domain.lookups import Lookups, agree, convey
from domain.mapping import TableMapping
from domain.values import Record


def disagreements(mapping: TableMapping, records: dict[str, Record], lookups: Lookups) -> list[str]:
    """The fields on which the two records of a pair disagree, each described for a person."""
    found: list[str] = []
    for fmap in mapping.active_fields():
        directions = [
            (source, target)
            for source in mapping.systems
            if fmap.flows(source, (target := mapping.other(source)))
            and fmap.columns[target] != mapping.side(target).key
        ]
        if not directions:
            continue
        verdicts = []
        for source, target in directions:
            value = records[source].get(fmap.columns[source]) if source in fmap.columns else None
            try:
                expected = convey(fmap, source, target, value, lookups)
            except DomainError as exc:
                verdicts.append((False, f"{fmap.name}: {exc}"))
                continue
            actual = records[target].get(fmap.columns[target])
            shown = f"{fmap.name}: {target} has {actual!r}, {source} says {expected!r}"
            verdicts.append((agree(fmap, actual, expected), shown))
        if not any(ok for ok, _ in verdicts):
            found.append(verdicts[0][1])
    return found
