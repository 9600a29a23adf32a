"""The sync rule: compare a pair of records three ways (each side against its base) and plan the writes.

Read top to bottom: `plan` dispatches to a coupled pair (merge or push), a pair with a deleted side
(the deletion policy), or an uncoupled record (filters, `sync_only_coupled`, match, create). Nothing here
reads or writes anything; the use cases execute the returned `RecordPlan`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from domain.coupling import Coupling
from domain.errors import DomainError, LookupNotCoupled
from domain.lookups import NO_LOOKUPS, Lookups, agree, convey
from domain.mapping import ConflictKind, ConflictPolicy, DeletionPolicy, FieldMapping, TableMapping
from domain.matching import MatchResult
from domain.plan import Change, Conflict, ErrorKind, Outcome, RecordPlan
from domain.values import Record, Value, same


@dataclass(frozen=True)
class Request:
    """How to sync: merge both ways (the default, and what events do) or push from one system."""

    source: str | None = None
    force: bool = False  # also sync skipped pairs, and pairs whose target changed since the last sync
    create: bool = False  # create counterparts even when the mapping syncs only coupled records
    deletion: DeletionPolicy | None = None  # overrides the mapping's deletion policy (error actions)


MERGE = Request()


@dataclass(frozen=True)
class Pair:
    """What the caller read for one work item: the coupling (if any) and the current records."""

    origin: str
    origin_key: str
    coupling: Coupling | None
    records: Mapping[str, Record | None] = field(default_factory=dict)
    match: MatchResult | None = None


def plan(
    mapping: TableMapping, pair: Pair, request: Request = MERGE, lookups: Lookups = NO_LOOKUPS
) -> RecordPlan:
    try:
        if pair.coupling is None:
            return _plan_uncoupled(mapping, pair, request, lookups)
        return _plan_coupled(mapping, pair, pair.coupling, request, lookups)
    except DomainError as exc:
        kind = ErrorKind.LOOKUP if isinstance(exc, LookupNotCoupled) else ErrorKind.TRANSFORM
        return _result(pair, Outcome.FAILED, str(exc), kind)


def _result(pair: Pair, outcome: Outcome, reason: str = "", kind: ErrorKind | None = None) -> RecordPlan:
    return RecordPlan(pair.origin, pair.origin_key, outcome, reason, kind, pair.coupling)


# --- a coupled pair -------------------------------------------------------------------------------


def _plan_coupled(
    mapping: TableMapping, pair: Pair, coupling: Coupling, request: Request, lookups: Lookups
) -> RecordPlan:
    if coupling.skipped and not request.force:
        return _result(
            pair,
            Outcome.SKIPPED,
            f"parked after {coupling.failures} identical failures ({coupling.last_error}); "
            "retry it with `tandem errors retry`",
        )
    records = {s: pair.records.get(s) for s in mapping.systems}
    present = {s: r for s, r in records.items() if r is not None}
    if len(present) < 2:
        return _plan_deleted(mapping, pair, coupling, present, request, lookups)
    for system, record in present.items():
        if not mapping.side(system).filter.matches(record):
            return _result(pair, Outcome.SKIPPED, f"the {system} record is outside the {system} filter")
    if request.source is not None:
        return _plan_push(mapping, pair, coupling, present, request, lookups)
    return _plan_merge(mapping, pair, coupling, present, lookups)


def changed_columns(mapping: TableMapping, coupling: Coupling, system: str, record: Record) -> list[str]:
    """Mapped columns of one side whose value differs from the base (all of them when there is none)."""
    base = coupling.base_of(system)
    columns = mapping.mapped_columns(system)
    if base is None:
        return list(columns)
    return [c for c in columns if c not in base or not same(record.get(c), base[c])]


def _plan_push(
    mapping: TableMapping,
    pair: Pair,
    coupling: Coupling,
    records: dict[str, Record],
    request: Request,
    lookups: Lookups,
) -> RecordPlan:
    source = request.source
    assert source is not None
    target = mapping.other(source)
    if not mapping.may_flow(source, target):
        return _result(
            pair,
            Outcome.FAILED,
            f"mapping {mapping.name} does not flow from {source} to {target}",
            ErrorKind.DIRECTION,
        )
    if not request.force and coupling.base is not None:
        touched = changed_columns(mapping, coupling, target, records[target])
        if touched:
            return _result(
                pair,
                Outcome.SKIPPED,
                f"the {target} record changed since the last sync ({', '.join(touched)}); "
                "use --force to overwrite it, or --merge",
            )
    result = _result(pair, Outcome.UNCHANGED)
    for fmap in mapping.active_fields():
        if fmap.flows(source, target):
            _assign(mapping, result, fmap, source, target, records, lookups)
    result.outcome = Outcome.MODIFIED if result.updates else Outcome.UNCHANGED
    return result


def _assign(
    mapping: TableMapping,
    result: RecordPlan,
    fmap: FieldMapping,
    source: str,
    target: str,
    records: dict[str, Record],
    lookups: Lookups,
) -> None:
    """Plans `target` to receive `source`'s value of one field, unless it already holds it."""
    column = fmap.columns[target]
    if column == mapping.side(target).key:
        return  # a key is set when the engine creates the record, never changed afterwards
    value = records[source].get(fmap.columns[source]) if source in fmap.columns else None
    desired = convey(fmap, source, target, value, lookups)
    current = records[target].get(column)
    if agree(fmap, current, desired):
        return
    result.updates.setdefault(target, {})[column] = desired
    result.changes += (Change(target, column, current, desired),)


