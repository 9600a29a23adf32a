"""Replaying past events: the keys that events named in a time window are synced again, from the present."""

from __future__ import annotations

import datetime as dt
import uuid

from adapters.store.inbox import Inbox


def replay_events(
    inbox: Inbox, since: dt.datetime, until: dt.datetime | None = None, mapping: str | None = None
) -> int:
    """Adds one new inbox event per record named in the window; returns how many were added."""
    run = uuid.uuid4().hex[:12]
    seen: set[tuple[str, str, str]] = set()
    rows = []
    for row in inbox.rows(since=since, until=until, mapping=mapping):
        if row.op == "rescan" or (row.mapping, row.system, row.record_key) in seen:
            continue
        seen.add((row.mapping, row.system, row.record_key))
        rows.append(
            {
                "event_id": f"replay-{run}-{row.id}",
                "mapping": row.mapping,
                "system": row.system,
                "table_name": row.table_name,
                "record_key": row.record_key,
                "op": "upsert",
                "occurred_at": row.occurred_at,
                "published_at": dt.datetime.now(dt.UTC),
            }
        )
    return inbox.accept(rows)
