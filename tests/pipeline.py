"""Running the real pipeline in tests: `tandem worker` subprocesses on a chosen bus and broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from adapters.bus import KombuBus, Topology
from adapters.events import change
from adapters.store.inbox import Inbox
from config.settings import Settings
from producers.api import InboxBus, Publisher
from tests import services
from tests.factories import World, build_world, databases

TANDEM = str(Path(sys.executable).parent / "tandem")
MODES = ("embedded", "rabbitmq", "redis")


def wait_for(condition: Callable[[], bool], timeout: float = 60, what: str = "the condition") -> None:
    """Awaits a condition (polling it); fails the test with `what` when it does not come true in time."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


@dataclass
class Worker:
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def ready(self) -> int:
        return sum("tandem worker ready" in line for line in self.lines)

    def output(self) -> str:
        return "".join(self.lines)


@dataclass
class Pipeline:
    mode: str
    world: World
    folder: Path
    env: dict[str, str]
    settings: Settings
    workers: list[Worker] = field(default_factory=list)

    @property
    def inbox(self) -> Inbox:
        return Inbox(self.world.rt.store.engine)

    def start_worker(self, processes: int = 1, threads: int = 2, **env: str) -> Worker:
        command = [TANDEM, "worker", "--processes", str(processes), "--threads", str(threads)]
        process = subprocess.Popen(
            command,
            env={**self.env, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # so that a kill reaches its children too
        )
        worker = Worker(process)

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                worker.lines.append(line)

        threading.Thread(target=read, daemon=True).start()
        self.workers.append(worker)
        wait_for(
            lambda: worker.ready() >= processes or process.poll() is not None,
            60,
            f"{processes} worker processes to be ready",
        )
        assert process.poll() is None, f"the worker exited:\n{worker.output()}"
        return worker

    def kill(self, worker: Worker) -> None:
        os.killpg(worker.process.pid, signal.SIGKILL)
        worker.process.wait(timeout=30)

    def stop(self, worker: Worker) -> None:
        if worker.process.poll() is None:
            os.killpg(worker.process.pid, signal.SIGTERM)
            try:
                worker.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(worker.process.pid, signal.SIGKILL)
                worker.process.wait(timeout=30)

    def publisher(self, source: str = "test") -> Publisher:
        if self.settings.bus_url is None:
            configuration = self.world.configuration
            bus = InboxBus(self.inbox, configuration.mappings, configuration.systems, source)
            return Publisher(bus, source)
        return Publisher(KombuBus(self.settings.bus_url, Topology(self.settings.namespace)), source)

    def publish(self, system: str, table: str, *keys: str, op: str = "upsert") -> None:
        publisher = self.publisher()
        try:
            publisher.publish_events([change(system, table, key, op) for key in keys])  # type: ignore[arg-type]
        finally:
            publisher.close()

    def pending(self) -> int:
        counts = self.inbox.counts()
        return counts.get("received", 0) + counts.get("enqueued", 0)

    def done(self) -> int:
        return self.inbox.counts().get("done", 0)

    def wait_applied(self, at_least: int, timeout: float = 60) -> None:
        """Awaits `at_least` applied inbox events and none left in flight."""
        wait_for(
            lambda: self.done() >= at_least and self.pending() == 0, timeout, f"{at_least} applied events"
        )


def _clean_broker(mode: str, namespace: str) -> None:
    if mode == "redis":
        import redis

        client = redis.Redis.from_url(services.REDIS)
        for key in client.scan_iter(f"{namespace}*"):
            client.delete(key)
        for key in client.scan_iter(f"_kombu.binding.{namespace}*"):
            client.delete(key)
    elif mode == "rabbitmq":
        from kombu import Connection

        with Connection(services.RABBITMQ) as connection:
            channel = connection.channel()
            for suffix in ("router", "sync", "sync.DQ", "sync.XQ"):
                try:
                    channel.queue_delete(f"{namespace}.{suffix}")
                except Exception:
                    channel = connection.channel()
            with suppress(Exception):
                channel.exchange_delete(f"{namespace}.changes")


@contextmanager
def pipeline(mode: str, folder: Path, backend: str | None = None, **options: object) -> Iterator[Pipeline]:
    """A world (store and both systems) plus the settings and environment of a worker in `mode`."""
    namespace = services.unique("t").replace("_", "-")
    backend = backend or ("sqlite" if mode == "embedded" else "postgres")
    if mode == "rabbitmq":
        services.need("RabbitMQ", services.RABBITMQ, 5672)
    if mode == "redis":
        services.need("Redis", services.REDIS, 6379)
    with databases(backend, folder) as urls:
        world = build_world(urls, **options)  # type: ignore[arg-type]
        config = world.write_config(folder / "mappings.yaml")
        bus = {"embedded": None, "rabbitmq": services.RABBITMQ, "redis": services.REDIS}[mode]
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TANDEM_")},
            "TANDEM_CONFIG": str(config),
            "TANDEM_DATABASE_URL": urls["store"],
            "TANDEM_HOME": str(folder / "home"),
            "TANDEM_NAMESPACE": namespace,
            "TANDEM_MIN_BACKOFF_MS": "50",
            "TANDEM_MAX_BACKOFF_MS": "200",
            "TANDEM_RETRIES": "2",
        }
        if bus is not None:
            env["TANDEM_BUS_URL"] = bus
            env["TANDEM_BROKER_URL"] = bus
        settings = Settings(
            database_url=urls["store"], bus_url=bus, broker_url=bus, namespace=namespace, config=config
        )
        running = Pipeline(mode, world, folder, env, settings)
        try:
            yield running
        finally:
            for worker in running.workers:
                running.stop(worker)
            world.close()
            _clean_broker(mode, namespace)