def _plan_merge(
    mapping: TableMapping, pair: Pair, coupling: Coupling, records: dict[str, Record], lookups: Lookups
) -> RecordPlan:
    result = _result(pair, Outcome.UNCHANGED)
    first, second = mapping.systems
    changed = {s: set(changed_columns(mapping, coupling, s, records[s])) for s in mapping.systems}
    conflicts: list[Conflict] = []
    unsettled: set[str] = set()
    for fmap in mapping.active_fields():
        if fmap.is_constant:
            (target,) = fmap.columns
            source = mapping.other(target)
            if fmap.flows(source, target):
                _assign(mapping, result, fmap, source, target, records, lookups)
            continue
        if first not in fmap.columns or second not in fmap.columns:
            continue
        moved = [s for s in mapping.systems if fmap.columns[s] in changed[s]]
        # A key column is never written after the create, so a direction into one does not count.
        owners = [
            s
            for s in mapping.systems
            if fmap.flows(s, (other := mapping.other(s))) and fmap.columns[other] != mapping.side(other).key
        ]
        if not owners:
            continue
        if len(owners) == 1:
            # A one-way field belongs to its source: the source's value is re-asserted on the target.
            _assign(mapping, result, fmap, owners[0], mapping.other(owners[0]), records, lookups)
            continue
        if len(moved) == 1:
            _assign(mapping, result, fmap, moved[0], mapping.other(moved[0]), records, lookups)
            continue
        if _in_agreement(fmap, records, lookups):
            continue
        winner = _resolve(mapping.conflict, mapping, records)
        if winner is None:
            unsettled.add(fmap.name)
            conflicts.append(_conflict(fmap, coupling, records))
            continue
        _assign(mapping, result, fmap, winner, mapping.other(winner), records, lookups)
    result.unsettled = frozenset(unsettled)
    result.conflicts = tuple(conflicts)
    if conflicts:
        result.outcome = Outcome.FAILED
        result.error_kind = ErrorKind.CONFLICT
        result.reason = "; ".join(c.describe() for c in conflicts) + f" (conflict policy: {mapping.conflict})"
    elif result.updates:
        result.outcome = Outcome.MODIFIED
    return result


def _in_agreement(fmap: FieldMapping, records: dict[str, Record], lookups: Lookups) -> bool:
    first, second = list(fmap.columns)
    return agree(
        fmap,
        records[second].get(fmap.columns[second]),
        convey(fmap, first, second, records[first].get(fmap.columns[first]), lookups),
    ) or agree(
        fmap,
        records[first].get(fmap.columns[first]),
        convey(fmap, second, first, records[second].get(fmap.columns[second]), lookups),
    )


def _conflict(fmap: FieldMapping, coupling: Coupling, records: dict[str, Record]) -> Conflict:
    current = {s: records[s].get(c) for s, c in fmap.columns.items()}
    base = {s: (coupling.base_of(s) or {}).get(c) for s, c in fmap.columns.items()}
    return Conflict(fmap.name, current, base)


def _resolve(policy: ConflictPolicy, mapping: TableMapping, records: dict[str, Record]) -> str | None:
    """The system whose value wins a conflict, or None when the conflict must be listed."""
    if policy.kind is ConflictKind.PREFER:
        return policy.system
    if policy.kind is ConflictKind.LATEST:
        first, second = mapping.systems
        moments = [
            _moment(records[s].get(v)) if (v := mapping.side(s).version) else None for s in (first, second)
        ]
        if moments[0] is None or moments[1] is None or moments[0] == moments[1]:
            return None
        return first if moments[0] > moments[1] else second
    return None


def _moment(value: Value) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


# --- a pair with a deleted side --------------------------------------------------------------------


