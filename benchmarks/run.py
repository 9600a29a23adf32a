"""The benchmark: dramatiq's ceiling, a naive baseline, Tandem end to end, latency, full sync, match, memory.

    python -m benchmarks.run                 # RabbitMQ + PostgreSQL
    python -m benchmarks.run --redis         # Redis + PostgreSQL
    python -m benchmarks.run --quick         # small N, a few seconds (what CI runs)

Prints a table and writes benchmarks/results/<broker>-<time>.json. Figures are measurements, not
assertions: the run fails only when something cannot run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import sqlalchemy as sa

from adapters.bus import KombuBus, Topology
from adapters.demo.schemas import crm as CRM
from adapters.demo.schemas import erp as ERP
from adapters.events import change
from adapters.store.inbox import Inbox, InboxRow
from benchmarks.baselines import COUNTER, broker_for, declare
from benchmarks.harness import (
    RABBITMQ,
    REDIS,
    TANDEM,
    Processes,
    children,
    peak_rss_mb,
    postgres_databases,
    rss_mb,
    wait_for,
)
from config.mappings import load_text
from config.settings import Settings
from config.wiring import build_runtime
from domain.planner import Request
from producers.api import Publisher
from workers.usecases.couple import create_and_couple
from workers.usecases.match import match
from workers.usecases.sync import sync
from workers.usecases.uncouple import uncouple

RESULTS = Path(__file__).parent / "results"

MAPPING = """
version: 1
systems:
  erp: {{connector: sql, url: "{erp}"}}
  crm: {{connector: sql, url: "{crm}"}}
mappings:
  CUSTOMER:
    erp: {{table: customer, key: "no", version: last_modified}}
    crm: {{table: account, key: accountid, version: modifiedon, new_keys: uuid}}
    direction: both
    fields:
      - {{erp: name, crm: name, match: true}}
      - {{erp: "no", crm: accountnumber, direction: erp->crm}}
      - {{erp: phone, crm: telephone1}}
      - {{erp: city, crm: address1_city}}
      - {{erp: email, crm: emailaddress1}}
      - {{erp: credit_limit, crm: creditlimit}}
