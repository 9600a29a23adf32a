"""Match-based coupling: finding the one uncoupled counterpart whose match fields agree with a record."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from itertools import groupby

from domain.lookups import Lookups, convey
from domain.mapping import FieldMapping, TableMapping
from domain.values import Record, Value, as_key, is_blank


@dataclass(frozen=True)
class MatchResult:
    key: str | None = None  # the one uncoupled candidate that matched
    record: Record | None = None
    candidates: tuple[str, ...] = ()  # several uncoupled candidates matched: none is chosen
    coupled: tuple[str, ...] = ()  # matching candidates that are coupled to another record already

    @property
    def ambiguous(self) -> bool:
        return len(self.candidates) > 1

    def describe(self, target: str) -> str:
        if self.ambiguous:
            return f"{len(self.candidates)} {target} records match: {', '.join(self.candidates[:10])}"
        if self.coupled:
            return f"the matching {target} record {', '.join(self.coupled[:10])} is coupled to another record"
        return f"no {target} record matches"


NO_MATCH = MatchResult()


def match_groups(mapping: TableMapping) -> list[list[FieldMapping]]:
    """The match fields in priority groups, lowest priority number first."""
    fields = sorted(mapping.match_fields, key=lambda f: f.match.priority if f.match else 0)
    return [list(group) for _, group in groupby(fields, key=lambda f: f.match.priority if f.match else 0)]


def fold(fmap: FieldMapping, value: Value) -> Value:
    if fmap.lookup is not None:
        return as_key(value)
    if isinstance(value, str) and fmap.match is not None and not fmap.match.case_sensitive:
        return value.casefold()
    return value


def wanted(
    mapping: TableMapping, group: Sequence[FieldMapping], source: str, record: Record, lookups: Lookups
) -> dict[str, Value] | None:
    """The target columns and the values a counterpart must hold to match in this group (None: blank)."""
    target = mapping.other(source)
    values: dict[str, Value] = {}
    for fmap in group:
        if source not in fmap.columns or target not in fmap.columns:
            continue
        value = convey(fmap, source, target, record.get(fmap.columns[source]), lookups)
        if is_blank(value):
            return None
        values[fmap.columns[target]] = value
    return values or None


def choose(
    mapping: TableMapping,
    source: str,
    record: Record,
    candidates: Sequence[Record],
    coupled: Collection[str],
    lookups: Lookups,
) -> MatchResult:
    """Tries the priority groups in order; the first group that finds anything decides."""
    target = mapping.other(source)
    key_column = mapping.side(target).key
    for group in match_groups(mapping):
        values = wanted(mapping, group, source, record, lookups)
        if values is None:
            continue
        by_column = {fmap.columns[target]: fmap for fmap in group if target in fmap.columns}
        hits = [
            candidate
            for candidate in candidates
            if all(
                fold(by_column[column], candidate.get(column)) == fold(by_column[column], value)
                for column, value in values.items()
            )
        ]
        if not hits:
            continue
        keys = [as_key(hit[key_column]) or "" for hit in hits]
        free = [(key, hit) for key, hit in zip(keys, hits, strict=True) if key not in coupled]
        taken = tuple(key for key in keys if key in coupled)
        if len(free) == 1:
            return MatchResult(key=free[0][0], record=free[0][1])
        return MatchResult(candidates=tuple(key for key, _ in free), coupled=taken)
    return NO_MATCH
