"""The change poller against real databases: watermarks, the overlap window, restarts, shared tables.

Each test builds the two-system world of tests/factories.py (store and systems on SQLite, and on
PostgreSQL) and polls it with an InboxBus publisher, so what the poller published is read back as inbox
rows. Moments are the systems' own modified-at stamps (naive UTC), set explicitly where order matters.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import yaml

from adapters.store.inbox import Inbox, InboxRow
from config.mappings import Configuration, load_text
from producers.api import InboxBus, Publisher
from producers.poller import Poller, Target, targets
from tests.factories import World, later, now

OVERLAP = dt.timedelta(seconds=5)


def poller_for(
    world: World,
    watched: list[Target] | None = None,
    overlap: dt.timedelta = OVERLAP,
    configuration: Configuration | None = None,
) -> Poller:
    """A new poller over the world's store, as a new `tandem poll` process would make it."""
    configuration = configuration or world.configuration
    inbox = Inbox(world.rt.store.engine)
    bus = InboxBus(inbox, configuration.mappings, configuration.systems, "poller")
    found = targets(configuration.mappings) if watched is None else watched
    return Poller(inbox, dict(world.rt.connectors), Publisher(bus, "poller"), found, overlap)


def rows(world: World) -> list[InboxRow]:
    return Inbox(world.rt.store.engine).rows()


def keys(world: World) -> list[tuple[str, str, str]]:
    return [(r.mapping, r.system, r.record_key) for r in rows(world)]


def intake(poller: Poller) -> Any:
    bus = poller.publisher.bus
    assert isinstance(bus, InboxBus)
    return bus.last


def _customers(world: World, *numbers: str, at: dt.datetime) -> None:
    world.insert("erp", "customer", [{"no": n, "name": f"Customer {n}"} for n in numbers], at)


def test_every_mapped_table_with_a_version_column_is_watched(world):
    watched = {(t.system, t.side.table) for t in targets(world.configuration.mappings)}
    assert watched == {("erp", "salesperson"), ("erp", "customer"), ("crm", "systemuser"), ("crm", "account")}
    assert {(t.system, t.side.table) for t in targets(world.configuration.mappings, ["crm"])} == {
        ("crm", "systemuser"),
        ("crm", "account"),
    }


def test_the_first_poll_starts_now_and_publishes_no_old_rows(world):
    _customers(world, "C1", "C2", at=later(-10))
    account = world.insert_account(at=later(-10))
    poller = poller_for(world)
    poller.start(from_start=False)
    assert poller.poll() == 0
    assert rows(world) == []
    world.edit("crm", "account", account, city="Aarhus")  # after the start: published
    assert poller.poll() == 1
    assert keys(world) == [("CUSTOMER", "crm", account)]


def test_the_first_poll_from_the_start_publishes_every_row(world):
    _customers(world, "C1", "C2", "C3", at=later(-60 * 24 * 30))
    account = world.insert_account(at=later(-60))
    poller = poller_for(world)
    poller.start(from_start=True)
    assert poller.poll() == 4
    assert sorted(keys(world)) == sorted(
        [
            ("CUSTOMER", "erp", "C1"),
            ("CUSTOMER", "erp", "C2"),
            ("CUSTOMER", "erp", "C3"),
            ("CUSTOMER", "crm", account),
        ]
    )
    row = next(r for r in rows(world) if r.record_key == "C1")
    assert row.op == "upsert" and row.table_name == "customer" and row.occurred_at is not None


def test_a_row_changed_after_the_watermark_is_published_once(world):
    _customers(world, "C1", "C2", at=later(-10))
    poller = poller_for(world)
    poller.start(from_start=False)
    assert poller.poll() == 0
    world.edit("erp", "customer", "C1", at=later(1), phone="+45 1111")
    assert poller.poll() == 1
    (row,) = rows(world)
    assert (row.mapping, row.record_key) == ("CUSTOMER", "C1")
    # polling again re-reads the overlap window: the same row makes the same event id, a duplicate
    assert poller.poll() == 1
    assert intake(poller).accepted == 0 and intake(poller).duplicates == 1
    assert poller.poll() == 1
    assert rows(world) == [row]


def test_a_second_change_of_the_same_row_is_a_new_event(world):
    _customers(world, "C1", at=later(-10))
    poller = poller_for(world)
    poller.start(from_start=False)
    world.edit("erp", "customer", "C1", at=later(1), phone="+45 1111")
    poller.poll()
    world.edit("erp", "customer", "C1", at=later(2), phone="+45 2222")
    poller.poll()
    events = rows(world)
    assert [r.record_key for r in events] == ["C1", "C1"]
    assert events[0].event_id != events[1].event_id


