"""The event inbox: every accepted event, deduplicated, with its state from received to applied."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from adapters.store.bulk import insert_rows
from adapters.store.statistics import Statistics
from adapters.store.store import CHUNK, now
from adapters.store.tables import inbox as T_INBOX
from adapters.store.tables import invalid_event as T_INVALID
from adapters.store.tables import watermark as T_WATERMARK

RECEIVED, ENQUEUED, DONE, DEAD = "received", "enqueued", "done", "dead"
UNIQUE = ("event_id", "mapping")  # an event id seen before, for the same mapping, is a duplicate
MAX_PARKED_BODY = 64 * 1024


@dataclass(frozen=True)
class InboxRow:
    id: int
    event_id: str
    mapping: str
    system: str
    table_name: str
    record_key: str
    op: str
    since: dt.datetime | None
    occurred_at: dt.datetime | None
    published_at: dt.datetime | None
    received_at: dt.datetime
    enqueued_at: dt.datetime | None
    applied_at: dt.datetime | None
    state: str
    attempts: int
    last_error: str | None


@dataclass(frozen=True)
class InvalidRow:
    id: int
    received_at: dt.datetime
    source: str
    routing_key: str | None
    reason: str
    body: str
    state: str


def _rows(result: Any) -> list[InboxRow]:
    return [InboxRow(**row._asdict()) for row in result]


class Inbox:
    """Inbox operations on the store's database; each call is its own short transaction."""

    def __init__(self, engine: Engine, reader: Engine | None = None) -> None:
        self.engine = engine
        self.reader = reader or engine
        self.statistics = Statistics(reader) if reader is not None else None
        self.postgres = engine.dialect.name == "postgresql"

    def accept(self, rows: Sequence[dict[str, Any]]) -> int:
        """Records events (one row per event and mapping); an event id seen before is ignored.

        Returns how many rows were new. Durable when this returns: only then may a bus message be acked.
        """
        if not rows:
            return 0
        moment = now()
        values = [{"received_at": moment, "state": RECEIVED, "attempts": 0, **row} for row in rows]
        accepted = 0
        with self.engine.begin() as connection:
            for start in range(0, len(values), CHUNK):
                chunk = values[start : start + CHUNK]
                accepted += len(
                    insert_rows(connection, T_INBOX, chunk, returning=T_INBOX.c.id, unique=UNIQUE)
                )
        return accepted

    def claim(self, limit: int = 5000) -> list[InboxRow]:
        """Takes received rows for dispatch (marks them enqueued); concurrent claimers never share a row."""
        inner = sa.select(T_INBOX.c.id).where(T_INBOX.c.state == RECEIVED).order_by(T_INBOX.c.id).limit(limit)
        if self.postgres:
            inner = inner.with_for_update(skip_locked=True)
        statement = (
            sa.update(T_INBOX)
            .where(T_INBOX.c.id.in_(inner.scalar_subquery()))
            .values(state=ENQUEUED, enqueued_at=now(), attempts=T_INBOX.c.attempts + 1)
            .returning(*T_INBOX.c)
        )
        with self.engine.begin() as connection:
            return sorted(_rows(connection.execute(statement)), key=lambda r: r.id)

    def reclaim_stale(self, older_than: dt.timedelta, limit: int = 5000) -> list[InboxRow]:
        """Enqueued rows not applied in time (a message lost between router and worker): take them again."""
        cutoff = now() - older_than
        inner = (
            sa.select(T_INBOX.c.id)
            .where(T_INBOX.c.state == ENQUEUED, T_INBOX.c.enqueued_at < cutoff)
            .order_by(T_INBOX.c.id)
            .limit(limit)
        )
        if self.postgres:
            inner = inner.with_for_update(skip_locked=True)
        statement = (
            sa.update(T_INBOX)
            .where(T_INBOX.c.id.in_(inner.scalar_subquery()))
            .values(enqueued_at=now(), attempts=T_INBOX.c.attempts + 1)
            .returning(*T_INBOX.c)
        )
        with self.engine.begin() as connection:
            return sorted(_rows(connection.execute(statement)), key=lambda r: r.id)

    def purge(self, older_than: dt.timedelta, limit: int = 10_000) -> int:
        """Deletes applied events older than `older_than` (the inbox keeps them to dedupe and replay)."""
        cutoff = now() - older_than
        inner = (
            sa.select(T_INBOX.c.id)
            .where(T_INBOX.c.state == DONE, T_INBOX.c.applied_at < cutoff)
            .order_by(T_INBOX.c.id)
            .limit(limit)
        )
        with self.engine.begin() as connection:
            return connection.execute(
                sa.delete(T_INBOX).where(T_INBOX.c.id.in_(inner.scalar_subquery()))
            ).rowcount

    def set_state(self, ids: Sequence[int], state: str, error: str | None = None) -> None:
        values: dict[str, Any] = {"state": state, "last_error": error}
        if state == ENQUEUED:
            values["enqueued_at"] = now()
        with self.engine.begin() as connection:
            for start in range(0, len(ids), CHUNK):
                chunk = list(ids[start : start + CHUNK])
                connection.execute(
                    sa.update(T_INBOX).where(T_INBOX.c.id.in_(chunk), T_INBOX.c.state != DONE).values(values)
                )

    def rows(
        self,
        *,
        ids: Sequence[int] | None = None,
        state: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        mapping: str | None = None,
        limit: int | None = None,
    ) -> list[InboxRow]:
        query = sa.select(T_INBOX)
        if ids is not None:
            query = query.where(T_INBOX.c.id.in_(list(ids)))
        if state is not None:
            query = query.where(T_INBOX.c.state == state)
        if since is not None:
            query = query.where(T_INBOX.c.received_at >= since)
        if until is not None:
            query = query.where(T_INBOX.c.received_at < until)
        if mapping is not None:
            query = query.where(T_INBOX.c.mapping == mapping)
        with self.reader.connect() as connection:
            return _rows(connection.execute(query.order_by(T_INBOX.c.id).limit(limit)))

    def backlog(self) -> tuple[int, dt.datetime | None]:
        """How many events are enqueued and not applied, and when the oldest received one arrived."""
        query = sa.select(
            sa.func.count().filter(T_INBOX.c.state == ENQUEUED),
            sa.func.min(T_INBOX.c.received_at).filter(T_INBOX.c.state == RECEIVED),
        ).where(T_INBOX.c.state.in_([RECEIVED, ENQUEUED]))
        with self.reader.connect() as connection:
            in_flight, oldest = connection.execute(query).one()
        return int(in_flight), oldest

    def counts(self) -> dict[str, int]:
        query = sa.select(T_INBOX.c.state, sa.func.count()).group_by(T_INBOX.c.state)
        with self.reader.connect() as connection:
            return {state: int(n) for state, n in connection.execute(query)}

    # --- parked invalid events --------------------------------------------------------------------

    def park(self, reason: str, body: bytes | str, source: str, routing_key: str | None = None) -> int:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes | bytearray) else str(body)
        if len(text) > MAX_PARKED_BODY:
            text = text[:MAX_PARKED_BODY] + f"… ({len(text)} characters, cut)"
        with self.engine.begin() as connection:
            result = connection.execute(
                sa.insert(T_INVALID)
                .values(
                    received_at=now(),
                    source=source[:200],
                    routing_key=(routing_key or "")[:1000] or None,
                    reason=reason,
                    body=text.replace("\x00", "\\u0000"),
                    state="parked",
                )
                .returning(T_INVALID.c.id)
            )
            return int(result.scalar_one())

    def invalid(self, state: str | None = "parked", ids: Sequence[int] | None = None) -> list[InvalidRow]:
        query = sa.select(T_INVALID)
        if state is not None:
            query = query.where(T_INVALID.c.state == state)
        if ids is not None:
            query = query.where(T_INVALID.c.id.in_(list(ids)))
        with self.reader.connect() as connection:
            return [InvalidRow(**row._asdict()) for row in connection.execute(query.order_by(T_INVALID.c.id))]

    def set_invalid_state(self, ids: Sequence[int], state: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(sa.update(T_INVALID).where(T_INVALID.c.id.in_(list(ids))).values(state=state))

    # --- the poller's watermarks --------------------------------------------------------------------

    def watermark(self, system: str, table: str) -> Any:
        query = sa.select(T_WATERMARK.c.value).where(
            T_WATERMARK.c.system == system, T_WATERMARK.c.table_name == table
        )
        with self.reader.connect() as connection:
            return connection.execute(query).scalar_one_or_none()

    def set_watermark(self, system: str, table: str, value: Any) -> None:
        insert = (postgresql.insert if self.postgres else sqlite.insert)(T_WATERMARK)
        statement = insert.values(system=system, table_name=table, value=value, updated_at=now())
        statement = statement.on_conflict_do_update(
            index_elements=["system", "table_name"], set_={"value": value, "updated_at": now()}
        )
        with self.engine.begin() as connection:
            connection.execute(statement)
