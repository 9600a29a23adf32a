"""The convergence kit: random concurrent changes on both systems under faults, then checks that they agree.

    python -m benchmarks.convergence                  # the long run: 10,000 operations
    python -m benchmarks.convergence --operations 300 # about a minute (what CI runs, from a test)

Users create, edit and delete records straight in the systems' databases; events come from the poller
and from the API, and a share of them is duplicated, delayed and reordered on the way. Meanwhile worker
processes are killed with SIGKILL, RabbitMQ is restarted, and a worker is restarted while PostgreSQL
refuses connections. After quiescence it checks: every coupled pair agrees on every field (or has a
listed conflict); no record has two counterparts; no update made on one side only was lost; every
final value traces to a real edit; no inbox event is left undone; every dead letter has its reason.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import subprocess
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from adapters.bus import KombuBus, Topology
from adapters.events import Event, change
from adapters.store.inbox import Inbox
from benchmarks.harness import POSTGRES, RABBITMQ, TANDEM, Processes, children, postgres_databases, wait_for
from config.mappings import load_text
from config.settings import Settings
from config.wiring import build_runtime
from domain.values import canonical
from producers.api import Publisher
from producers.poller import Poller, targets
from workers.deadletters import RabbitDeadLetters, replay
from workers.usecases.verify import verify

MAPPING = """
version: 1
systems:
  erp: {{connector: sql, url: "{erp}"}}
  crm: {{connector: sql, url: "{crm}"}}
mappings:
  CUSTOMER:
    erp: {{table: customer, key: "no", version: modified, new_keys: uuid, key_prefix: "C-"}}
    crm: {{table: account, key: accountid, version: modifiedon, new_keys: uuid}}
    direction: both
    sync_only_coupled: false
    conflict: latest
    deletion: propagate
    fields:
      - {{erp: name, crm: name}}
      - {{erp: "no", crm: accountnumber, direction: erp->crm}}
      - {{erp: phone, crm: telephone}}
      - {{erp: city, crm: city}}
      - {{erp: credit, crm: creditlimit}}
