"""Synchronize Now: sync records of one mapping by key, in batches, as one sync job."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from adapters.runtime import Runtime
from domain.jobs import Counts
from domain.mapping import TableMapping
from domain.plan import RecordPlan
from domain.planner import MERGE, Request
from domain.recommend import Recommendation, recommend
from workers.usecases.batch import Events, is_coupled, run_batch
from workers.usecases.candidates import CandidatePool

Progress = Callable[[int, int], None]


@dataclass
class SyncReport:
    mapping: str
    job_id: int | None
    counts: Counts = field(default_factory=Counts)
    plans: list[RecordPlan] = field(default_factory=list)
    recommendation: Recommendation | None = None


def label(mapping: TableMapping, request: Request) -> str:
    if request.source is None:
        return "merge" if mapping.both_ways else mapping.direction
    return f"{request.source}->{mapping.other(request.source)}"


def sync(
    rt: Runtime,
    mapping_name: str,
    system: str,
    keys: Sequence[str],
    request: Request = MERGE,
    *,
    trigger: str = "cli",
    kind: str = "sync",
    dry_run: bool = False,
    progress: Progress | None = None,
    job_id: int | None = None,
    events: Events | None = None,
    pool: CandidatePool | None = None,
) -> SyncReport:
    """Syncs the records of `system` with these keys; one job records the counts (none on a dry run)."""
    mapping = rt.mappings[mapping_name]
    mapping.side(system)  # unknown system: KeyError naming the mapping's sides
    own_job = job_id is None and not dry_run
    if own_job:
        job_id = rt.store.start_job(mapping.name, kind, label(mapping, request), trigger)
    report = SyncReport(mapping.name, job_id)
    unique = list(dict.fromkeys(keys))
    try:
        for start in range(0, len(unique), rt.batch_size):
            chunk = unique[start : start + rt.batch_size]
            done = run_batch(
                rt, mapping, system, chunk, request, job_id, dry_run=dry_run, events=events, pool=pool
            )
            report.counts.merge(done.counts)
            report.plans.extend(done.plans)
            if progress is not None:
                progress(min(start + len(chunk), len(unique)), len(unique))
    except BaseException as exc:
        if own_job and job_id is not None:
            rt.store.finish_job(job_id, "failed", f"{type(exc).__name__}: {exc}")
        raise
    if own_job and job_id is not None:
        rt.store.finish_job(job_id)
    return report


def recommend_for(rt: Runtime, mapping_name: str, system: str, key: str) -> Recommendation | None:
    """The recommended direction for one coupled record (None when it is not coupled or a side is gone)."""
    mapping = rt.mappings[mapping_name]
    coupling = rt.store.couplings(mapping, system, [key]).get(key)
    if not is_coupled(coupling) or coupling is None:
        return None
    records = {}
    for side in mapping.systems:
        side_key = coupling.keys[side] or ""
        found = rt.connector(side).read(mapping.side(side), [side_key], mapping.columns(side)).get(side_key)
        if found is None:
            return None
        records[side] = found
    return recommend(mapping, coupling, records, system)
