"""From the inbox to dramatiq: claim received events, coalesce their keys per mapping, enqueue batches."""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Sequence

from adapters.store.inbox import RECEIVED, Inbox, InboxRow
from workers.actors import Actors

log = logging.getLogger(__name__)

HOLD_AT_MOST = dt.timedelta(milliseconds=100)


class Dispatcher:
    def __init__(
        self,
        inbox: Inbox,
        actors: Actors,
        batch_size: int,
        sweep_after: dt.timedelta,
        keep: dt.timedelta = dt.timedelta(days=7),
    ) -> None:
        self.inbox = inbox
        self.actors = actors
        self.batch_size = batch_size
        self.sweep_after = sweep_after
        self.keep = keep

    def dispatch(self) -> int:
        """Enqueues every received event; returns how many inbox rows went out.

        While the workers are behind (many events in flight), received events wait a little, up to
        HOLD_AT_MOST, so that they go out together: a batch's fixed cost is then spread over more keys,
        and the pipeline catches up instead of queueing ever more small batches.
        """
        in_flight, oldest = self.inbox.backlog()
        if oldest is None:
            return 0
        waited = dt.datetime.now(dt.UTC) - (oldest if oldest.tzinfo else oldest.replace(tzinfo=dt.UTC))
        if in_flight >= self.batch_size // 2 and waited < HOLD_AT_MOST:
            return 0
        total = 0
        while rows := self.inbox.claim():
            self.send(rows)
            total += len(rows)
        return total

    def sweep(self) -> int:
        """Re-enqueues events enqueued long ago and still not applied (their message was lost).

        It also drops applied events older than the retention: duplicates of those are no longer
        recognised by id, and harmless anyway, since a worker re-reads both systems.
        """
        self.inbox.purge(self.keep)
        rows = self.inbox.reclaim_stale(self.sweep_after)
        if rows:
            log.warning("re-enqueuing %d events not applied within %s", len(rows), self.sweep_after)
            self.send(rows)
        return len(rows)

    def send(self, rows: Sequence[InboxRow]) -> None:
        """One message per mapping, side and batch of keys; several events for one key make one item."""
        try:
            self._send(rows)
        except Exception:
            # back to received: the next dispatch tries again (nothing waits for the sweep's timeout)
            self.inbox.set_state([r.id for r in rows], RECEIVED)
            raise

    def _send(self, rows: Sequence[InboxRow]) -> None:
        groups: dict[tuple[str, str], dict[str, list[int]]] = defaultdict(dict)
        for row in rows:
            if row.op == "rescan" and row.since is not None:
                since = row.since if row.since.tzinfo else row.since.replace(tzinfo=dt.UTC)
                self.actors.rescan.send(
                    mapping=row.mapping, system=row.system, since=since.isoformat(), inbox_id=row.id
                )
                continue
            groups[(row.mapping, row.system)].setdefault(row.record_key, []).append(row.id)
        for (mapping, system), by_key in groups.items():
            items = list(by_key.items())
            for start in range(0, len(items), self.batch_size):
                chunk = [[key, ids] for key, ids in items[start : start + self.batch_size]]
                self.actors.apply.send(mapping=mapping, system=system, items=chunk)
