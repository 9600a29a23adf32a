"""Keeping PostgreSQL's statistics of the store's fast-growing tables fresh, so plans stay index plans.

A table that grows from nothing to a hundred thousand rows within a minute outruns autovacuum: until
it analyzes, the planner believes the table is tiny and scans it whole for every batch.
"""

from __future__ import annotations

import threading
from collections import defaultdict

import sqlalchemy as sa
from sqlalchemy.engine import Engine

FIRST = 1000  # rows added before the first ANALYZE
GROWTH = 0.5  # then again each time the table grew by this share


class Statistics:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine  # an autocommit engine: ANALYZE cannot run inside a transaction block
        self.enabled = engine.dialect.name == "postgresql"
        self._added: dict[str, int] = defaultdict(int)
        self._size: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    def added(self, table: str, rows: int) -> None:
        """Counts rows added to `table`; runs ANALYZE when they are many compared with its last size."""
        if not self.enabled or rows <= 0:
            return
        with self._lock:
            self._added[table] += rows
            due = self._added[table] >= max(FIRST, int(self._size[table] * GROWTH))
            if due:
                self._size[table] += self._added[table]
                self._added[table] = 0
        if due:
            with self.engine.connect() as connection:
                connection.execute(sa.text(f"ANALYZE {table}"))
