"""The event pipeline end to end: publish on one side, the worker applies it on the other.

Each test runs embedded (SQLite, in-process broker, the inbox as the bus), on RabbitMQ + PostgreSQL and
on Redis + PostgreSQL, with real `tandem worker` subprocesses.
"""

from __future__ import annotations

import pytest

from tests.pipeline import MODES, pipeline, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _coupled_customer(p, no: str = "C1"):
    from workers.usecases.couple import create_and_couple

    p.world.insert_customer(no, name=f"Customer {no}", phone="+1 555 0100")
    report = create_and_couple(p.world.rt, "CUSTOMER", "erp", [no])
    assert report.counts.inserted == 1
    key = p.world.counterpart("CUSTOMER", "erp", no)
    assert key is not None
    return key


def test_an_edit_published_on_one_side_reaches_the_other(mode, tmp_path):
    with pipeline(mode, tmp_path) as p:
        account = _coupled_customer(p)
        p.start_worker()
        p.world.edit("erp", "customer", "C1", phone="+45 7000 0001")
        p.publish("erp", "customer", "C1")
        p.wait_applied(1)
        assert p.world.account(account)["telephone"] == "+45 7000 0001"
        p.world.edit("crm", "account", account, city="Aarhus")
        p.publish("crm", "account", account)
        p.wait_applied(2)
        assert p.world.customer("C1")["city"] == "Aarhus"


def test_a_new_record_is_created_and_coupled(mode, tmp_path):
    with pipeline(mode, tmp_path, sync_only_coupled=False) as p:
        p.start_worker()
        account = p.world.insert_account(name="Nordic Cycles", telephone="+45 3300 0000")
        p.publish("crm", "account", account)
        p.wait_applied(1)
        no = p.world.counterpart("CUSTOMER", "crm", account)
        assert no is not None and no.startswith("C-")
        assert p.world.customer(no)["name"] == "Nordic Cycles"
        assert p.world.account(account)["accountnumber"] == no  # the new key flowed back


@pytest.mark.parametrize("policy", ["fail", "uncouple", "restore", "propagate"])
def test_a_deletion_follows_the_deletion_policy(policy, tmp_path):
    with pipeline("embedded", tmp_path, deletion=policy) as p:
        account = _coupled_customer(p)
        p.start_worker()
        p.world.delete("crm", "account", account)
        p.publish("crm", "account", account, op="delete")
        p.wait_applied(1)
        coupled = p.world.counterpart("CUSTOMER", "erp", "C1")
        errors = p.world.rt.store.errors("CUSTOMER")
        if policy == "fail":
            assert coupled == account and len(errors) == 1 and "deleted" in errors[0].message
        elif policy == "uncouple":
            assert coupled is None and p.world.row("erp", "customer", "C1") is not None
        elif policy == "restore":
            assert coupled is not None and coupled != account
            assert p.world.account(coupled)["name"] == "Customer C1"
        else:
            assert coupled is None and p.world.row("erp", "customer", "C1") is None


@pytest.mark.parametrize("mode", ["rabbitmq", "redis"])
def test_deletion_policies_on_the_scaled_pipeline(mode, tmp_path):
    with pipeline(mode, tmp_path, deletion="propagate") as p:
        account = _coupled_customer(p)
        p.start_worker()
        p.world.delete("crm", "account", account)
        p.publish("crm", "account", account, op="delete")
        p.wait_applied(1)
        assert p.world.row("erp", "customer", "C1") is None


def test_the_same_event_five_times_applies_once(mode, tmp_path):
    from adapters.events import change

    with pipeline(mode, tmp_path) as p:
        account = _coupled_customer(p)
        p.start_worker()
        p.world.edit("erp", "customer", "C1", phone="+45 1111")
        event = change("erp", "customer", "C1")
        publisher = p.publisher()
        publisher.publish_events([event] * 5)
        publisher.close()
        p.wait_applied(1)
        assert p.inbox.counts() == {"done": 1}
        assert p.world.account(account)["telephone"] == "+45 1111"
        jobs = [j for j in p.world.rt.store.jobs("CUSTOMER") if j.trigger == "event"]
        assert sum(j.counts.modified for j in jobs) == 1


@pytest.mark.parametrize("mode", ["rabbitmq", "redis"])
def test_two_processes_and_two_events_for_one_new_record_make_one_counterpart(mode, tmp_path):
    from adapters.events import change

    with pipeline(mode, tmp_path, sync_only_coupled=False) as p:
        p.start_worker(processes=2, threads=2)
        accounts = [p.world.insert_account(name=f"New {i}") for i in range(20)]
        publisher = p.publisher()
        # two different events per record, interleaved, so both processes see each record
        publisher.publish_events([change("crm", "account", a) for a in accounts for _ in range(2)])
        publisher.close()
        p.wait_applied(40)
        assert p.world.count("erp", "customer") == 20
        for account in accounts:
            assert p.world.counterpart("CUSTOMER", "crm", account) is not None


