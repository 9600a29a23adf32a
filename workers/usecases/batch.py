"""One sync batch: lock the keys, read both sides in bulk, plan every record, write in bulk, commit once."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from adapters.connectors.base import RecordRejected
from adapters.runtime import Runtime
from adapters.store.store import BatchWrite, ErrorReport, ErrorRow, subject_of, versions_of
from domain.coupling import Coupling, CouplingStatus
from domain.jobs import Counts
from domain.mapping import TableMapping
from domain.plan import ErrorKind, Outcome, RecordPlan
from domain.planner import MERGE, Pair, Request, plan
from domain.values import Record, Value, as_key, same
from workers.usecases.candidates import CandidatePool, find_matches
from workers.usecases.references import fetch_lookups

MAX_ROUNDS = 5
Events = Mapping[str, Sequence[int]]  # inbox row ids by record key: marked applied with the batch


@dataclass
class BatchResult:
    counts: Counts = field(default_factory=Counts)
    plans: list[RecordPlan] = field(default_factory=list)
    send_back: list[tuple[str, str]] = field(default_factory=list)  # (system, key) of sources to update

    def merge(self, other: BatchResult) -> None:
        self.counts.merge(other.counts)
        self.plans.extend(other.plans)


def pair_lock(mapping: TableMapping, coupling_id: int | None) -> str:
    return f"{mapping.name}:pair:{coupling_id}"


def mapping_lock(mapping: TableMapping) -> str:
    """Held by whoever may couple or create in a mapping, so that no record gets two counterparts."""
    return f"{mapping.name}:couple"


def is_coupled(coupling: Coupling | None) -> bool:
    return coupling is not None and all(coupling.keys.values())


def run_batch(
    rt: Runtime,
    mapping: TableMapping,
    system: str,
    keys: Sequence[str],
    request: Request,
    job_id: int | None,
    *,
    dry_run: bool = False,
    events: Events | None = None,
    pool: CandidatePool | None = None,
) -> BatchResult:
    """Syncs records of `system` by key (a `pool` answers the match check before a create).

    Each round takes every lock it needs in one sorted acquisition (so two batches never deadlock):
    the pair lock of each coupled record, and the mapping's couple lock when any record is uncoupled.
    A key whose coupling changed between the look and the lock waits for the next round.
    """
    result = BatchResult()
    todo = list(dict.fromkeys(keys))
    for _ in range(MAX_ROUNDS):
        if not todo:
            break
        peek = rt.store.couplings(mapping, system, todo)
        names = {pair_lock(mapping, c.id) for c in peek.values() if is_coupled(c)}
        may_couple = any(not is_coupled(peek.get(k)) for k in todo)
        if may_couple:
            names.add(mapping_lock(mapping))
        with rt.store.locks.hold(names):
            couplings = rt.store.couplings(mapping, system, todo)
            ready: list[str] = []
            later: list[str] = []
            for key in todo:
                now, then = couplings.get(key), peek.get(key)
                if is_coupled(now):
                    held = now is not None and then is not None and now.id == then.id
                else:
                    held = may_couple
                (ready if held else later).append(key)
            if ready:
                found = {k: couplings[k] for k in ready if k in couplings}
                done = _locked(rt, mapping, system, ready, found, request, job_id, dry_run, events, pool=pool)
                result.merge(done)
                for source in mapping.systems:
                    # what a new record got in its own system (its key, defaults) flows back now, to the
                    # record it was made from (the survivor's key names the pair when the origin was restored)
                    back = [k for s, k in done.send_back if s == source and k]
                    if back and not dry_run:
                        again = rt.store.couplings(mapping, source, back)
                        _locked(rt, mapping, source, back, again, MERGE, job_id, False, None, count=False)
        todo = later
    for key in todo:
        result.counts.add(Outcome.SKIPPED)
        result.plans.append(
            RecordPlan(system, key, Outcome.SKIPPED, "its coupling kept changing; sync it again")
        )
    return result


def _locked(
    rt: Runtime,
    mapping: TableMapping,
    system: str,
    keys: list[str],
    couplings: dict[str, Coupling],
    request: Request,
    job_id: int | None,
    dry_run: bool,
    events: Events | None,
    *,
    count: bool = True,
    pool: CandidatePool | None = None,
) -> BatchResult:
    other = mapping.other(system)
    columns = {s: mapping.columns(s) for s in mapping.systems}
    origin_records = rt.connector(system).read(mapping.side(system), keys, columns[system])
    counterpart_keys = [c.keys[other] or "" for c in couplings.values() if is_coupled(c)]
    counterparts = rt.connector(other).read(mapping.side(other), counterpart_keys, columns[other])
    parked = _parked(rt, mapping, system, keys, couplings) if not request.force else set()

    pairs: dict[str, Pair] = {}
    for key in keys:
        coupling = couplings.get(key) if is_coupled(couplings.get(key)) else None
        records: dict[str, Record | None] = {system: origin_records.get(key)}
        if coupling is not None:
            records[other] = counterparts.get(coupling.keys[other] or "")
        pairs[key] = Pair(system, key, coupling, records)

    read = {s: [p.records.get(s) for p in pairs.values()] for s in mapping.systems}
    lookups = fetch_lookups(rt, mapping, read, None if request.source is None else {request.source})
    creating = [k for k, p in pairs.items() if _may_create(mapping, p, request, parked)]
    if creating and mapping.match_fields:
        sources: dict[str, Record] = {}
        for key in creating:
            source = pairs[key].records.get(system)
            if source is not None:
                sources[key] = source
        matches = find_matches(rt, mapping, system, sources, lookups, pool)
        for key, match in matches.items():
            pairs[key] = Pair(system, key, None, pairs[key].records, match)

    result = BatchResult()
    plans: list[RecordPlan] = []
    for key in keys:
        if key in parked:
            plans.append(RecordPlan(system, key, Outcome.SKIPPED, "parked after repeated failures; retry it"))
        else:
            plans.append(plan(mapping, pairs[key], request, lookups))
    if dry_run:
        for p in plans:
            result.counts.add(p.outcome)
        result.plans = plans
        return result

    pending = {k: c for k, c in couplings.items() if not is_coupled(c)}
    after = _execute(rt, mapping, plans, pending, job_id)
    batch = _record(rt, mapping, plans, pairs, pending, after, job_id, request)
    if not count:
        batch.counts = Counts()
    if events:
        batch.events_done = [i for key in keys for i in events.get(key, ())]
    rt.store.commit(mapping, batch)
    result.counts = batch.counts
    result.plans = plans
    result.send_back = [
        _made_from(mapping, p)
        for p in plans
        if p.create_in and p.outcome is Outcome.INSERTED and _sends_back(mapping, p, after)
    ]
    return result


def _made_from(mapping: TableMapping, p: RecordPlan) -> tuple[str, str]:
    """The system and key of the record that a created record was made from."""
    source = mapping.other(p.create_in or p.origin)
    if source == p.origin:
        return source, p.origin_key
    return source, (p.coupling.keys.get(source) if p.coupling is not None else None) or ""


def _sends_back(mapping: TableMapping, p: RecordPlan, after: _After) -> bool:
    """Whether a created record holds a value, in a field flowing back, that its source does not have yet."""
    target = p.create_in
    assert target is not None
    record = after.reread.get(target, {}).get(after.created.get(p.origin_key, ""))
    if record is None:
        return False
    source = mapping.other(target)
    back = [
        f.columns[target] for f in mapping.active_fields() if f.flows(target, source) and target in f.columns
    ]
    return any(c not in p.mirrored or not same(record.get(c), p.mirrored[c]) for c in back)


def _may_create(mapping: TableMapping, pair: Pair, request: Request, parked: set[str]) -> bool:
    if pair.coupling is not None or pair.origin_key in parked or pair.records.get(pair.origin) is None:
        return False
    return mapping.may_flow(pair.origin, mapping.other(pair.origin)) and (
        request.create or not mapping.sync_only_coupled
    )


def _parked(
    rt: Runtime, mapping: TableMapping, system: str, keys: list[str], couplings: dict[str, Coupling]
) -> set[str]:
    """Uncoupled records parked as skipped (coupled ones carry the mark on their coupling)."""
    subjects = {subject_of(None, system, k): k for k in keys if not is_coupled(couplings.get(k))}
    if not subjects:
        return set()
    return {subjects[e.subject] for e in rt.store.errors(mapping.name, subjects=list(subjects)) if e.skipped}


@dataclass
class _After:
    """What the writes produced: created keys, records as re-read, and records whose write failed."""

    created: dict[str, str] = field(default_factory=dict)  # origin key -> new counterpart key
    reread: dict[str, dict[str, Record]] = field(default_factory=dict)  # system -> key -> record
    rejected: dict[str, str] = field(default_factory=dict)  # origin key -> message


def _execute(
    rt: Runtime,
    mapping: TableMapping,
    plans: list[RecordPlan],
    pending: dict[str, Coupling],
    job_id: int | None,
) -> _After:
    """Carries out the plans: creates, updates and deletes grouped per system, then re-reads what changed."""
    after = _After()
    for target in mapping.systems:
        _write_side(rt, mapping, target, plans, pending, job_id, after)
    for target in mapping.systems:
        written = {
            key
            for p in plans
            if p.origin_key not in after.rejected
            for key in (
                _target_key(mapping, p, target) if target in p.updates else None,
                after.created.get(p.origin_key) if p.create_in == target else None,
            )
            if key
        }
        if written:
            side = mapping.side(target)
            after.reread[target] = rt.connector(target).read(side, sorted(written), mapping.columns(target))
    return after


def _write_side(
    rt: Runtime,
    mapping: TableMapping,
    target: str,
    plans: list[RecordPlan],
    pending: dict[str, Coupling],
    job_id: int | None,
    after: _After,
) -> None:
    side = mapping.side(target)
    connector = rt.connector(target)
    creating = [p for p in plans if p.create_in == target]
    fresh = [p for p in creating if p.coupling is None and p.origin_key not in pending]
    stale = [p for p in creating if p.coupling is None and p.origin_key in pending]
    # A create that crashed before its coupling was stored may have left its record behind: adopt it.
    after.created.update(_recover(rt, mapping, target, stale))
    # Pending couplings are committed before the create, so a crash in between is visible and recoverable.
    ids = rt.store.insert_pending(mapping, mapping.other(target), [p.origin_key for p in fresh], job_id)
    for p, pending_id in zip(fresh, ids, strict=True):
        keys: dict[str, str | None] = {p.origin: p.origin_key, target: None}
        pending[p.origin_key] = Coupling(mapping.name, keys, status=CouplingStatus.PENDING, id=pending_id)

    def create(chunk: list[RecordPlan]) -> None:
        created = connector.create(side, [p.create_values for p in chunk])
        after.created.update({p.origin_key: k for p, k in zip(chunk, created, strict=True)})

    def update(chunk: list[RecordPlan]) -> None:
        connector.update(side, {_target_key(mapping, p, target) or "": p.updates[target] for p in chunk})

    def delete(chunk: list[RecordPlan]) -> None:
        connector.delete(side, [_target_key(mapping, p, target) or "" for p in chunk])

    _write_each([p for p in creating if p.origin_key not in after.created], create, after)
    _write_each([p for p in plans if target in p.updates and _target_key(mapping, p, target)], update, after)
    _write_each([p for p in plans if p.delete_in == target], delete, after)


def _recover(rt: Runtime, mapping: TableMapping, target: str, plans: list[RecordPlan]) -> dict[str, str]:
    """Counterparts that an interrupted create made: exactly one uncoupled record holding every value."""
    if not plans:
        return {}
    side = mapping.side(target)
    probes = {
        p.origin_key: {c: v for c, v in p.create_values.items() if isinstance(v, str | int) and c != side.key}
        for p in plans
    }
    groups = [{c: [v] for c, v in probe.items()} for probe in probes.values() if probe]
    if not groups:
        return {}
    candidates = rt.connector(target).find(side, mapping.columns(target), groups, set())
    coupled = set(rt.store.couplings(mapping, target, [str(c[side.key]) for c in candidates]))
    adopted: dict[str, str] = {}
    for origin_key, probe in probes.items():
        hits = [
            str(c[side.key])
            for c in candidates
            if probe and str(c[side.key]) not in coupled and all(same(c.get(k), v) for k, v in probe.items())
        ]
        if len(hits) == 1 and hits[0] not in adopted.values():
            adopted[origin_key] = hits[0]
    return adopted


def _target_key(mapping: TableMapping, p: RecordPlan, target: str) -> str | None:
    if target == p.origin:
        return p.origin_key
    if p.couple_to is not None:
        return p.couple_to
    if p.coupling is not None:
        return p.coupling.keys.get(target)
    return None


def _write_each(group: list[RecordPlan], write: Callable[[list[RecordPlan]], None], after: _After) -> None:
    """Writes a group in bulk; if the system refuses it, writes one by one to find the records to blame."""
    group = [p for p in group if p.origin_key not in after.rejected]
    if not group:
        return
    try:
        write(group)
        return
    except RecordRejected as exc:
        if len(group) == 1:
            after.rejected[group[0].origin_key] = str(exc)
            return
    for p in group:
        try:
            write([p])
        except RecordRejected as exc:
            after.rejected[p.origin_key] = str(exc)


def _record(
    rt: Runtime,
    mapping: TableMapping,
    plans: list[RecordPlan],
    pairs: dict[str, Pair],
    pending: dict[str, Coupling],
    after: _After,
    job_id: int | None,
    request: Request,
) -> BatchWrite:
    """Turns the executed plans into the store's changes: couplings, bases, errors and counts."""
    batch = BatchWrite(job_id)
    failing = [p for p in plans if p.failed or p.origin_key in after.rejected]
    previous = (
        {
            e.subject: e
            for e in rt.store.errors(
                mapping.name, subjects=[subject_of(p.coupling, p.origin, p.origin_key) for p in failing]
            )
        }
        if failing
        else {}
    )
    for p in plans:
        if p.origin_key in after.rejected:
            p.outcome, p.reason, p.error_kind = (
                Outcome.FAILED,
                after.rejected[p.origin_key],
                ErrorKind.REJECTED,
            )
        if p.create_in and p.outcome is not Outcome.FAILED and p.origin_key not in after.created:
            p.outcome, p.reason, p.error_kind = (
                Outcome.FAILED,
                "the create returned no key",
                ErrorKind.REJECTED,
            )
        batch.counts.add(p.outcome)
        stale = pending.get(p.origin_key)
        record_subject = subject_of(None, p.origin, p.origin_key)
        if p.outcome is Outcome.SKIPPED:
            continue
        if p.outcome in (Outcome.UNCOUPLED, Outcome.DELETED):
            if p.coupling is not None and p.coupling.id is not None:
                batch.removed.append(p.coupling.id)
                batch.resolved.append(subject_of(p.coupling, p.origin, p.origin_key))
            continue
        if p.outcome is Outcome.FAILED:
            if (
                stale is not None
                and p.coupling is None
                and stale.id is not None
                and p.error_kind is not ErrorKind.REJECTED
            ) or (stale is not None and p.coupling is None and stale.id is not None and p.create_in):
                batch.removed.append(stale.id)
            _failure(mapping, p, pairs[p.origin_key], after, batch, previous, request)
            continue
        coupling = _coupling_after(mapping, p, pending, after)
        base, versions = _base(mapping, p, pairs[p.origin_key], coupling, after)
        batch.resolved.append(record_subject)  # an error of the record before it was coupled is settled too
        if (
            p.coupling is not None
            and coupling.id == p.coupling.id
            and not p.writes
            and _unchanged(p.coupling, base)
        ):
            continue
        coupling.base, coupling.versions = base, versions
        coupling.status, coupling.failures, coupling.skipped, coupling.last_error = (
            CouplingStatus.SYNCED,
            0,
            False,
            None,
        )
        if coupling.id is None:
            batch.inserted.append(coupling)
        else:
            batch.changed.append(coupling)
            batch.resolved.append(subject_of(coupling, p.origin, p.origin_key))
    return batch


