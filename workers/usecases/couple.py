"""Set Up Coupling (link two existing records) and create-and-couple (create the counterparts)."""

from __future__ import annotations

from collections.abc import Sequence

from adapters.runtime import Runtime
from adapters.store.store import BatchWrite
from domain.coupling import Coupling, CouplingStatus
from domain.jobs import Counts
from domain.plan import Outcome, RecordPlan
from domain.planner import Request
from workers.usecases.batch import is_coupled, mapping_lock, pair_lock
from workers.usecases.candidates import CandidatePool
from workers.usecases.sync import Progress, SyncReport, sync


class CouplingRefused(Exception):
    """The coupling cannot be made as asked (a record is missing or coupled to a live counterpart)."""


def couple(rt: Runtime, mapping_name: str, keys: dict[str, str], then: str | None = None) -> SyncReport:
    """Couples two existing records; `then` syncs them afterwards: a system to push from, or "merge"."""
    mapping = rt.mappings[mapping_name]
    if set(keys) != set(mapping.systems):
        raise CouplingRefused(
            f"name one record of each system of {mapping.name}: --{' ID --'.join(mapping.systems)} ID"
        )
    for system, key in keys.items():
        found = rt.connector(system).read(mapping.side(system), [key], [mapping.side(system).key])
        if key not in found:
            raise CouplingRefused(f"there is no {system} record {key!r} in {mapping.side(system).table}")
    job_id = rt.store.start_job(mapping.name, "coupling", "couple", "cli")
    with rt.store.locks.hold([mapping_lock(mapping)]):
        replaced: list[int] = []
        for system, key in keys.items():
            existing = rt.store.couplings(mapping, system, [key]).get(key)
            if existing is None:
                continue
            other = mapping.other(system)
            if existing.keys.get(other) == keys[other]:
                rt.store.finish_job(job_id, "finished", "already coupled to each other")
                return SyncReport(mapping.name, job_id, Counts(skipped=1))
            old = existing.keys.get(other)
            alive = old is not None and old in rt.connector(other).read(
                mapping.side(other), [old], [mapping.side(other).key]
            )
            if alive and is_coupled(existing):
                rt.store.finish_job(job_id, "failed", "already coupled")
                raise CouplingRefused(
                    f"the {system} record {key!r} is coupled to the {other} record {old!r} already; "
                    "uncouple it first"
                )
            if existing.id is not None:
                replaced.append(existing.id)
        with rt.store.locks.hold([pair_lock(mapping, i) for i in replaced]):
            batch = BatchWrite(job_id, Counts(coupled=1), removed=replaced)
            batch.inserted.append(Coupling(mapping.name, dict(keys), status=CouplingStatus.COUPLED))
            rt.store.commit(mapping, batch)
    rt.store.finish_job(job_id)
    report = SyncReport(mapping.name, job_id, Counts(coupled=1))
    report.plans.append(RecordPlan(mapping.systems[0], keys[mapping.systems[0]], Outcome.COUPLED, "coupled"))
    if then is not None:
        request = Request() if then == "merge" else Request(source=then, force=True)
        synced = sync(rt, mapping.name, mapping.systems[0], [keys[mapping.systems[0]]], request)
        report.counts.merge(synced.counts)
        report.plans.extend(synced.plans)
    return report


def create_and_couple(
    rt: Runtime,
    mapping_name: str,
    system: str,
    keys: Sequence[str],
    *,
    trigger: str = "cli",
    dry_run: bool = False,
    progress: Progress | None = None,
    job_id: int | None = None,
    pool: CandidatePool | None = None,
) -> SyncReport:
    """Creates the counterparts of these records in the other system and couples them.

    Records coupled already count as skipped; the rest go through the same batch as any sync, so the
    per-record lock and the pending coupling guard against creating a counterpart twice. A record
    that has a match is coupled to it instead; with more than a batch to create, the other side is
    read once (or `pool` is) rather than once per batch, which would grow with every record created.
    """
    mapping = rt.mappings[mapping_name]
    coupled = {k for k, c in rt.store.couplings(mapping, system, keys).items() if is_coupled(c)}
    fresh = [k for k in dict.fromkeys(keys) if k not in coupled]
    if pool is None and mapping.match_fields and len(fresh) > rt.batch_size:
        pool = CandidatePool(rt, mapping, mapping.other(system))
    report = sync(
        rt,
        mapping.name,
        system,
        fresh,
        Request(source=system, create=True),
        trigger=trigger,
        kind="coupling",
        dry_run=dry_run,
        progress=progress,
        job_id=job_id,
        pool=pool,
    )
    if coupled:
        report.counts.skipped += len(coupled)
        report.plans.extend(
            RecordPlan(system, k, Outcome.SKIPPED, "coupled already") for k in sorted(coupled)
        )
        if report.job_id is not None:
            rt.store.commit(mapping, BatchWrite(report.job_id, Counts(skipped=len(coupled))))
    return report
