"""SQLAlchemy engines with the settings every Tandem database wants (SQLite: WAL, busy timeout)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine, make_url

WAL_WAIT_S = 30.0  # as long as the busy timeout
IDLE_PING_S = 1.0


def make_engine(url: str, **options: Any) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = sa.create_engine(parsed, connect_args={"timeout": 30, "check_same_thread": False}, **options)
        sa.event.listen(engine, "connect", _sqlite_setup)
        return engine
    engine = sa.create_engine(parsed, **options)
    _ping_when_idle(engine)
    return engine


def make_engines(url: str) -> tuple[Engine, Engine]:
    """An engine for writes and an autocommit one for reads (no BEGIN and ROLLBACK round trips).

    A lost connection seen by either renews the other's pool too: after a database restart the
    second engine's pooled connections are as dead as the first's.
    """
    engine, reader = make_engine(url), make_engine(url, isolation_level="AUTOCOMMIT")
    for one, other in ((engine, reader), (reader, engine)):
        sa.event.listen(one, "handle_error", _renewing(other))
    return engine, reader


def _renewing(other: Engine) -> Callable[[sa.engine.ExceptionContext], None]:
    def on_error(context: sa.engine.ExceptionContext) -> None:
        if context.is_disconnect:
            other.dispose(close=False)  # a new pool; connections in use are left to finish

    return on_error


def _ping_when_idle(engine: Engine) -> None:
    """Pings a pooled connection before use only when it sat idle for IDLE_PING_S (pool_pre_ping pings
    every checkout: a round trip per transaction, a tenth of a busy worker's time).

    One that was busy a moment ago and died since fails its statement instead; SQLAlchemy then renews
    the whole pool (and make_engines the sibling's), and the worker retries the batch.
    """

    def checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    def checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < IDLE_PING_S:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise sa.exc.DisconnectionError() from exc  # the pool replaces it, up to three times

    sa.event.listen(engine, "checkin", checked_in)
    sa.event.listen(engine, "checkout", checked_out)


def _sqlite_setup(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.create_function("tandem_lower", 1, _lower, deterministic=True)
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout=30000")
        _wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _wal(cursor: Any) -> None:
    """Puts the database file in WAL mode (it stays so), waiting while another connection holds it.

    The switch fails at once with "database is locked", without the busy timeout, when a new file is
    being switched or migrated by another connection, as when several processes start together.
    """
    deadline = time.monotonic() + WAL_WAIT_S
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] in ("wal", "memory"):
                return
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def one_of(column: sa.ColumnElement[Any], values: Sequence[Any], dialect: str) -> sa.ColumnElement[bool]:
    """`column IN (values)`; on PostgreSQL `column = ANY(:array)`, one parameter however many values.

    A long IN list is a new statement text for every batch size and too long for the driver's statement
    cache; the array form is one short statement that is parsed once.
    """
    if dialect == "postgresql" and values:
        array = sa.bindparam(None, list(values), type_=postgresql.ARRAY(column.type))
        return column == sa.any_(array)
    return column.in_(list(values))
