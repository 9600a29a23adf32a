"""Finding match candidates for many records at once: a few queries per batch, then the domain chooses."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

from adapters.runtime import Runtime
from domain.errors import DomainError
from domain.lookups import Lookups
from domain.mapping import FieldMapping, TableMapping
from domain.matching import MatchResult, choose, fold, match_groups, wanted
from domain.values import Record, Value


def find_matches(
    rt: Runtime,
    mapping: TableMapping,
    system: str,
    records: Mapping[str, Record],
    lookups: Lookups,
    pool: CandidatePool | None = None,
) -> dict[str, MatchResult]:
    """The match of each record of `system` (by key) among the other side's records in scope.

    One query serves the whole batch: for each priority group, the target's rows whose match columns hold
    any of the batch's values (case-folded where the field says so). A candidate that one record of the
    batch takes is not offered to the next, so two records never couple to one counterpart.
    """
    target = mapping.other(system)
    side = mapping.side(target)
    priority = match_groups(mapping)
    groups: list[dict[str, set[Value]]] = []
    folded: set[str] = set()
    wants: dict[str, list[dict[str, Value] | None]] = {}  # per record, what each group asks of a match
    broken: set[str] = set()  # a group's values cannot be worked out: the planner reports the error
    for key, record in records.items():
        wants[key] = []
        for index, group in enumerate(priority):
            try:
                values = wanted(mapping, group, system, record, lookups)
            except DomainError:
                broken.add(key)
                values = None
            wants[key].append(values)
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
    if pool is not None:
        hits = pool.find(shaped, folded)
    else:
        hits = rt.connector(target).find(side, mapping.columns(target), shaped, folded) if shaped else []
    candidates = [c for c in hits if side.filter.matches(c)]  # a counterpart must be in scope too
    coupled = set(rt.store.couplings(mapping, target, [str(c[side.key]) for c in candidates]))
    claimed: set[str] = set()
    found: dict[str, MatchResult] = {}
    shared = [[f for f in group if system in f.columns and target in f.columns] for group in priority]
    by_group = _index(target, shared, candidates)
    for key, record in records.items():
        if key in broken:
            continue
        near = _near(target, shared, wants[key], candidates, by_group)
        try:
            match = choose(mapping, system, record, near, coupled | claimed, lookups)
        except DomainError:
            continue
        if match.key is not None:
            claimed.add(match.key)
        found[key] = match
    return found


Index = list[dict[tuple[Value, ...], list[int]]]


def _index(target: str, shared: list[list[FieldMapping]], candidates: list[Record]) -> Index:
    """Per priority group, the candidates' positions by their values of the group, folded as choose() does.

    choose() compares a record with every candidate it is given; giving it only the candidates that agree
    with the record in some group keeps a batch linear instead of records × candidates. `shared` holds
    each group's fields that both sides map.
    """
    index: Index = []
    for fields in shared:
        positions: dict[tuple[Value, ...], list[int]] = defaultdict(list)
        for position, candidate in enumerate(candidates):
            positions[tuple(fold(f, candidate.get(f.columns[target])) for f in fields)].append(position)
        index.append(positions)
    return index


def _near(
    target: str,
    shared: list[list[FieldMapping]],
    wants: list[dict[str, Value] | None],
    candidates: list[Record],
    index: Index,
) -> list[Record]:
    """The candidates that agree with the record's wanted values in at least one group, in their order."""
    near: set[int] = set()
    for fields, values, positions in zip(shared, wants, index, strict=True):
        if values is None:
            continue
        near.update(positions.get(tuple(fold(f, values[f.columns[target]]) for f in fields), ()))
    return [candidates[i] for i in sorted(near)]


class CandidatePool:
    """Every in-scope record of the target side, read once and indexed by match column, for a whole run.

    A long match run (every record of one side against every record of the other) then costs one scan of
    the target instead of one query per batch, each of which would compare a column against thousands
    of values without an index the target system may not have.
    """

    def __init__(self, rt: Runtime, mapping: TableMapping, target: str) -> None:
        side = mapping.side(target)
        columns = {f.columns[target] for f in mapping.match_fields if target in f.columns}
        self.key = side.key
        self.index: dict[tuple[str, bool], dict[Value, list[Record]]] = defaultdict(lambda: defaultdict(list))
        self.position: dict[str, int] = {}
        for page in rt.connector(target).query(side, mapping.columns(target), side.filter):
            for record in page:
                self.position[str(record[side.key])] = len(self.position)
                for column in columns:
                    value = record.get(column)
                    if value is None:
                        continue
                    self.index[(column, False)][value].append(record)
                    if isinstance(value, str):
                        self.index[(column, True)][value.casefold()].append(record)

    def find(self, groups: list[dict[str, list[Value]]], folded: set[str]) -> list[Record]:
        """What the connector's find() would return: records matching every column of any one group."""
        found: dict[str, Record] = {}
        for group in groups:
            sets = []
            for column, values in group.items():
                fold = column in folded
                index = self.index[(column, fold)]
                # casefold as choose() does: wider than the lower() a query can use (ß, ﬁ, …)
                wanted = [v.casefold() if fold and isinstance(v, str) else v for v in values]
                hits = {str(r[self.key]): r for v in wanted for r in index.get(v, ())}
                sets.append(hits)
            if not sets:
                continue
            found.update({k: r for k, r in sets[0].items() if all(k in h for h in sets[1:])})
        return sorted(found.values(), key=lambda r: self.position[str(r[self.key])])  # the scan's order
