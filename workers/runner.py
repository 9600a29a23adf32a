"""`tandem worker`: router, dispatcher, sweep and dramatiq workers, in one process or several."""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import dramatiq

from adapters.bus import Topology
from config.errors import ConfigError
from config.settings import Settings
from workers.actors import Actors
from workers.broker import build_broker
from workers.dispatch import Dispatcher
from workers.process import Process
from workers.router import Router

log = logging.getLogger(__name__)

POLL_EMBEDDED_S = 0.05  # embedded producers write straight into the inbox: look often
POLL_SCALED_S = 0.1  # the router dispatches after every flush; this also ends a hold (see Dispatcher)
SWEEP_EVERY_S = 30.0


@dataclass(frozen=True)
class WorkerOptions:
    threads: int = 4
    processes: int = 1


class Service:
    """Everything one process runs; `stop()` ends it after the work in hand is finished."""

    def __init__(
        self, settings: Settings, mapping_file: Path, threads: int, stopping: threading.Event | None = None
    ) -> None:
        self.settings = settings
        self.process = Process.build(settings, mapping_file)
        self.broker = build_broker(settings, lambda: self.process.inbox)
        self.actors = Actors(self.broker, settings, lambda: self.process)
        sweep_after = dt.timedelta(seconds=settings.sweep_after_s)
        keep = dt.timedelta(days=settings.keep_events_days)
        self.dispatcher = Dispatcher(self.process.inbox, self.actors, settings.batch_size, sweep_after, keep)
        self.worker = dramatiq.Worker(self.broker, worker_threads=threads, worker_timeout=100)
        self.stopping = stopping or threading.Event()
        self.router: Router | None = None
        self.threads: list[threading.Thread] = []
        self._dispatch_lock = threading.Lock()

    def dispatch(self) -> None:
        with self._dispatch_lock:
            self.dispatcher.dispatch()

    def start(self) -> None:
        self.worker.start()
        if self.settings.bus_url is not None:
            mappings = self.process.configuration.mappings
            systems = set(self.process.configuration.systems)
            self.router = Router(
                self.settings.bus_url,
                Topology(self.settings.namespace),
                self.process.inbox,
                mappings,
                systems,
                after_flush=self.dispatch,
            )
            self._thread("router", self.router.serve)
        self._thread("dispatcher", self._loop)

    def _thread(self, name: str, target: Callable[[], object]) -> None:
        thread = threading.Thread(target=self._guard(name, target), name=f"tandem-{name}", daemon=True)
        thread.start()
        self.threads.append(thread)

    def _guard(self, name: str, target: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except Exception:
                log.exception("the %s stopped with an error; stopping the worker", name)
                self.stopping.set()

        return run

    def _loop(self) -> None:
        interval = POLL_SCALED_S if self.settings.bus_url else POLL_EMBEDDED_S
        next_sweep = 0.0
        clock = 0.0
        while not self.stopping.wait(interval):
            clock += interval
            try:
                self.dispatch()
                if clock >= next_sweep:
                    self.dispatcher.sweep()
                    next_sweep = clock + min(SWEEP_EVERY_S, self.settings.sweep_after_s / 2)
            except Exception:  # the store or the broker is away for a moment: try again next round
                log.exception("dispatch failed; trying again")

    def stop(self) -> None:
        self.stopping.set()
        if self.router is not None:
            self.router.should_stop = True
        for thread in self.threads:
            thread.join(timeout=10)
        self.worker.stop(timeout=30_000)
        self.broker.close()
        self.process.close()


def serve(
    settings: Settings, mapping_file: Path, threads: int, announce: Callable[[str], None] = print
) -> None:
    """Runs one worker process until SIGTERM or SIGINT; waits for a store or broker that is not up yet."""
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        del frame
        log.info("signal %d: stopping after the work in hand", signum)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    service = _start(settings, mapping_file, threads, stopping)
    if service is None:
        return
    mode = "scaled" if settings.broker_url else "embedded"
    announce(f"tandem worker ready ({mode}, {threads} threads, namespace {settings.namespace})")
    sys.stdout.flush()
    service.stopping.wait()
    service.stop()


def _start(settings: Settings, mapping_file: Path, threads: int, stopping: threading.Event) -> Service | None:
    """Builds and starts the service, retrying with backoff while the store or the broker is unreachable.

    A bad mapping file is not retried: ConfigError stops start-up with its message.
    """
    delay = 0.5
    while not stopping.is_set():
        try:
            service = Service(settings, mapping_file, threads, stopping)
            service.start()
            return service
        except ConfigError:
            raise
        except Exception as exc:  # the store or the broker is away: wait for it rather than exit
            log.warning("cannot start yet (%s: %s); retrying in %.1f s", type(exc).__name__, exc, delay)
            stopping.wait(delay)
            delay = min(delay * 2, 10.0)
    return None


def _child(settings_json: str, mapping_file: str, threads: int) -> None:
    logging.basicConfig(level=logging.WARNING)
    serve(Settings.model_validate_json(settings_json), Path(mapping_file), threads)


def run(settings: Settings, mapping_file: Path, options: WorkerOptions) -> int:
    """One process serves in place; several are spawned and supervised (a dead one is started again)."""
    if options.processes == 1:
        serve(settings, mapping_file, options.threads)
        return 0
    if settings.broker_url is None:
        raise ValueError("several processes need a shared broker: set TANDEM_BROKER_URL (and TANDEM_BUS_URL)")
    context = multiprocessing.get_context("spawn")
    args = (settings.model_dump_json(), str(mapping_file), options.threads)
    children = [
        context.Process(target=_child, args=args, name=f"tandem-worker-{i}") for i in range(options.processes)
    ]
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for child in children:
        child.start()
    while not stopping.wait(1.0):
        for index, child in enumerate(children):
            if not child.is_alive():
                log.warning("worker process %s exited (%s); starting it again", child.name, child.exitcode)
                children[index] = context.Process(target=_child, args=args, name=child.name)
                children[index].start()
    for child in children:
        if child.is_alive() and child.pid is not None:
            child.terminate()
    for child in children:
        child.join(timeout=60)
    return 0
