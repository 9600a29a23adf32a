"""Applying the store's Alembic migrations, once, even when many processes start together."""

from __future__ import annotations

import threading
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

MIGRATIONS = Path(__file__).parent / "migrations"
# Alembic's command API keeps its context in module globals: one migration at a time in a process.
_MIGRATING = threading.Lock()


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


def current(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> bool:
    """Brings the schema to `revision`; returns whether anything was applied."""
    if revision == "head" and current(engine) == head():
        return False
    with _MIGRATING, engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # concurrent starters wait here; the first migrates, the others find nothing left to do
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(7266133)"))
        elif connection.dialect.name == "sqlite":
            # the same for SQLite: its DDL joins this transaction, which other processes wait for
            connection.exec_driver_sql("BEGIN EXCLUSIVE")
        if MigrationContext.configure(connection).get_current_revision() == head() and revision == "head":
            return False
        command.upgrade(_config(connection), revision)
    return True


def downgrade(engine: Engine, revision: str) -> None:
    with engine.begin() as connection:
        command.downgrade(_config(connection), revision)
