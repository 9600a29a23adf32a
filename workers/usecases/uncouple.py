"""Delete Coupling: remove the links of some records, or of a whole mapping; the records stay."""

from __future__ import annotations

from collections.abc import Sequence

from adapters.runtime import Runtime
from adapters.store.store import CHUNK, BatchWrite
from domain.jobs import Counts
from workers.usecases.batch import pair_lock
from workers.usecases.sync import Progress


def uncouple(
    rt: Runtime,
    mapping_name: str,
    system: str | None = None,
    keys: Sequence[str] = (),
    *,
    everything: bool = False,
    progress: Progress | None = None,
) -> Counts:
    """Uncouples records of `system` by key, or every coupling of the mapping with `everything`."""
    mapping = rt.mappings[mapping_name]
    job_id = rt.store.start_job(mapping.name, "uncouple", "uncouple", "cli")
    counts = Counts()
    if everything:
        total = rt.store.count_couplings(mapping.name)
        while chunk := rt.store.list_couplings(mapping, limit=CHUNK):
            counts.merge(_remove(rt, mapping_name, [c.id for c in chunk if c.id is not None], job_id))
            if progress is not None:
                progress(counts.uncoupled, total)
    else:
        assert system is not None
        found = rt.store.couplings(mapping, system, keys)
        counts.skipped = len(set(keys) - set(found))
        counts.merge(_remove(rt, mapping_name, [c.id for c in found.values() if c.id is not None], job_id))
        if counts.skipped:
            rt.store.commit(mapping, BatchWrite(job_id, Counts(skipped=counts.skipped)))
    rt.store.finish_job(job_id)
    return counts


def _remove(rt: Runtime, mapping_name: str, ids: list[int], job_id: int) -> Counts:
    mapping = rt.mappings[mapping_name]
    with rt.store.locks.hold([pair_lock(mapping, i) for i in ids]):
        counts = Counts(uncoupled=len(ids))
        rt.store.commit(mapping, BatchWrite(job_id, counts, removed=list(ids)))  # resolves their errors too
    return counts