def _plan_deleted(
    mapping: TableMapping,
    pair: Pair,
    coupling: Coupling,
    present: dict[str, Record],
    request: Request,
    lookups: Lookups,
) -> RecordPlan:
    if not present:
        result = _result(pair, Outcome.UNCOUPLED, "deleted in both systems")
        result.uncouple = True
        return result
    (survivor,) = present
    gone = mapping.other(survivor)
    gone_key = coupling.key(gone)
    policy = request.deletion or mapping.deletion
    if policy is DeletionPolicy.UNCOUPLE:
        result = _result(pair, Outcome.UNCOUPLED, f"the {gone} record {gone_key} was deleted; uncoupled")
        result.uncouple = True
        return result
    if policy is DeletionPolicy.RESTORE:
        if not mapping.may_flow(survivor, gone):
            return _result(
                pair,
                Outcome.FAILED,
                f"the {gone} record {gone_key} was deleted and cannot be restored: "
                f"mapping {mapping.name} does not flow from {survivor} to {gone}",
                ErrorKind.DIRECTION,
            )
        result = _result(
            pair, Outcome.INSERTED, f"the {gone} record {gone_key} was deleted; restored from {survivor}"
        )
        result.create_in = gone
        _create(result, mapping, survivor, present[survivor], lookups)
        return result
    if policy is DeletionPolicy.PROPAGATE:
        if not mapping.may_flow(gone, survivor):
            return _result(
                pair,
                Outcome.FAILED,
                f"the {gone} record {gone_key} was deleted; the deletion cannot be propagated: "
                f"mapping {mapping.name} does not flow from {gone} to {survivor}",
                ErrorKind.DIRECTION,
            )
        result = _result(
            pair, Outcome.DELETED, f"the {gone} record {gone_key} was deleted; deleted in {survivor}"
        )
        result.delete_in = survivor
        result.uncouple = True
        return result
    return _result(
        pair,
        Outcome.FAILED,
        f"the {gone} record {gone_key} was deleted; restore it from {survivor}, "
        f"delete the {survivor} record, or uncouple",
        ErrorKind.DELETED,
    )


# --- an uncoupled record ---------------------------------------------------------------------------


def _plan_uncoupled(mapping: TableMapping, pair: Pair, request: Request, lookups: Lookups) -> RecordPlan:
    origin = pair.origin
    target = mapping.other(origin)
    record = pair.records.get(origin)
    if record is None:
        return _result(pair, Outcome.SKIPPED, f"no {origin} record with key {pair.origin_key!r}")
    if not mapping.may_flow(origin, target):
        outcome = Outcome.FAILED if request.create else Outcome.SKIPPED
        kind = ErrorKind.DIRECTION if request.create else None
        return _result(pair, outcome, f"mapping {mapping.name} does not flow from {origin} to {target}", kind)
    if not mapping.side(origin).filter.matches(record):
        return _result(pair, Outcome.SKIPPED, f"outside the {origin} filter")
    if mapping.sync_only_coupled and not request.create:
        return _result(pair, Outcome.SKIPPED, "not coupled (the mapping syncs only coupled records)")
    match = pair.match
    if match is not None and match.key is not None and match.record is not None:
        result = _result(pair, Outcome.COUPLED, f"matched the {target} record {match.key}")
        result.couple_to = match.key
        records = {origin: record, target: match.record}
        for fmap in mapping.active_fields():
            if fmap.flows(origin, target):
                _assign(mapping, result, fmap, origin, target, records, lookups)
        return result
    if match is not None and (match.ambiguous or match.coupled):
        return _result(pair, Outcome.FAILED, match.describe(target), ErrorKind.AMBIGUOUS)
    result = _result(pair, Outcome.INSERTED, f"created in {target}")
    _create(result, mapping, origin, record, lookups)
    return result


def _create(result: RecordPlan, mapping: TableMapping, source: str, record: Record, lookups: Lookups) -> None:
    """Plans the counterpart: the chosen template's defaults, then every field flowing its way.

    `mirrored` keeps what the source's fields alone say; it becomes the new record's base, so that a
    default that differs from the source reads as a change on the new side and flows back.
    """
    target = mapping.other(source)
    values = mapping.side(target).template_for(record)
    mirrored: Record = {}
    for fmap in mapping.active_fields():
        if fmap.flows(source, target):
            value = record.get(fmap.columns[source]) if source in fmap.columns else None
            conveyed = convey(fmap, source, target, value, lookups)
            mirrored[fmap.columns[target]] = conveyed
            if conveyed is not None or fmap.columns[target] not in values:  # NULL does not undo a default
                values[fmap.columns[target]] = conveyed
    result.create_in = target
    result.create_values = values
    result.mirrored = mirrored
    result.changes = tuple(Change(target, c, None, v) for c, v in values.items() if v is not None)