def _unchanged(coupling: Coupling, base: dict[str, Record]) -> bool:
    return coupling.status is CouplingStatus.SYNCED and coupling.base == base and not coupling.failures


def _coupling_after(
    mapping: TableMapping, p: RecordPlan, pending: dict[str, Coupling], after: _After
) -> Coupling:
    """The coupling as it stands after a successful plan: existing, pending-now-complete, or new."""
    target = mapping.other(p.origin)
    if p.coupling is not None:
        coupling = Coupling(
            p.coupling.mapping,
            dict(p.coupling.keys),
            p.coupling.base,
            dict(p.coupling.versions),
            id=p.coupling.id,
        )
        if p.create_in is not None:
            coupling.keys[p.create_in] = after.created[p.origin_key]
        return coupling
    counterpart = after.created.get(p.origin_key) if p.create_in else p.couple_to
    stale = pending.get(p.origin_key)
    return Coupling(
        mapping.name, {p.origin: p.origin_key, target: counterpart}, id=stale.id if stale else None
    )


def _base(
    mapping: TableMapping, p: RecordPlan, pair: Pair, coupling: Coupling, after: _After
) -> tuple[dict[str, Record], dict[str, Value]]:
    """The new base: what we wrote (as re-read when it reads back the same), else what we read before.

    Values not written keep the pre-write reading, so an edit that lands during the batch still shows
    up as a change next time instead of being silently absorbed into the base.
    """
    lookup_columns = {
        (s, c) for f in mapping.active_fields() if f.lookup is not None for s, c in f.columns.items()
    }
    old = coupling.base or {}
    unsettled = {(s, c) for f in mapping.fields if f.name in p.unsettled for s, c in f.columns.items()}
    base: dict[str, Record] = {}
    records: dict[str, Record | None] = {}
    for system in mapping.systems:
        key = coupling.keys.get(system) or ""
        if system == p.create_in:
            before = None
        elif system != p.origin and p.couple_to is not None and pair.match is not None:
            before = pair.match.record
        else:
            before = pair.records.get(system)
        reread = after.reread.get(system, {}).get(key)
        written = p.mirrored if p.create_in == system else p.updates.get(system, {})
        values: Record = {}
        for column in mapping.mapped_columns(system):
            if (system, column) in unsettled:
                if column in old.get(system, {}):
                    values[column] = old[system][column]
                continue
            if column in written:
                wrote = written[column]
                seen = reread.get(column) if reread is not None else wrote
                agrees = (
                    as_key(seen) == as_key(wrote) if (system, column) in lookup_columns else same(seen, wrote)
                )
                values[column] = seen if agrees else wrote
            elif before is not None:
                values[column] = before.get(column)
            elif reread is not None:
                values[column] = reread.get(column)
        base[system] = values
        records[system] = reread if reread is not None else before
    return base, versions_of(mapping, records)