"""

ERP = sa.MetaData()
CUSTOMER = sa.Table(
    "customer",
    ERP,
    sa.Column("no", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(100)),
    sa.Column("phone", sa.String(40)),
    sa.Column("city", sa.String(60)),
    sa.Column("credit", sa.Integer),
    sa.Column("modified", sa.DateTime, nullable=False),
)
CRM = sa.MetaData()
ACCOUNT = sa.Table(
    "account",
    CRM,
    sa.Column("accountid", sa.String(36), primary_key=True),
    sa.Column("accountnumber", sa.String(40)),
    sa.Column("name", sa.String(100)),
    sa.Column("telephone", sa.String(40)),
    sa.Column("city", sa.String(60)),
    sa.Column("creditlimit", sa.Integer),
    sa.Column("modifiedon", sa.DateTime, nullable=False),
)
# each field's column per system, and who edits it: one side only (so a lost update shows) or both
FIELDS = {
    "name": ({"erp": "name", "crm": "name"}, ("erp", "crm")),
    "phone": ({"erp": "phone", "crm": "telephone"}, ("erp",)),
    "city": ({"erp": "city", "crm": "city"}, ("crm",)),
    "credit": ({"erp": "credit", "crm": "creditlimit"}, ("erp", "crm")),
}
TABLES = {"erp": (CUSTOMER, "no", "modified"), "crm": (ACCOUNT, "accountid", "modifiedon")}


@dataclass
class Plan:
    seed: int = 7
    operations: int = 10_000
    rate: float = 100.0  # operations per second
    initial: int = 100
    kills: int = 5
    broker_restarts: int = 2
    pg_outages: int = 2
    share: float = 0.1  # of events duplicated, and of events delayed (and reordered)
    processes: int = 2
    threads: int = 2


@dataclass
class Tally:
    operations: int = 0
    creates: int = 0
    edits: int = 0
    deletes: int = 0
    events: int = 0
    duplicates: int = 0
    delayed: int = 0
    kills: int = 0
    broker_restarts: int = 0
    pg_outages: int = 0
    mismatches: int = 0
    duplicates_found: int = 0
    lost_updates: int = 0
    untraced_values: int = 0
    stuck_events: int = 0
    dead_letters: int = 0
    unexplained_dead_letters: int = 0
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        shown = {k: v for k, v in self.__dict__.items() if k != "problems"}
        return "convergence: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in shown.items())

    @property
    def ok(self) -> bool:
        bad = ("mismatches", "duplicates_found", "lost_updates", "untraced_values", "stuck_events")
        return not any(getattr(self, name) for name in bad) and not self.unexplained_dead_letters


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Chaos:
    """A test hook in front of the real publisher: duplicates, delays and reorders a share of events."""

    def __init__(self, publisher: Publisher, rng: random.Random, share: float, tally: Tally) -> None:
        self.publisher = publisher
        self.rng = rng
        self.share = share
        self.tally = tally
        self.held: list[Event] = []

    def publish(self, events: Sequence[Event]) -> None:
        out: list[Event] = []
        for event in events:
            roll = self.rng.random()
            if roll < self.share:
                out.append(event)
                self.held.append(event)  # the same event id again, later
                self.tally.duplicates += 1
            elif roll < 2 * self.share:
                self.held.append(event)
                self.tally.delayed += 1
            else:
                out.append(event)
        self.tally.events += len(events)
        self.send(out)
        if len(self.held) > 50 or self.rng.random() < 0.05:
            self.release()

    def close(self) -> None:
        self.release()

    def release(self) -> None:
        held, self.held = self.held, []
        self.rng.shuffle(held)  # released out of order
        self.send(held)

    def send(self, events: list[Event]) -> None:
        """Publishes; while the bus is restarting, waits and tries again (as any producer would)."""
        for attempt in range(60):
            try:
                self.publisher.publish_events(events)
                return
            except Exception:  # the broker is restarting
                time.sleep(min(0.5 * (attempt + 1), 3))
        raise RuntimeError("the bus did not come back within a few minutes")


class Ledger:
    """Every value a user wrote, per record and field, in order: what the checks compare with."""

    def __init__(self) -> None:
        self.writes: dict[tuple[str, str], dict[str, list[tuple[str, Any]]]] = defaultdict(
            lambda: defaultdict(list)
        )
        self.deleted: set[tuple[str, str]] = set()

    def write(self, system: str, key: str, values: dict[str, Any]) -> None:
        for name, value in values.items():
            self.writes[(system, key)][name].append((system, value))


@contextmanager
def _outage(database: str) -> Iterator[None]:
    """PostgreSQL refuses connections to one database for the duration."""
    admin = sa.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false'))
        connection.execute(
            sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"),
            {"d": database},
        )
    try:
        yield
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true'))
        admin.dispose()


def _restart_rabbitmq() -> None:
    subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True, timeout=120)
    subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True, timeout=120)
    subprocess.run(["rabbitmqctl", "await_startup"], check=True, capture_output=True, timeout=120)


class Run:
    def __init__(self, plan: Plan, urls: dict[str, str], folder: Path) -> None:
        self.plan = plan
        self.rng = random.Random(plan.seed)
        self.tally = Tally()
        self.ledger = Ledger()
        self.urls = urls
        self.engines = {s: sa.create_engine(urls[s]) for s in ("erp", "crm")}
        ERP.create_all(self.engines["erp"])
        CRM.create_all(self.engines["crm"])
        self.namespace = f"conv-{uuid.uuid4().hex[:8]}"
        config = folder / f"{self.namespace}.yaml"
        config.write_text(MAPPING.format(erp=urls["erp"], crm=urls["crm"]))
        self.config = config
        self.configuration = load_text(config.read_text(), str(config))
        self.rt = build_runtime(Settings(database_url=urls["store"]), self.configuration)
        self.inbox = Inbox(self.rt.store.engine)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TANDEM_")},
            "TANDEM_CONFIG": str(config),
            "TANDEM_DATABASE_URL": urls["store"],
            "TANDEM_BUS_URL": RABBITMQ,
            "TANDEM_BROKER_URL": RABBITMQ,
            "TANDEM_NAMESPACE": self.namespace,
            "TANDEM_SWEEP_AFTER_S": "10",
            "TANDEM_MIN_BACKOFF_MS": "200",
            "TANDEM_MAX_BACKOFF_MS": "3000",
            "TANDEM_RETRIES": "8",
        }
        self.processes = Processes()
        self.publisher = Publisher(KombuBus(RABBITMQ, Topology(self.namespace)), "convergence")
        self.chaos = Chaos(self.publisher, self.rng, plan.share, self.tally)
        self.poller = Poller(
            self.inbox,
            dict(self.rt.connectors),
            Publisher(self.chaos, "poller"),
            targets(self.configuration.mappings),
        )
        self.keys: dict[str, list[str]] = {"erp": [], "crm": []}

    # --- users --------------------------------------------------------------------------------

    def _values(self) -> dict[str, Any]:
        return {
            "name": f"Company {self.rng.randint(1, 10**6)}",
            "phone": f"+45 {self.rng.randint(10**7, 10**8 - 1)}",
            "city": self.rng.choice(["Aarhus", "Berlin", "Chicago", "Dublin", "Essen"]),
            "credit": self.rng.choice([0, 1000, 5000, 25000]),
        }

    def create(self, system: str) -> None:
        table, key_column, modified = TABLES[system]
        key = (
            f"U{uuid.UUID(int=self.rng.getrandbits(128)).hex[:12]}"
            if system == "erp"
            else str(uuid.UUID(int=self.rng.getrandbits(128)))
        )
        values = self._values()
        row = {FIELDS[n][0][system]: v for n, v in values.items()}
        with self.engines[system].begin() as connection:
            connection.execute(sa.insert(table).values({key_column: key, modified: _now(), **row}))
        self.ledger.write(system, key, values)
        self.keys[system].append(key)
        self.tally.creates += 1
        self._announce(system, key, "upsert")

    def edit(self, system: str) -> None:
        if not self.keys[system]:
            return self.create(system)
        key = self.rng.choice(self.keys[system])
        editable = [n for n, (_, editors) in FIELDS.items() if system in editors]
        chosen = self.rng.sample(editable, self.rng.randint(1, len(editable)))
        values = {n: v for n, v in self._values().items() if n in chosen}
        table, key_column, modified = TABLES[system]
        row = {FIELDS[n][0][system]: v for n, v in values.items()}
        with self.engines[system].begin() as connection:
            hit = connection.execute(
                sa.update(table).where(table.c[key_column] == key).values({modified: _now(), **row})
            )
        if hit.rowcount:
            self.ledger.write(system, key, values)
            self.tally.edits += 1
            self._announce(system, key, "upsert")
        return None

    def delete(self, system: str) -> None:
        if not self.keys[system]:
            return
        key = self.rng.choice(self.keys[system])
        table, key_column, _ = TABLES[system]
        with self.engines[system].begin() as connection:
            connection.execute(sa.delete(table).where(table.c[key_column] == key))
        self.keys[system].remove(key)
        self.ledger.deleted.add((system, key))
        self.tally.deletes += 1
        self.chaos.publish([change(system, table.name, key, "delete", source="convergence")])

    def _announce(self, system: str, key: str, op: str) -> None:
        """Half the changes are told by the API at once; the poller finds the other half."""
        if self.rng.random() < 0.5:
            self.chaos.publish([change(system, TABLES[system][0].name, key, op, source="convergence")])  # type: ignore[arg-type]

    # --- faults -------------------------------------------------------------------------------

    def start_worker(self) -> subprocess.Popen[str]:
        command = [
            TANDEM,
            "worker",
            "--processes",
            str(self.plan.processes),
            "--threads",
            str(self.plan.threads),
        ]
        return self.processes.start(command, self.env, "tandem worker ready", self.plan.processes)

    def kill_a_worker(self, worker: subprocess.Popen[str]) -> None:
        victims = children(worker.pid)
        if victims:
            os.kill(self.rng.choice(victims), 9)  # the supervisor starts it again
            self.tally.kills += 1

    def restart_broker(self) -> None:
        _restart_rabbitmq()
        self.tally.broker_restarts += 1

    def outage_restart(self, worker: subprocess.Popen[str]) -> subprocess.Popen[str]:
        """Stops the worker, restarts it while PostgreSQL refuses the store's connections, then lets it in."""
        self.processes.stop()
        database = sa.make_url(self.urls["store"]).database or ""
        with _outage(database):
            command = [
                TANDEM,
                "worker",
                "--processes",
                str(self.plan.processes),
                "--threads",
                str(self.plan.threads),
            ]
            worker = self.processes.start(command, self.env, None)
            time.sleep(2)  # an outage of a couple of seconds, by design (not a synchronisation)
        self.tally.pg_outages += 1
        wait_for(
            lambda: sum("ready" in line for line in self.processes.output[worker.pid]) >= self.plan.processes,
            120,
            "the worker after the outage",
        )
        return worker

    # --- the run ------------------------------------------------------------------------------

    def go(self) -> Tally:
        for _ in range(self.plan.initial):
            self.create(self.rng.choice(["erp", "crm"]))
        self.poller.start(from_start=True)
        worker = self.start_worker()
        total = self.plan.operations
        faults: dict[int, str] = {}
        for kind, count in (
            ("kill", self.plan.kills),
            ("broker", self.plan.broker_restarts),
            ("outage", self.plan.pg_outages),
        ):
            for _ in range(count):
                faults[self.rng.randint(total // 10, total - total // 10)] = kind
        started = time.monotonic()
        for index in range(total):
            roll = self.rng.random()
            system = self.rng.choice(["erp", "crm"])
            if roll < 0.15:
                self.create(system)
            elif roll < 0.97:
                self.edit(system)
            else:
                self.delete(system)
            self.tally.operations += 1
            if index % 20 == 0:
                self.poller.poll()
            fault = faults.get(index)
            if fault == "kill":
                self.kill_a_worker(worker)
            elif fault == "broker":
                self.restart_broker()
            elif fault == "outage":
                worker = self.outage_restart(worker)
            pause = started + (index + 1) / self.plan.rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        self.settle()
        self.check()
        return self.tally

    def settle(self) -> None:
        """Quiescence: every held event out, the poller quiet, the inbox empty, dead letters replayed."""
        self.chaos.release()
        for _ in range(3):
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                self.poller.poll()
                counts = self.inbox.counts()
                if not counts.get("received") and not counts.get("enqueued"):
                    break
                time.sleep(0.5)
            letters = RabbitDeadLetters(Settings(broker_url=RABBITMQ, namespace=self.namespace))
            dead = letters.list()
            self.tally.dead_letters += len(dead)
            self.tally.unexplained_dead_letters += sum(1 for d in dead if not d.error)
            if dead:
                replay(letters, self.inbox, dead)
                continue
            if not self.poller.poll():
                break

    # --- the checks ---------------------------------------------------------------------------

    def check(self) -> None:
        counts = self.inbox.counts()
        self.tally.stuck_events = (
            counts.get("received", 0) + counts.get("enqueued", 0) + counts.get("dead", 0)
        )
        report = verify(self.rt)
        conflicted = {e.coupling_id for e in self.rt.store.errors("CUSTOMER")}
        mapping = self.rt.mappings["CUSTOMER"]
        couplings = self.rt.store.list_couplings(mapping)
        by_keys = {tuple(sorted(c.keys.items())): c.id for c in couplings}
        for mismatch in report.mismatches:
            if by_keys.get(tuple(sorted(mismatch.keys.items()))) not in conflicted:
                self.tally.mismatches += 1
                self.tally.problems.append(f"mismatch {mismatch.keys}: {mismatch.problems}")
        rows = {s: self._rows(s) for s in ("erp", "crm")}
        for system in ("erp", "crm"):
            coupled = {c.keys[system] for c in couplings}
            extra = set(rows[system]) - coupled
            self.tally.duplicates_found += len(extra)
            self.tally.problems.extend(f"uncoupled {system} record {k}" for k in sorted(extra)[:10])
        for coupling in couplings:
            self._check_pair(coupling.keys, rows)

    def _rows(self, system: str) -> dict[str, dict[str, Any]]:
        table, key_column, _ = TABLES[system]
        with self.engines[system].connect() as connection:
            return {
                str(r[key_column]): {k: canonical(v) for k, v in r.items()}
                for r in connection.execute(sa.select(table)).mappings()
            }

    def _check_pair(self, keys: dict[str, str | None], rows: dict[str, dict[str, dict[str, Any]]]) -> None:
        records = {s: rows[s].get(keys[s] or "") for s in ("erp", "crm")}
        if any(r is None for r in records.values()):
            return  # a side gone: verify() reports it
        for name, (columns, editors) in FIELDS.items():
            written = [
                w
                for s in ("erp", "crm")
                for w in self.ledger.writes.get((s, keys[s] or ""), {}).get(name, [])
            ]
            finals = {s: records[s][columns[s]] for s in ("erp", "crm")}  # type: ignore[index]
            if len(editors) == 1:
                (editor,) = editors
                own = [v for s, v in written if s == editor]
                if own and any(v != own[-1] for v in finals.values()):
                    self.tally.lost_updates += 1
                    self.tally.problems.append(
                        f"lost update {keys} {name}: last written {own[-1]!r}, now {finals}"
                    )
            elif written and any(v not in {w for _, w in written} for v in finals.values()):
                self.tally.untraced_values += 1
                self.tally.problems.append(f"untraced {keys} {name}: {finals} not among {written[-5:]}")

    def close(self) -> None:
        self.processes.stop()
        self.publisher.close()
        self.rt.close()
        for engine in self.engines.values():
            engine.dispose()
        self.config.unlink(missing_ok=True)


def run(plan: Plan, folder: Path) -> Tally:
    with postgres_databases("store", "erp", "crm") as urls:
        kit = Run(plan, urls, folder)
        try:
            return kit.go()
        finally:
            kit.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--operations", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=100.0, help="operations per second")
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--broker-restarts", type=int, default=2)
    parser.add_argument("--pg-outages", type=int, default=2)
    args = parser.parse_args()
    plan = Plan(
        args.seed,
        args.operations,
        args.rate,
        kills=args.kills,
        broker_restarts=args.broker_restarts,
        pg_outages=args.pg_outages,
    )
    folder = Path(__file__).parent / "results"
    folder.mkdir(exist_ok=True)
    tally = run(plan, folder)
    for problem in tally.problems[:30]:
        print(problem)
    print(tally.line())
    raise SystemExit(0 if tally.ok else 1)


if __name__ == "__main__":
    main()