def test_the_watermark_is_the_newest_version_seen(world):
    poller = poller_for(world)
    poller.start(from_start=False)
    stamp = later(3).replace(microsecond=0)
    world.insert_customer("C1", at=stamp)
    world.insert_customer("C2", at=stamp - dt.timedelta(minutes=1))
    assert poller.poll() == 2
    mark = dt.datetime.fromisoformat(Inbox(world.rt.store.engine).watermark("erp", "customer"))
    assert mark == stamp.replace(tzinfo=dt.UTC)


def test_a_row_committed_late_with_an_older_stamp_inside_the_overlap_is_still_published(world):
    poller = poller_for(world)
    poller.start(from_start=False)
    stamp = later(1)
    world.insert_customer("C1", at=stamp)
    assert poller.poll() == 1  # the watermark is now `stamp`
    # a transaction that stamped its row 3 s before, but committed only now
    world.insert_customer("C2", at=stamp - dt.timedelta(seconds=3))
    poller.poll()
    assert [r.record_key for r in rows(world)] == ["C1", "C2"]


def test_limit_a_row_committed_later_than_the_overlap_with_an_older_stamp_is_missed(world):
    # the documented limit of polling: a stamp older than (watermark - overlap) is never seen;
    # a longer --overlap (or `tandem sync --all`) is the remedy
    poller = poller_for(world)
    poller.start(from_start=False)
    stamp = later(1)
    world.insert_customer("C1", at=stamp)
    assert poller.poll() == 1
    world.insert_customer("C2", at=stamp - OVERLAP - dt.timedelta(seconds=5))
    poller.poll()
    assert [r.record_key for r in rows(world)] == ["C1"]
    # with a wider window the same row is found
    poller_for(world, overlap=dt.timedelta(minutes=1)).poll()
    assert [r.record_key for r in rows(world)] == ["C1", "C2"]


def test_limit_a_deleted_row_leaves_nothing_to_poll(world):
    _customers(world, "C1", at=later(-10))
    poller = poller_for(world)
    poller.start(from_start=False)
    world.delete("erp", "customer", "C1")
    assert poller.poll() == 0
    assert rows(world) == []


def test_the_watermark_survives_a_restart_and_polling_resumes(world):
    _customers(world, "C1", "C2", at=later(-10))
    first = poller_for(world)
    first.start(from_start=True)
    assert first.poll() == 2
    world.edit("erp", "customer", "C2", at=later(1), city="Odense")
    world.insert_customer("C3", at=later(2))
    # a new process: start() keeps the stored watermark, it does not begin "now" again
    second = poller_for(world)
    second.start(from_start=False)
    second.poll()
    assert [r.record_key for r in rows(world)] == ["C1", "C2", "C2", "C3"]
    restarted_from_start = poller_for(world)
    restarted_from_start.start(from_start=True)  # --from-start again does not rewind a known table
    restarted_from_start.poll()
    assert len(rows(world)) == 4


def test_a_table_polled_from_the_start_while_empty_is_not_restarted_at_now(world):
    first = poller_for(world)
    first.start(from_start=True)
    assert first.poll() == 0  # nothing yet: no version seen, no moment to keep
    world.insert_customer("C1", at=later(-60))  # arrives (with its own stamp) before the next start
    second = poller_for(world)
    second.start(from_start=False)
    assert second.poll() == 1
    assert [r.record_key for r in rows(world)] == ["C1"]


def test_several_mappings_of_one_table_poll_it_once(world):
    data = yaml.safe_load(world.text)
    data["mappings"]["CUSTOMER NAMES"] = {
        "erp": {"table": "customer", "key": "no", "version": "modified"},
        "crm": {"table": "account", "key": "accountid", "version": "modifiedon"},
        "direction": "erp->crm",
        "fields": [{"erp": "name", "crm": "name"}],
    }
    configuration = load_text(yaml.safe_dump(data, sort_keys=False), "mappings.yaml")
    watched = targets(configuration.mappings)
    assert sorted((t.system, t.side.table) for t in watched) == [
        ("crm", "account"),
        ("crm", "systemuser"),
        ("erp", "customer"),
        ("erp", "salesperson"),
    ]
    poller = poller_for(world, watched, configuration=configuration)
    poller.start(from_start=False)
    world.insert_customer("C1", at=later(1))
    assert poller.poll() == 1  # one event for the row ...
    found = rows(world)
    # ... recorded once per mapping that uses the table
    assert sorted(r.mapping for r in found) == ["CUSTOMER", "CUSTOMER NAMES"]
    assert len({r.event_id for r in found}) == 1


def test_many_rows_are_published_in_pages(world):
    numbers = [f"C{i:05d}" for i in range(2500)]
    _customers(world, *numbers, at=now())
    poller = poller_for(
        world, [t for t in targets(world.configuration.mappings) if t.side.table == "customer"]
    )
    poller.start(from_start=True)
    assert poller.poll() == 2500
    assert len(rows(world)) == 2500
    assert poller.poll() == 2500  # all in the overlap of the newest stamp: published again ...
    assert len(rows(world)) == 2500  # ... and dropped by the inbox as duplicates
