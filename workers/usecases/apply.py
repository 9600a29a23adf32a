"""Applying events: sync the keys that events named, and mark their inbox rows applied in the same commit."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Sequence

from adapters.runtime import Runtime
from adapters.store.inbox import Inbox
from domain.planner import MERGE
from workers.usecases.sync import SyncReport, sync

JOB_SPAN_S = 900  # event-driven work adds up in one job per mapping and process for 15 minutes


class EventJobs:
    """The current job of each mapping for event-driven syncs (rotated, so the log stays readable)."""

    def __init__(self, span_s: float = JOB_SPAN_S) -> None:
        self.span_s = span_s
        self._jobs: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def job(self, rt: Runtime, mapping: str, trigger: str = "event") -> int:
        with self._lock:
            current = self._jobs.get(mapping)
            if current is not None and time.monotonic() - current[1] < self.span_s:
                return current[0]
            if current is not None:
                rt.store.finish_job(current[0])
            job_id = rt.store.start_job(mapping, "sync", "merge", trigger)
            self._jobs[mapping] = (job_id, time.monotonic())
            return job_id

    def close(self, rt: Runtime) -> None:
        with self._lock:
            for job_id, _ in self._jobs.values():
                rt.store.finish_job(job_id)
            self._jobs.clear()


def apply_changes(
    rt: Runtime, jobs: EventJobs, mapping: str, system: str, items: Sequence[tuple[str, Sequence[int]]]
) -> SyncReport:
    """Syncs the records that events named (merging both ways: the present decides, not the event)."""
    events: dict[str, list[int]] = {}
    for key, ids in items:
        events.setdefault(key, []).extend(ids)
    job_id = jobs.job(rt, rt.mappings[mapping].name)
    return sync(rt, mapping, system, list(events), MERGE, trigger="event", job_id=job_id, events=events)


def rescan(
    rt: Runtime, inbox: Inbox, jobs: EventJobs, mapping: str, system: str, since: dt.datetime, inbox_id: int
) -> SyncReport:
    """Syncs every record of one side changed since a moment (a 'many changed' notification)."""
    table = rt.mappings[mapping]
    side = table.side(system)
    job_id = jobs.job(rt, table.name, "rescan")
    report = SyncReport(table.name, job_id)
    for page in rt.connector(system).query(side, [side.key], side.filter, modified_since=since.isoformat()):
        keys = [str(r[side.key]) for r in page]
        done = sync(rt, table.name, system, keys, MERGE, trigger="rescan", job_id=job_id)
        report.counts.merge(done.counts)
    inbox.set_state([inbox_id], "done")
    return report
