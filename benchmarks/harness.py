"""The benchmark world: PostgreSQL databases for the store and both systems, a broker, worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

POSTGRES = os.environ.get("TANDEM_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
RABBITMQ = os.environ.get("TANDEM_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672//")
REDIS = os.environ.get("TANDEM_TEST_REDIS", "redis://127.0.0.1:6379/0")
TANDEM = str(Path(sys.executable).parent / "tandem")


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.01)


@contextmanager
def postgres_databases(*names: str) -> Iterator[dict[str, str]]:
    admin = sa.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    created = {name: f"bench_{name}_{uuid.uuid4().hex[:8]}" for name in names}
    try:
        with admin.connect() as connection:
            for database in created.values():
                connection.execute(sa.text(f'CREATE DATABASE "{database}"'))
        yield {
            name: sa.make_url(POSTGRES).set(database=database).render_as_string(hide_password=False)
            for name, database in created.items()
        }
    finally:
        with admin.connect() as connection:
            for database in created.values():
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the most resident memory the process ever had."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == pid:
                found.append(int(entry.name))
    return found


@dataclass
class Processes:
    """Subprocesses started in a session of their own (so that stopping reaches their children)."""

    running: list[subprocess.Popen[str]] = field(default_factory=list)
    output: dict[int, list[str]] = field(default_factory=dict)

    def start(
        self, command: list[str], env: dict[str, str], ready: str | None, count: int = 1
    ) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        lines: list[str] = []
        self.output[process.pid] = lines

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                lines.append(line)

        threading.Thread(target=read, daemon=True).start()
        self.running.append(process)
        if ready is not None:
            wait_for(
                lambda: sum(ready in line for line in lines) >= count or process.poll() is not None, 90, ready
            )
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited:\n{''.join(lines)}")
        return process

    def stop(self) -> None:
        for process in self.running:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.running:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        self.running.clear()
