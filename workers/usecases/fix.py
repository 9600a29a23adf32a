"""Fixing synchronization errors: retry, sync in a direction, restore, delete the survivor, uncouple."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

from adapters.runtime import Runtime
from adapters.store.store import ErrorRow
from domain.jobs import Counts
from domain.mapping import DeletionPolicy
from domain.planner import Request
from workers.usecases.sync import SyncReport, sync
from workers.usecases.uncouple import uncouple


class NoSuchError(Exception):
    """An error id that is not in the list of open errors."""


def open_errors(rt: Runtime, ids: Sequence[int] | None, mapping: str | None = None) -> list[ErrorRow]:
    """The open errors with these ids (all open ones when ids is None); unknown ids are refused."""
    rows = rt.store.errors(mapping, ids=ids)
    if ids is not None:
        missing = sorted(set(ids) - {r.id for r in rows})
        if missing:
            raise NoSuchError(f"no open error with id {', '.join(map(str, missing))} (see `tandem errors`)")
    return rows


def _by_record(rows: Sequence[ErrorRow]) -> dict[tuple[str, str], list[ErrorRow]]:
    groups: dict[tuple[str, str], list[ErrorRow]] = defaultdict(list)
    for row in rows:
        groups[(row.mapping, row.system)].append(row)
    return groups


def retry(rt: Runtime, rows: Sequence[ErrorRow], request: Request | None = None) -> list[SyncReport]:
    """Syncs the records of these errors again (parked ones included), as the failed sync asked."""
    reports = []
    for (mapping_name, system), group in _by_record(rows).items():
        mapping = rt.mappings[mapping_name]
        rt.store.unpark(mapping, [r.subject for r in group])
        by_request: dict[Request, list[str]] = defaultdict(list)
        for row in group:
            asked = request or _original(row)
            by_request[replace(asked, force=True)].append(row.record_key)
        for asked, keys in by_request.items():
            reports.append(sync(rt, mapping_name, system, keys, asked, trigger="errors"))
    return reports


def _original(row: ErrorRow) -> Request:
    detail = row.detail if isinstance(row.detail, dict) else {}
    asked = detail.get("request") or {}
    return Request(source=asked.get("source"), create=bool(asked.get("create")))


def sync_from(rt: Runtime, rows: Sequence[ErrorRow], source: str | None) -> list[SyncReport]:
    """Syncs the records of these errors in a chosen direction (`None`: merge), overriding conflicts."""
    return retry(rt, rows, Request(source=source))


def restore(rt: Runtime, rows: Sequence[ErrorRow]) -> list[SyncReport]:
    """Re-creates the deleted record of each pair from the survivor."""
    return retry(rt, rows, Request(deletion=DeletionPolicy.RESTORE))


def delete_survivor(rt: Runtime, rows: Sequence[ErrorRow]) -> list[SyncReport]:
    """Deletes the surviving record of each pair whose other record was deleted."""
    return retry(rt, rows, Request(deletion=DeletionPolicy.PROPAGATE))


def uncouple_errors(rt: Runtime, rows: Sequence[ErrorRow]) -> Counts:
    """Removes the couplings of these errors (their errors are resolved with them)."""
    counts = Counts()
    for (mapping_name, system), group in _by_record(rows).items():
        coupled = [r for r in group if r.coupling_id is not None]
        if coupled:
            counts.merge(uncouple(rt, mapping_name, system, [r.record_key for r in coupled]))
        loose = [r.id for r in group if r.coupling_id is None]
        if loose:
            rt.store.resolve_errors(loose, "dismissed")
            counts.skipped += len(loose)
    return counts


def dismiss(rt: Runtime, rows: Sequence[ErrorRow]) -> int:
    """Closes errors without doing anything (the records stay as they are)."""
    rt.store.resolve_errors([r.id for r in rows], "dismissed")
    return len(rows)