def _failure(
    mapping: TableMapping,
    p: RecordPlan,
    pair: Pair,
    after: _After,
    batch: BatchWrite,
    previous: Mapping[str, ErrorRow],
    request: Request,
) -> None:
    subject = subject_of(p.coupling, p.origin, p.origin_key)
    message = p.reason or "failed"
    earlier = previous.get(subject)
    occurrences = earlier.occurrences + 1 if earlier is not None and earlier.message == message else 1
    if p.coupling is not None:
        same_as_last = p.coupling.last_error == message
        occurrences = max(occurrences, p.coupling.failures + 1 if same_as_last else 1)
    skipped = occurrences >= mapping.skip_after
    keys: dict[str, str | None] = (
        dict(p.coupling.keys) if p.coupling is not None else {p.origin: p.origin_key}
    )
    detail = {
        "conflicts": [{"field": c.field, "current": c.current, "base": c.base} for c in p.conflicts],
        "changes": [
            {"system": c.system, "column": c.column, "before": c.before, "after": c.after} for c in p.changes
        ],
        "request": {"source": request.source, "create": request.create},  # what a retry repeats
    }
    batch.errors.append(
        ErrorReport(
            subject=subject,
            coupling_id=p.coupling.id if p.coupling is not None else None,
            system=p.origin,
            record_key=p.origin_key,
            keys=keys,
            kind=(p.error_kind or ErrorKind.REJECTED).value,
            message=message,
            detail=detail,
            occurrences=occurrences,
            skipped=skipped,
        )
    )
    if p.coupling is None:
        return
    coupling = Coupling(
        p.coupling.mapping,
        dict(p.coupling.keys),
        p.coupling.base,
        dict(p.coupling.versions),
        id=p.coupling.id,
    )
    if p.error_kind is ErrorKind.CONFLICT and p.writes and p.origin_key not in after.rejected:
        coupling.base, coupling.versions = _base(mapping, p, pair, coupling, after)
    coupling.failures = occurrences
    coupling.skipped = skipped
    coupling.status = CouplingStatus.SKIPPED if skipped else CouplingStatus.FAILED
    coupling.last_error = message
    batch.changed.append(coupling)
