"""Finding match candidates for many records at once: a few queries per batch, then the domain chooses."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

from adapters.runtime import Runtime
from domain.errors import DomainError
from domain.lookups import Lookups
from domain.mapping import TableMapping
from domain.matching import MatchResult, choose, match_groups, wanted
from domain.values import Record, Value


def find_matches(
    rt: Runtime, mapping: TableMapping, system: str, records: Mapping[str, Record], lookups: Lookups
) -> dict[str, MatchResult]:
    """The match of each record of `system` (by key) among the other side's records in scope.

    One query serves the whole batch: for each priority group, the target's rows whose match columns hold
    any of the batch's values (case-folded where the field says so). A candidate that one record of the
    batch takes is not offered to the next, so two records never couple to one counterpart.
    """
    target = mapping.other(system)
    side = mapping.side(target)
    groups: list[dict[str, set[Value]]] = []
    folded: set[str] = set()
    for record in records.values():
        for index, group in enumerate(match_groups(mapping)):
            try:
                values = wanted(mapping, group, system, record, lookups)
            except DomainError:
                continue  # the planner reports the same error for this record
            if values is None:
                continue
            while len(groups) <= index:
                groups.append(defaultdict(set))
            for column, value in values.items():
                fmap = next(f for f in group if f.columns.get(target) == column)
                fold = isinstance(value, str) and fmap.match is not None and not fmap.match.case_sensitive
                if fold:
                    folded.add(column)
                groups[index][column].add(value.lower() if fold and isinstance(value, str) else value)
    shaped = [{c: sorted(v, key=str) for c, v in g.items()} for g in groups if g]
    hits = rt.connector(target).find(side, mapping.columns(target), shaped, folded) if shaped else []
    candidates = [c for c in hits if side.filter.matches(c)]  # a counterpart must be in scope too
    coupled = set(rt.store.couplings(mapping, target, [str(c[side.key]) for c in candidates]))
    claimed: set[str] = set()
    found: dict[str, MatchResult] = {}
    for key, record in records.items():
        try:
            match = choose(mapping, system, record, candidates, coupled | claimed, lookups)
        except DomainError:
            continue
        if match.key is not None:
            claimed.add(match.key)
        found[key] = match
    return found