def test_malformed_events_are_parked_and_the_consumer_keeps_going(tmp_path):
    from kombu import Connection

    from adapters.bus import Topology

    with pipeline("rabbitmq", tmp_path) as p:
        account = _coupled_customer(p)
        p.start_worker()
        topology = Topology(p.settings.namespace)
        bad = [
            (b"{not json", "application/json"),
            (b'{"system": "erp"}', "application/json"),
            (b'{"system": "erp", "table": "customer", "key": 5, "op": "upsert"}', "application/json"),
            (b'{"system": "nosuch", "table": "customer", "key": "C1"}', "application/json"),
            (b'{"system": "erp", "table": "customer", "key": "C1", "op": "explode"}', "application/json"),
            (
                b'{"system": "erp", "table": "customer", "key": "C1", "payload": {"x": "'
                + b"y" * 300_000
                + b'"}}',
                "application/json",
            ),
            (b"\x80\x81 binary", "application/octet-stream"),
            (b"[1, 2, 3]", "application/json"),
        ]
        with Connection(p.settings.bus_url) as connection:
            producer = connection.Producer()
            for body, content_type in bad:
                producer.publish(
                    body,
                    exchange=topology.exchange,
                    routing_key="erp.customer.upsert",
                    content_type=content_type,
                    content_encoding="binary" if content_type != "application/json" else "utf-8",
                    declare=[topology.exchange, topology.queue],
                )
        p.world.edit("erp", "customer", "C1", phone="+45 2222")
        p.publish("erp", "customer", "C1")
        p.wait_applied(1)
        assert p.world.account(account)["telephone"] == "+45 2222"
        # a list is a batch of events: each of its three items is parked on its own
        parked = len(bad) + 2
        wait_for(lambda: len(p.inbox.invalid()) == parked, 30, "every bad event to be parked")
        reasons = " | ".join(r.reason for r in p.inbox.invalid())
        for expected in (
            "cannot decode",
            "key",
            "unknown system",
            "op",
            "larger than",
            "an event is a JSON object",
        ):
            assert expected in reasons


def test_our_own_writes_polled_back_produce_no_further_writes(tmp_path):
    import datetime as dt

    from producers.poller import Poller, targets

    with pipeline("embedded", tmp_path) as p:
        account = _coupled_customer(p)
        p.start_worker()
        inbox = p.inbox
        publisher = p.publisher("poller")
        watched = targets(p.world.configuration.mappings)
        # no overlap: the coupling's own writes just before must not count as the first poll's changes
        poller = Poller(inbox, dict(p.world.rt.connectors), publisher, watched, dt.timedelta(0))
        poller.start(from_start=False)
        p.world.edit("erp", "customer", "C1", phone="+45 3333")
        assert poller.poll() == 1  # the user's edit
        p.wait_applied(1)
        assert p.world.account(account)["telephone"] == "+45 3333"
        written = p.world.account(account)["modifiedon"]
        # the worker's write to the CRM is a change there: the poller publishes it, the worker finds nothing
        assert poller.poll() >= 1
        p.wait_applied(2)
        assert poller.poll() == 0 or p.pending() == 0
        p.wait_applied(2)
        jobs = [j for j in p.world.rt.store.jobs("CUSTOMER") if j.trigger == "event"]
        assert sum(j.counts.modified for j in jobs) == 1
        assert sum(j.counts.unchanged for j in jobs) >= 1
        assert p.world.account(account)["modifiedon"] == written
        publisher.close()


@pytest.mark.parametrize("mode", MODES)
def test_a_worker_killed_in_the_middle_loses_nothing(mode, tmp_path):
    from workers.usecases.couple import create_and_couple

    with pipeline(mode, tmp_path) as p:
        numbers = [f"C{i:04d}" for i in range(600)]
        p.world.insert("erp", "customer", [{"no": n, "name": f"Customer {n}"} for n in numbers])
        assert create_and_couple(p.world.rt, "CUSTOMER", "erp", numbers).counts.inserted == 600
        env = {"TANDEM_BATCH_SIZE": "20", "TANDEM_SWEEP_AFTER_S": "3"}
        worker = p.start_worker(1, 2, **env)
        p.world.edit_all("erp", "customer", phone="+45 9999")
        p.publish("erp", "customer", *numbers)
        wait_for(lambda: p.done() > 0, 60, "the first events to be applied")
        p.kill(worker)
        assert p.done() < len(numbers), "the kill came after the end: nothing was interrupted"
        p.start_worker(1, 2, **env)
        p.wait_applied(len(numbers), timeout=120)
        assert p.world.count("crm", "account") == len(numbers)  # no duplicates
        assert {r["telephone"] for r in p.world.rows("crm", "account")} == {"+45 9999"}


def _block(url: str, allow: bool) -> None:
    import sqlalchemy as sa

    from tests import services

    name = sa.make_url(url).database
    admin = sa.create_engine(services.POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(
            sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"true" if allow else "false"}')
        )
        if not allow:
            connection.execute(
                sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name},
            )
    admin.dispose()


@pytest.mark.parametrize("mode", MODES)
def test_a_dead_letter_is_replayed_after_the_cause_is_fixed(mode, tmp_path):
    import json
    import subprocess

    from tests.pipeline import TANDEM

    with pipeline(mode, tmp_path, backend="postgres") as p:
        account = _coupled_customer(p)
        p.world.rt.connectors["crm"].close()
        p.start_worker()
        _block(p.world.urls["crm"], allow=False)
        try:
            p.world.edit("erp", "customer", "C1", phone="+45 5555")
            p.publish("erp", "customer", "C1")
            wait_for(lambda: p.inbox.counts().get("dead") == 1, 60, "the event to be dead-lettered")
            listed = subprocess.run(
                [TANDEM, "replay", "--json"], env=p.env, capture_output=True, text=True, check=True
            )
            letters = json.loads(listed.stdout)
            assert [(letter["mapping"], letter["keys"]) for letter in letters] == [("CUSTOMER", ["C1"])]
            assert "unavailable" in letters[0]["error"]
        finally:
            _block(p.world.urls["crm"], allow=True)
        subprocess.run([TANDEM, "replay", "--all"], env=p.env, capture_output=True, text=True, check=True)
        p.wait_applied(1)
        assert p.world.account(account)["telephone"] == "+45 5555"
        after = subprocess.run(
            [TANDEM, "replay", "--json"], env=p.env, capture_output=True, text=True, check=True
        )
        assert json.loads(after.stdout) == []
