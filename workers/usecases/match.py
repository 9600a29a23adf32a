"""Match-based coupling: couple uncoupled records whose match fields agree; optionally create the rest."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from adapters.runtime import Runtime
from adapters.store.store import BatchWrite
from domain.coupling import Coupling, CouplingStatus
from domain.jobs import Counts
from domain.mapping import TableMapping
from domain.plan import RecordPlan
from domain.planner import Pair, Request, plan
from domain.values import Record
from workers.usecases.batch import is_coupled, mapping_lock
from workers.usecases.candidates import CandidatePool, find_matches
from workers.usecases.couple import create_and_couple
from workers.usecases.references import fetch_lookups
from workers.usecases.sync import Progress, sync

PAGE = 1000


@dataclass
class MatchReport:
    mapping: str
    source: str
    job_id: int | None
    counts: Counts = field(default_factory=Counts)
    matched: list[tuple[str, str]] = field(default_factory=list)  # (source key, target key)
    unmatched: list[str] = field(default_factory=list)
    ambiguous: list[tuple[str, str]] = field(default_factory=list)  # (source key, why: the candidates)
    created: list[str] = field(default_factory=list)
    plans: list[RecordPlan] = field(default_factory=list)  # the creates and syncs (planned, on a dry run)


def _pages(
    rt: Runtime, mapping: TableMapping, source: str, keys: Sequence[str] | None
) -> Iterator[dict[str, Record]]:
    side = mapping.side(source)
    connector = rt.connector(source)
    columns = mapping.columns(source)
    if keys is None:
        for page in connector.query(side, columns, side.filter, page=PAGE):
            yield {str(r[side.key]): r for r in page}
        return
    unique = list(dict.fromkeys(keys))
    for start in range(0, len(unique), PAGE):
        found = connector.read(side, unique[start : start + PAGE], columns)
        yield {k: r for k, r in found.items() if side.filter.matches(r)}


def match(
    rt: Runtime,
    mapping_name: str,
    source: str,
    keys: Sequence[str] | None = None,
    *,
    create_new: bool = False,
    then: str | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
    trigger: str = "cli",
) -> MatchReport:
    """Couples each uncoupled record of `source` (all in its filter, or `keys`) to its one match.

    Exactly one uncoupled candidate couples; none or several are reported (with the candidates).
    With `create_new` the unmatched are created and coupled; with `then` ("merge" or a system)
    each new coupling is synchronized. A job of kind coupling records the counts. A dry run writes
    nothing; its plans say what the creates and the syncs would write.
    """
    mapping = rt.mappings[mapping_name]
    target = mapping.other(source)
    job_id = (
        None if dry_run else rt.store.start_job(mapping.name, "coupling", f"match from {source}", trigger)
    )
    report = MatchReport(mapping.name, source, job_id)
    done = 0
    try:
        # more than a page of records: one scan of the target beats one lookup query per page
        pool = CandidatePool(rt, mapping, target) if keys is None or len(keys) > PAGE else None
        for records in _pages(rt, mapping, source, keys):
            _page(rt, mapping, source, target, records, report, pool, create_new=create_new, dry_run=dry_run)
            done += len(records)
            if progress is not None:
                progress(done, len(keys) if keys is not None else 0)
        if keys is not None:
            report.counts.skipped += len(set(keys)) - done  # ids that do not exist or are out of the filter
        if then is not None and report.matched:
            request = Request() if then == "merge" else Request(source=then, force=True)
            if dry_run:
                planned = _planned(rt, mapping, source, report.matched, request)
                for p in planned:
                    report.counts.add(p.outcome)
                report.plans.extend(planned)
            else:
                keys = [k for k, _ in report.matched]
                synced = sync(rt, mapping.name, source, keys, request, job_id=job_id)
                report.counts.merge(synced.counts)
                report.plans.extend(synced.plans)
    except BaseException as exc:
        if job_id is not None:
            rt.store.finish_job(job_id, "failed", f"{type(exc).__name__}: {exc}")
        raise
    if job_id is not None:
        found = len(report.matched), len(report.unmatched), len(report.ambiguous)
        rt.store.finish_job(job_id, "finished", "{} matched, {} unmatched, {} ambiguous".format(*found))
    return report


def _page(
    rt: Runtime,
    mapping: TableMapping,
    source: str,
    target: str,
    records: dict[str, Record],
    report: MatchReport,
    pool: CandidatePool | None,
    *,
    create_new: bool,
    dry_run: bool,
) -> None:
    coupled = {k for k, c in rt.store.couplings(mapping, source, records).items() if is_coupled(c)}
    free = {k: r for k, r in records.items() if k not in coupled}
    counts = Counts(skipped=len(coupled))
    lookups = fetch_lookups(rt, mapping, {source: list(free.values())}, {source})
    unmatched: list[str] = []
    with rt.store.locks.hold([mapping_lock(mapping)]):
        matches = find_matches(rt, mapping, source, free, lookups, pool)
        couplings = []
        for key in free:
            found = matches.get(key)
            if found is not None and found.key is not None:
                report.matched.append((key, found.key))
                couplings.append(
                    Coupling(mapping.name, {source: key, target: found.key}, status=CouplingStatus.COUPLED)
                )
            elif found is not None and (found.ambiguous or found.coupled):
                report.ambiguous.append((key, found.describe(target)))
                counts.skipped += 1
            else:
                unmatched.append(key)
        counts.coupled = len(couplings)
        if not dry_run:
            rt.store.commit(mapping, BatchWrite(report.job_id, counts, inserted=couplings))
    report.counts.merge(counts)
    if create_new and unmatched:
        created = create_and_couple(
            rt,
            mapping.name,
            source,
            unmatched,
            trigger="match",
            dry_run=dry_run,
            job_id=report.job_id,
            pool=pool,
        )
        report.counts.merge(created.counts)
        report.created.extend(p.origin_key for p in created.plans if p.outcome.value == "inserted")
        report.plans.extend(created.plans)
    else:
        report.unmatched.extend(unmatched)
        report.counts.skipped += len(unmatched)
        if report.job_id is not None and unmatched and not dry_run:
            rt.store.commit(mapping, BatchWrite(report.job_id, Counts(skipped=len(unmatched))))


def _planned(
    rt: Runtime, mapping: TableMapping, source: str, matched: list[tuple[str, str]], request: Request
) -> list[RecordPlan]:
    """What syncing the matched pairs would write (a dry run: they are not coupled, so plan them as if)."""
    target = mapping.other(source)
    plans = []
    for start in range(0, len(matched), PAGE):
        chunk = matched[start : start + PAGE]
        read = {
            s: rt.connector(s).read(mapping.side(s), [pair[i] for pair in chunk], mapping.columns(s))
            for i, s in enumerate((source, target))
        }
        sources = None if request.source is None else {request.source}
        lookups = fetch_lookups(rt, mapping, {s: list(r.values()) for s, r in read.items()}, sources)
        for key, other in chunk:
            coupling = Coupling(mapping.name, {source: key, target: other}, status=CouplingStatus.COUPLED)
            records = {source: read[source].get(key), target: read[target].get(other)}
            plans.append(plan(mapping, Pair(source, key, coupling, records), request, lookups))
    return plans
