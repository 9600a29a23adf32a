"""Finding coupled records deleted on one side (no event needed), and applying the deletion policy."""

from __future__ import annotations

from collections.abc import Sequence

from adapters.runtime import Runtime
from adapters.store.store import CHUNK
from domain.planner import MERGE
from workers.usecases.sync import Progress, SyncReport, sync


def find_deleted(
    rt: Runtime, names: Sequence[str] | None = None, *, progress: Progress | None = None
) -> list[SyncReport]:
    """Checks every coupling of each mapping (one-way ones too) and syncs the pairs with a side gone.

    The sync applies the mapping's deletion policy: listed as an error (restore, delete the survivor or
    uncouple from `tandem errors`), uncoupled, restored or propagated.
    """
    reports = []
    for mapping in rt.mappings.ordered(names):
        first, second = mapping.systems
        job_id = rt.store.start_job(mapping.name, "sync", "find deleted", "find-deleted")
        report = SyncReport(mapping.name, job_id)
        try:
            last: int | None = None
            checked, total = 0, rt.store.count_couplings(mapping.name)  # before the policy removes any
            while chunk := rt.store.list_couplings(mapping, limit=CHUNK, after_id=last):
                last = chunk[-1].id
                present = {
                    s: rt.connector(s).read(
                        mapping.side(s), [k for c in chunk if (k := c.keys[s])], [mapping.side(s).key]
                    )
                    for s in mapping.systems
                }
                gone = [
                    c.keys[first] or ""
                    for c in chunk
                    if c.keys[first]
                    and c.keys[second]
                    and any((c.keys[s] or "") not in present[s] for s in mapping.systems)
                ]
                if gone:
                    done = sync(rt, mapping.name, first, gone, MERGE, trigger="find-deleted", job_id=job_id)
                    report.counts.merge(done.counts)
                    report.plans.extend(done.plans)
                checked += len(chunk)
                if progress is not None:
                    progress(checked, total)
        except BaseException as exc:
            rt.store.finish_job(job_id, "failed", f"{type(exc).__name__}: {exc}")
            raise
        rt.store.finish_job(job_id)
        reports.append(report)
    return reports
