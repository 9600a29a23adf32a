"""Baseline workers: dramatiq's own ceiling (a no-op actor) and a naive one-event-one-transaction sync.

Run as `python -m benchmarks.baselines noop|naive BROKER_URL QUEUE THREADS [STORE_URL ERP_URL CRM_URL]`.
Both count finished messages in Redis, so the benchmark can wait for a number instead of guessing.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from typing import Any

import dramatiq
import redis
import sqlalchemy as sa

from benchmarks.harness import REDIS
from workers.broker import pika_url

COUNTER = "tandem-bench:done"


def broker_for(url: str) -> Any:
    if url.startswith("redis://"):
        from dramatiq.brokers.redis import RedisBroker

        return RedisBroker(url=url, namespace="tandem-bench")
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    return RabbitmqBroker(url=pika_url(url))


def declare(broker: Any, queue: str, work: Any) -> Any:
    return dramatiq.Actor(
        work, broker=broker, actor_name="bench", queue_name=queue, priority=0, options={"max_retries": 0}
    )


def naive_work(store_url: str, erp_url: str, crm_url: str) -> Any:
    """One event, one transaction per system: read the ERP row, write the CRM row and the coupling's base."""
    engines = {
        name: sa.create_engine(url, pool_size=8)
        for name, url in (("store", store_url), ("erp", erp_url), ("crm", crm_url))
    }

    def work(key: str) -> None:
        with engines["erp"].connect() as erp:
            row = erp.execute(
                sa.text("SELECT name, phone, city FROM customer WHERE no = :k"), {"k": key}
            ).one()
        with engines["store"].begin() as store:
            account = store.execute(
                sa.text("SELECT a_key FROM tandem_coupling WHERE mapping = 'CUSTOMER' AND b_key = :k"),
                {"k": key},
            ).scalar_one()
            with engines["crm"].begin() as crm:
                crm.execute(
                    sa.text(
                        "UPDATE account SET name = :n, telephone1 = :p, address1_city = :c "
                        "WHERE accountid = :a"
                    ),
                    {"n": row.name, "p": row.phone, "c": row.city, "a": account},
                )
            base = json.dumps({"erp": {"name": row.name, "phone": row.phone, "city": row.city}})
            store.execute(
                sa.text("UPDATE tandem_coupling SET base = :b WHERE mapping = 'CUSTOMER' AND b_key = :k"),
                {"b": base, "k": key},
            )

    return work


def main(argv: list[str]) -> None:
    kind, broker_url, queue, threads = argv[0], argv[1], argv[2], int(argv[3])
    counter = redis.Redis.from_url(REDIS)
    inner = naive_work(*argv[4:7]) if kind == "naive" else (lambda key: None)

    def work(key: str) -> None:
        inner(key)
        counter.incr(COUNTER)

    broker = broker_for(broker_url)
    declare(broker, queue, work)
    broker.emit_after("process_boot")
    worker = dramatiq.Worker(broker, worker_threads=threads)
    worker.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("baseline ready", flush=True)
    stop.wait()
    worker.stop()
    broker.close()


if __name__ == "__main__":
    main(sys.argv[1:])