"""


@dataclass
class Plan:
    records: int
    latency_rate: int
    latency_seconds: float
    processes: int
    threads: int


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _create_systems(urls: dict[str, str], n: int) -> None:
    erp, crm = sa.create_engine(urls["erp"]), sa.create_engine(urls["crm"])
    ERP.create_all(erp, tables=[ERP.tables["customer"]])
    CRM.create_all(crm, tables=[CRM.tables["account"]])
    stamp = _now()
    rows = [
        {
            "no": f"C{i:06d}",
            "name": f"Customer {i}",
            "phone": f"+1 555 {i:06d}",
            "city": "Atlanta",
            "email": f"c{i}@example.org",
            "credit_limit": 1000,
            "blocked": False,
            "system_id": str(uuid.uuid4()),
            "last_modified": stamp,
        }
        for i in range(n)
    ]
    with erp.begin() as connection:
        for start in range(0, n, 5000):
            connection.execute(sa.insert(ERP.tables["customer"]), rows[start : start + 5000])
    erp.dispose()
    crm.dispose()


def _raw_copy(urls: dict[str, str], n: int) -> float:
    """The floor to compare full sync with: read the rows and insert them elsewhere, 500 per transaction."""
    erp, crm = sa.create_engine(urls["erp"]), sa.create_engine(urls["crm"])
    with crm.begin() as connection:
        connection.execute(sa.text("CREATE TABLE account_raw AS SELECT * FROM account WHERE false"))
    started = time.perf_counter()
    with erp.connect() as source:
        rows = source.execute(
            sa.text("SELECT no, name, phone, city, email, credit_limit FROM customer")
        ).all()
    insert = sa.text(
        "INSERT INTO account_raw (accountid, name, accountnumber, telephone1, address1_city, emailaddress1, "
        "creditlimit, statecode, modifiedon) VALUES (:id, :name, :no, :phone, :city, :email, :credit, 0, :at)"
    )
    for start in range(0, len(rows), 500):
        chunk = [
            {
                "id": str(uuid.uuid4()),
                "name": r.name,
                "no": r.no,
                "phone": r.phone,
                "city": r.city,
                "email": r.email,
                "credit": r.credit_limit,
                "at": _now(),
            }
            for r in rows[start : start + 500]
        ]
        with crm.begin() as connection:
            connection.execute(insert, chunk)
    elapsed = time.perf_counter() - started
    erp.dispose()
    crm.dispose()
    return n / elapsed


def _analyze(urls: dict[str, str]) -> None:
    for url in urls.values():
        engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(sa.text("VACUUM ANALYZE"))
        engine.dispose()


def _baseline(
    kind: str, broker_url: str, plan: Plan, urls: dict[str, str], keys: list[str]
) -> tuple[float, list[float]]:
    """Messages per second through `plan.processes` baseline workers, one message per event."""
    counter = redis.Redis.from_url(REDIS)
    counter.delete(COUNTER)
    queue = f"bench-{kind}-{uuid.uuid4().hex[:6]}"
    processes = Processes()
    env = dict(os.environ)
    command = [sys.executable, "-m", "benchmarks.baselines", kind, broker_url, queue, str(plan.threads)]
    if kind == "naive":
        command += [urls["store"], urls["erp"], urls["crm"]]
    try:
        pids = [processes.start(command, env, "baseline ready").pid for _ in range(plan.processes)]
        broker = broker_for(broker_url)
        actor = declare(broker, queue, lambda key: None)
        started = time.perf_counter()
        for key in keys:
            actor.send(key)
        wait_for(
            lambda: (
                int(counter.get(COUNTER) or 0) >= len(keys)
                or any(p.poll() is not None for p in processes.running)
            ),
            600,
            f"{len(keys)} {kind} messages",
        )
        if int(counter.get(COUNTER) or 0) < len(keys):
            raise RuntimeError(f"a {kind} worker exited: {processes.output}")
        rate = len(keys) / (time.perf_counter() - started)
        memory = [peak_rss_mb(pid) for pid in pids]
        broker.close()
        return rate, memory
    finally:
        processes.stop()


def run(plan: Plan, use_redis: bool) -> dict[str, Any]:
    broker_url = REDIS if use_redis else RABBITMQ
    results: dict[str, Any] = {
        "broker": "redis" if use_redis else "rabbitmq",
        "store": "postgresql",
        "records": plan.records,
        "processes": plan.processes,
        "threads": plan.threads,
        "machine": {"cpus": os.cpu_count()},
        "started": dt.datetime.now(dt.UTC).isoformat(),
    }
    with postgres_databases("store", "erp", "crm") as urls:
        _create_systems(urls, plan.records)
        configuration = load_text(MAPPING.format(erp=urls["erp"], crm=urls["crm"]), "bench.yaml")
        settings = Settings(database_url=urls["store"])
        rt = build_runtime(settings, configuration)
        keys = [f"C{i:06d}" for i in range(plan.records)]

        # (e) full synchronization of N records into an empty CRM, and the raw copy beside it
        started = time.perf_counter()
        report = create_and_couple(rt, "CUSTOMER", "erp", keys, trigger="bench")
        results["fullsync_rows_s"] = plan.records / (time.perf_counter() - started)
        assert report.counts.inserted == plan.records, report.counts
        results["raw_copy_rows_s"] = _raw_copy(urls, plan.records)

        # (e) match-based coupling of the same N ↔ N, after uncoupling them
        uncouple(rt, "CUSTOMER", everything=True)
        started = time.perf_counter()
        found = match(rt, "CUSTOMER", "erp", trigger="bench")
        results["match_rows_s"] = plan.records / (time.perf_counter() - started)
        assert len(found.matched) == plan.records, found.counts
        _analyze(urls)  # statistics, as autovacuum would have them on a database in use

        # (a) dramatiq's ceiling and (b) the naive baseline, same broker, processes and threads
        results["dramatiq_noop_msgs_s"], results["noop_memory_mb"] = _baseline(
            "noop", broker_url, plan, urls, keys
        )
        results["naive_events_s"], results["naive_memory_mb"] = _baseline(
            "naive", broker_url, plan, urls, keys
        )
        # the matched pairs have no base yet and the naive baseline wrote its own: a sync from the ERP
        # (untimed) gives every pair its base, so that (c) measures syncs, not conflicts
        synced = sync(rt, "CUSTOMER", "erp", keys, Request(source="erp", force=True), trigger="bench")
        assert synced.counts.failed == 0, synced.counts

        # (c) Tandem end to end and (d) latency at a steady rate
        namespace = f"bench-{uuid.uuid4().hex[:6]}"
        config_path = RESULTS / f"{namespace}.yaml"
        RESULTS.mkdir(exist_ok=True)
        config_path.write_text(MAPPING.format(erp=urls["erp"], crm=urls["crm"]))
        env = {
            **os.environ,
            "TANDEM_CONFIG": str(config_path),
            "TANDEM_DATABASE_URL": urls["store"],
            "TANDEM_BUS_URL": broker_url,
            "TANDEM_BROKER_URL": broker_url,
            "TANDEM_NAMESPACE": namespace,
        }
        processes = Processes()
        inbox = Inbox(rt.store.engine)
        erp = sa.create_engine(urls["erp"])
        publisher = Publisher(KombuBus(broker_url, Topology(namespace)), "bench")
        try:
            worker = processes.start(
                [TANDEM, "worker", "--processes", str(plan.processes), "--threads", str(plan.threads)],
                env,
                "tandem worker ready",
                plan.processes,
            )
            with erp.begin() as connection:
                connection.execute(
                    sa.text("UPDATE customer SET phone = phone || '-1', last_modified = :t"), {"t": _now()}
                )
            started = time.perf_counter()
            publisher.publish_events(change("erp", "customer", key, source="bench") for key in keys)
            published = time.perf_counter() - started
            wait_for(lambda: inbox.counts().get("done", 0) >= plan.records, 900, "every event to be applied")
            elapsed = time.perf_counter() - started
            results["tandem_events_s"] = plan.records / elapsed
            results["tandem_failed"] = rt.store.count_errors("CUSTOMER")  # 0: every event was a sync
            results["publish_events_s"] = plan.records / published
            workers = children(worker.pid)
            results["worker_memory_mb_after_throughput"] = [round(rss_mb(p), 1) for p in workers]

            # (d) a steady rate: every tick, edit a slice of records and publish their events
            mark = dt.datetime.now(dt.UTC)
            tick = 0.05
            per_tick = max(1, int(plan.latency_rate * tick))
            ticks = int(plan.latency_seconds / tick)
            cursor = 0
            begin = time.perf_counter()
            for index in range(ticks):
                batch = [keys[(cursor + j) % len(keys)] for j in range(per_tick)]
                cursor += per_tick
                with erp.begin() as connection:
                    connection.execute(
                        sa.text("UPDATE customer SET phone = :p, last_modified = :t WHERE no = ANY(:k)"),
                        {"p": f"+45 {index:08d}", "t": _now(), "k": batch},
                    )
                publisher.publish_events(change("erp", "customer", key, source="bench") for key in batch)
                pause = begin + (index + 1) * tick - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
            wanted = plan.records + ticks * per_tick
            wait_for(
                lambda: inbox.counts().get("done", 0) >= wanted, 300, "the steady-rate events to be applied"
            )
            rows = inbox.rows(since=mark)
            lags = sorted(
                (r.applied_at - r.published_at).total_seconds() * 1000
                for r in rows
                if r.applied_at is not None and r.published_at is not None
            )
            results["latency_rate_events_s"] = ticks * per_tick / plan.latency_seconds
            results["latency_seconds"] = plan.latency_seconds
            results["latency_ms"] = {
                "p50": _percentile(lags, 50),
                "p95": _percentile(lags, 95),
                "p99": _percentile(lags, 99),
                "max": lags[-1] if lags else None,
                "mean": statistics.fmean(lags) if lags else None,
                "events": len(lags),
            }
            # where the time goes: bus → router → inbox, inbox → dispatched, dispatched → applied
            results["latency_stages_p50_ms"] = _stages(rows)
            results["worker_memory_mb_after_latency"] = [round(rss_mb(p), 1) for p in workers]
            results["worker_peak_memory_mb"] = [round(peak_rss_mb(p), 1) for p in workers]
        finally:
            publisher.close()
            processes.stop()
            erp.dispose()
            rt.close()
            config_path.unlink(missing_ok=True)
    results["ratios"] = {
        "c/a": results["tandem_events_s"] / results["dramatiq_noop_msgs_s"],
        "c/b": results["tandem_events_s"] / results["naive_events_s"],
        "e/raw": results["fullsync_rows_s"] / results["raw_copy_rows_s"],
    }
    return results


def _stages(rows: list[InboxRow]) -> dict[str, float | None]:
    """The median time of each stage of an event: received by the router, enqueued, applied."""
    stages: dict[str, list[float]] = {"received": [], "enqueued": [], "applied": []}
    for r in rows:
        marks = (r.published_at, r.received_at, r.enqueued_at, r.applied_at)
        for stage, start, end in zip(stages, marks, marks[1:], strict=False):
            if start is not None and end is not None:
                stages[stage].append((end - start).total_seconds() * 1000)
    return {stage: _percentile(sorted(lags), 50) for stage, lags in stages.items()}


def _percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    index = min(len(values) - 1, max(0, round(p / 100 * len(values)) - 1))
    return values[index]


def show(results: dict[str, Any]) -> None:
    r = results
    latency = {k: v or 0 for k, v in r.get("latency_ms", {}).items()}
    memory = (
        r["worker_memory_mb_after_throughput"],
        r["worker_memory_mb_after_latency"],
        r["worker_peak_memory_mb"],
    )
    steady = f"(d) latency at {r['latency_rate_events_s']:,.0f} events/s for {r['latency_seconds']:.0f} s"
    lines = [
        ("broker / store", f"{r['broker']} / {r['store']}, {r['processes']}x{r['threads']} workers"),
        ("(a) dramatiq no-op ceiling", f"{r['dramatiq_noop_msgs_s']:,.0f} msgs/s"),
        ("(b) naive: 1 message + 1 transaction per event", f"{r['naive_events_s']:,.0f} events/s"),
        (
            "(c) Tandem end to end",
            f"{r['tandem_events_s']:,.0f} events/s (publish {r['publish_events_s']:,.0f}/s, "
            f"{r['tandem_failed']} failed)",
        ),
        (steady, f"p50 {latency['p50']:.1f} ms, p95 {latency['p95']:.1f} ms, p99 {latency['p99']:.1f} ms"),
        (
            "    p50 of each stage",
            ", ".join(f"{k} {v or 0:.1f} ms" for k, v in r.get("latency_stages_p50_ms", {}).items()),
        ),
        (
            "(e) full sync N↔N",
            f"{r['fullsync_rows_s']:,.0f} rows/s (raw batched copy {r['raw_copy_rows_s']:,.0f})",
        ),
        ("(e) match N↔N", f"{r['match_rows_s']:,.0f} records/s"),
        ("ratios", ", ".join(f"{k} = {v:.2f}" for k, v in r["ratios"].items())),
        ("worker RSS MB: after (c), after (d), peak", " ".join(str(m) for m in memory)),
    ]
    width = max(len(name) for name, _ in lines)
    print(f"\nTandem benchmark, {r['records']:,} records")
    for name, value in lines:
        print(f"  {name:<{width}}  {value}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--redis", action="store_true", help="Redis as bus and broker (default RabbitMQ)")
    parser.add_argument("--quick", action="store_true", help="small N and a short steady run (CI)")
    parser.add_argument("--records", type=int, help="records N (default 20000, quick 1000)")
    parser.add_argument("--rate", type=int, help="steady rate in events/s (default 1000, quick 200)")
    parser.add_argument("--seconds", type=float, help="steady run length (default 30, quick 3)")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    plan = Plan(
        records=args.records or (1000 if args.quick else 20000),
        latency_rate=args.rate or (200 if args.quick else 1000),
        latency_seconds=args.seconds or (3 if args.quick else 30),
        processes=args.processes,
        threads=args.threads,
    )
    results = run(plan, args.redis)
    show(results)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{results['broker']}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
