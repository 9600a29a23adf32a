"""SQLAlchemy engines with the settings every Tandem database wants (SQLite: WAL, busy timeout)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine, make_url


def make_engine(url: str, **options: Any) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = sa.create_engine(parsed, connect_args={"timeout": 30, "check_same_thread": False}, **options)
        sa.event.listen(engine, "connect", _sqlite_setup)
        return engine
    return sa.create_engine(parsed, pool_pre_ping=True, **options)


def _sqlite_setup(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.create_function("tandem_lower", 1, _lower, deterministic=True)
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


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
