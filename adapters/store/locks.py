"""Per-record locks that hold across threads, processes and machines while a batch runs."""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine


class Locks(Protocol):
    def hold(self, names: Iterable[str]) -> AbstractContextManager[None]:
        """Holds every named lock until the block ends (waiting for other holders first)."""


def lock_id(name: str) -> int:
    """A stable signed 64-bit id for a lock name (PostgreSQL advisory locks take bigint)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


class AdvisoryLocks:
    """PostgreSQL session advisory locks on a connection of their own, taken in ascending order."""

    def __init__(self, engine: Engine, timeout_s: float = 120) -> None:
        self.engine = engine  # in autocommit mode: session locks need no transaction
        self.timeout_ms = int(timeout_s * 1000)

    @contextmanager
    def hold(self, names: Iterable[str]) -> Iterator[None]:
        ids = sorted({lock_id(n) for n in names})
        if not ids:
            yield
            return
        # session locks need no transaction: autocommit keeps it to one round trip to take, one to release
        with self.engine.connect() as connection:
            try:
                connection.execute(
                    sa.text("SELECT set_config('lock_timeout', :ms, false), tandem_lock_all(:ids)"),
                    {"ms": str(self.timeout_ms), "ids": ids},
                )
                yield
            finally:
                connection.execute(sa.text("SELECT pg_advisory_unlock_all()"))


class FileLocks:
    """One lock for the whole store (SQLite serves one machine): a file lock, re-entrant per thread."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._mutex = threading.RLock()
        self._local = threading.local()

    @contextmanager
    def hold(self, names: Iterable[str]) -> Iterator[None]:
        del names
        with self._mutex:
            depth = getattr(self._local, "depth", 0)
            if depth or self.path is None:
                self._local.depth = depth + 1
                try:
                    yield
                finally:
                    self._local.depth = depth
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX)
                self._local.depth = 1
                try:
                    yield
                finally:
                    self._local.depth = 0
                    fcntl.flock(descriptor, fcntl.LOCK_UN)
            finally:
                os.close(descriptor)
