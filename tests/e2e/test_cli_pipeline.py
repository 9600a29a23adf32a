"""The pipeline commands: `tandem publish`, `tandem events ...` and `tandem replay --events`.

Most tests run the command through click's CliRunner against a world of tests/factories.py, with the
embedded bus (no TANDEM_BUS_URL): what was published is read back from the store's inbox. The replay of
past events runs the real `tandem` commands as subprocesses next to a real `tandem worker`.
Exit codes (README): 0 done, 1 refused or failed, 2 usage or configuration, 3 unreachable.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
import yaml

from tests import services
from tests.pipeline import TANDEM, pipeline


def line(**fields: Any) -> str:
    return json.dumps({"system": "erp", "table": "customer", **fields})


# --- tandem publish ------------------------------------------------------------------------------------


def test_publish_keys_puts_one_inbox_row_per_key(tandem):
    result = tandem("publish", "erp", "customer", "C1", "C2")
    assert result.exit_code == 0, result.output
    assert "2 events published to the embedded inbox" in result.stdout
    rows = tandem.inbox.rows()
    assert [(r.mapping, r.system, r.table_name, r.record_key, r.op) for r in rows] == [
        ("CUSTOMER", "erp", "customer", "C1", "upsert"),
        ("CUSTOMER", "erp", "customer", "C2", "upsert"),
    ]
    assert all(r.state == "received" and r.published_at is not None for r in rows)


def test_publish_json_reports_ids_and_what_the_inbox_did(tandem):
    data = tandem.json("publish", "crm", "account", "0b7c3a52-6f0e-4d7e-9a51-3d1f0c2e9a01")
    assert set(data) == {"published", "rejected", "ids", "accepted", "duplicates", "unmapped", "parked"}
    assert (data["published"], data["accepted"], data["duplicates"], data["unmapped"]) == (1, 1, 0, 0)
    assert data["rejected"] == [] and data["parked"] == []
    assert data["ids"] == [r.event_id for r in tandem.inbox.rows()]


def test_publish_op_delete(tandem):
    assert tandem("publish", "crm", "account", "A1", "--op", "delete").exit_code == 0
    (row,) = tandem.inbox.rows()
    assert (row.system, row.record_key, row.op) == ("crm", "A1", "delete")


def test_publish_refuses_other_ops(tandem):
    result = tandem("publish", "erp", "customer", "C1", "--op", "rescan")
    assert result.exit_code == 2
    assert "Invalid value for '--op'" in result.output
    assert tandem.inbox.rows() == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give SYSTEM TABLE KEY..."),
        (("erp",), "give SYSTEM TABLE KEY..."),
        (("erp", "customer"), "give SYSTEM TABLE KEY..."),
        (("erp", "customer", "C1", "--file", "-"), "give either SYSTEM TABLE KEY... or --file, not both"),
        (
            ("erp", "customer", "C\x01"),
            "invalid event: key: Value error, must not contain control characters",
        ),
        (("erp", "customer", "x" * 501), "invalid event: key: String should have at most 500"),
    ],
)
def test_publish_usage_errors_exit_2_and_publish_nothing(tandem, args, message):
    result = tandem("publish", *args, input="")
    assert result.exit_code == 2
    assert message in result.output
    assert tandem.inbox.rows() == []


def test_publish_file_publishes_good_lines_and_reports_bad_ones(tandem, tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_text(
        "\n".join(
            [
                line(key="C1"),
                "{not json",
                "",
                line(key="C2", op="delete"),
                line(key=5),
                "   ",
                line(key="C3", colour="blue"),
                line(key="C4", occurred_at="2026-01-05T09:00:00Z"),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    data = tandem.json("publish", "--file", str(events), code=1)
    assert data["published"] == 3
    assert [r.split(":")[0] for r in data["rejected"]] == ["line 2", "line 5", "line 7"]
    assert "not JSON" in data["rejected"][0]
    assert "key: Input should be a valid string" in data["rejected"][1]
    assert "colour: unknown field" in data["rejected"][2]
    assert [(r.record_key, r.op) for r in tandem.inbox.rows()] == [
        ("C1", "upsert"),
        ("C2", "delete"),
        ("C4", "upsert"),
    ]


def test_publish_file_text_output_lists_the_rejected_lines(tandem, tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_text(line(key="C1") + "\n[1, 2]\n", encoding="utf-8")
    result = tandem("publish", "--file", str(events))
    assert result.exit_code == 1
    assert "1 events published to the embedded inbox" in result.stdout
    assert "rejected: line 2: an event is a JSON object, not list" in result.stdout


def test_publish_file_from_standard_input(tandem):
    text = line(key="C1", id="evt-1") + "\n" + line(key="C1", id="evt-1") + "\n" + line(key="C2") + "\n"
    data = tandem.json("publish", "--file", "-", input=text)
    assert (data["published"], data["accepted"], data["duplicates"]) == (3, 2, 1)
    assert tandem.inbox.rows()[0].event_id == "evt-1"


def test_publish_an_empty_file_publishes_nothing(tandem):
    data = tandem.json("publish", "--file", "-", input="\n\n")
    assert data["published"] == 0 and data["rejected"] == []


def test_publish_a_missing_file_is_a_usage_error(tandem, tmp_path):
    result = tandem("publish", "--file", str(tmp_path / "nosuch.jsonl"))
    assert result.exit_code == 2
    assert "nosuch.jsonl" in result.output


def test_publish_for_an_unknown_system_parks_the_event(tandem):
    data = tandem.json("publish", "sales", "order", "SO1")
    assert (data["published"], data["accepted"]) == (1, 0)
    assert len(data["parked"]) == 1
    assert tandem.inbox.rows() == []
    (parked,) = tandem.inbox.invalid()
    assert parked.id == data["parked"][0]
    assert parked.reason == "unknown system 'sales' (known: crm, erp)"
    assert parked.source == "cli" and parked.routing_key == "sales.order.upsert"
    text = tandem("publish", "sales", "order", "SO2")
    assert "1 parked (see `tandem events invalid`)" in text.stdout


def test_publish_for_a_table_no_mapping_uses_is_counted_not_recorded(tandem):
    data = tandem.json("publish", "erp", "item", "1001", "1002")
    assert (data["published"], data["accepted"], data["unmapped"]) == (2, 0, 2)
    assert tandem.inbox.rows() == [] and tandem.inbox.invalid() == []
    text = tandem("publish", "erp", "item", "1001")
    assert text.exit_code == 0
    assert "1 for tables no mapping uses" in text.stdout


def test_publish_with_an_unreachable_store_exits_3(tandem):
    result = tandem(
        "publish", "erp", "customer", "C1", TANDEM_DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:1/x"
    )
    assert result.exit_code == 3
    assert "the coupling store is unavailable" in result.output


@pytest.mark.slow
def test_publish_with_an_unreachable_bus_exits_3(tandem):
    # after the publisher's bounded retries (a few seconds): one clear line, no traceback
    result = tandem("publish", "erp", "customer", "C1", TANDEM_BUS_URL="amqp://guest:guest@127.0.0.1:1//")
    assert result.exit_code == 3
    assert "the bus is unavailable" in result.output
    assert "Traceback" not in result.output


@pytest.mark.rabbitmq
def test_publish_to_the_bus_uses_the_topic_exchange_and_routing_key(tandem):
    from kombu import Connection, Exchange, Queue

    services.need("RabbitMQ", services.RABBITMQ, 5672)
    namespace = services.unique("t").replace("_", "-")
    exchange = Exchange(f"{namespace}.changes", type="topic", durable=True)
    audit = Queue(f"{namespace}.audit", exchange, routing_key="erp.customer.*", auto_delete=True)
    with Connection(services.RABBITMQ) as connection:
        channel = connection.channel()
        bound = audit(channel)
        exchange(channel).declare()
        bound.declare()
        try:
            data = tandem.json(
                "publish",
                "erp",
                "customer",
                "C1",
                "--op",
                "delete",
                TANDEM_BUS_URL=services.RABBITMQ,
                TANDEM_NAMESPACE=namespace,
            )
            assert (data["published"], data["accepted"], data["parked"]) == (1, None, None)
            message = bound.get(accept=["json"])
            assert message is not None
            assert message.delivery_info["exchange"] == f"{namespace}.changes"
            assert message.delivery_info["routing_key"] == "erp.customer.delete"
            assert message.content_type == "application/json"
            body = message.payload
            assert body["id"] == data["ids"][0]
            assert {k: body[k] for k in ("version", "system", "table", "key", "op", "source")} == {
                "version": 1,
                "system": "erp",
                "table": "customer",
                "key": "C1",
                "op": "delete",
                "source": "cli",
            }
            assert "occurred_at" not in body  # unset fields are left out
            assert tandem.inbox.rows() == []  # on a bus, the router (not the publisher) fills the inbox
        finally:
            bound.delete()
            channel.queue_delete(f"{namespace}.router")
            exchange(channel).delete()


def test_publish_with_a_broken_mapping_file_exits_2(tandem, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("systems: {}\n", encoding="utf-8")
    result = tandem("publish", "erp", "customer", "C1", config=broken)
    assert result.exit_code == 2
    assert "configuration error" in result.output


# --- tandem events -------------------------------------------------------------------------------------


def test_events_status_counts_inbox_states_and_parked_events(tandem):
    assert tandem.json("events", "status") == {"inbox": {}, "parked": 0}
    tandem("publish", "erp", "customer", "C1", "C2")
    tandem("publish", "sales", "order", "SO1")
    assert tandem.json("events", "status") == {"inbox": {"received": 2}, "parked": 1}
    result = tandem("events", "status")
    assert result.exit_code == 0
    assert "received" in result.stdout and "parked invalid" in result.stdout


def test_events_status_with_an_unreachable_store_exits_3(tandem):
    result = tandem("events", "status", TANDEM_DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:1/x")
    assert result.exit_code == 3


def test_events_invalid_lists_parked_events_with_their_reason(tandem):
    assert tandem.json("events", "invalid") == []
    tandem("publish", "sales", "order", "SO1")
    tandem.inbox.park("not JSON: Expecting value", b"{broken", "bus", "erp.customer.upsert")
    listed = tandem.json("events", "invalid")
    assert [(e["source"], e["state"], e["routing_key"]) for e in listed] == [
        ("cli", "parked", "sales.order.upsert"),
        ("bus", "parked", "erp.customer.upsert"),
    ]
    assert listed[1]["reason"] == "not JSON: Expecting value" and listed[1]["body"] == "{broken"
    assert set(listed[0]) == {"id", "received_at", "source", "routing_key", "reason", "body", "state"}
    text = tandem("events", "invalid")
    assert "2 parked events" in text.stdout and "unknown system 'sales'" in text.stdout


def test_events_dismiss_closes_parked_events(tandem):
    tandem("publish", "sales", "order", "SO1", "SO2")
    first, second = (e["id"] for e in tandem.json("events", "invalid"))
    result = tandem("events", "dismiss", str(first))
    assert result.exit_code == 0 and "1 dismissed" in result.stdout
    assert [e["id"] for e in tandem.json("events", "invalid")] == [second]
    everything = tandem.json("events", "invalid", "--all")
    assert [(e["id"], e["state"]) for e in everything] == [(first, "dismissed"), (second, "parked")]
    assert tandem.json("events", "status")["parked"] == 1


def test_events_dismiss_of_an_unknown_id_exits_1_and_dismisses_nothing(tandem):
    tandem("publish", "sales", "order", "SO1")
    (parked,) = tandem.json("events", "invalid")
    result = tandem("events", "dismiss", str(parked["id"]), "999")
    assert result.exit_code == 1
    assert "no parked event with id 999" in result.output
    assert [e["state"] for e in tandem.json("events", "invalid", "--all")] == ["parked"]


def test_events_dismiss_needs_ids(tandem):
    result = tandem("events", "dismiss")
    assert result.exit_code == 2
    assert tandem("events", "dismiss", "abc").exit_code == 2


@pytest.mark.parametrize("args", [(), ("1", "--all")])
def test_events_replay_needs_ids_or_all_not_both(tandem, args):
    result = tandem("events", "replay", *args)
    assert result.exit_code == 2
    assert "give the ids of parked events" in result.output


def test_events_replay_of_a_still_invalid_event_exits_1_and_keeps_it_parked(tandem):
    parked = tandem.inbox.park("not JSON: Expecting value", b"{broken", "bus", "erp.customer.upsert")
    tandem("publish", "sales", "order", "SO1")
    result = tandem("events", "replay", "--all")
    assert result.exit_code == 1
    assert f"event {parked} is still invalid: not JSON" in result.stdout
    assert "(unknown system)" in result.stdout
    assert "0 replayed, 2 still invalid" in result.stdout
    assert [e["state"] for e in tandem.json("events", "invalid", "--all")].count("parked") == 2
    assert tandem.inbox.rows() == []


def _renamed(text: str, old: str, new: str) -> str:
    """The mapping file with system `old` called `new` (its URL unchanged)."""

    def rename(value: Any) -> Any:
        if isinstance(value, dict):
            return {(new if k == old else k): rename(v) for k, v in value.items()}
        if isinstance(value, list):
            return [rename(v) for v in value]
        if isinstance(value, str) and "->" in value:
            return "->".join(new if part == old else part for part in value.split("->"))
        return value

    return yaml.safe_dump(rename(yaml.safe_load(text)), sort_keys=False)


def test_events_replay_accepts_parked_events_once_the_mapping_file_knows_their_system(
    tandem, world, tmp_path
):
    # the mapping file calls the CRM "dynamics"; the senders say "crm": their events are parked
    old = tmp_path / "old.yaml"
    old.write_text(_renamed(world.text, "crm", "dynamics"), encoding="utf-8")
    result = tandem("publish", "crm", "account", "A1", "A2", "--json", config=old)
    assert result.exit_code == 0, result.output
    ids = json.loads(result.stdout)["parked"]
    assert len(ids) == 2 and tandem.inbox.rows() == []
    # fixed: the file says "crm" again (the default config of this world); replay one, then the rest
    one = tandem("events", "replay", str(ids[0]))
    assert one.exit_code == 0, one.output
    assert "1 replayed, 0 still invalid" in one.stdout
    assert [(r.mapping, r.system, r.record_key) for r in tandem.inbox.rows()] == [("CUSTOMER", "crm", "A1")]
    rest = tandem("events", "replay", "--all")
    assert "1 replayed, 0 still invalid" in rest.stdout
    assert [r.record_key for r in tandem.inbox.rows()] == ["A1", "A2"]
    assert tandem.json("events", "invalid") == []
    assert {e["state"] for e in tandem.json("events", "invalid", "--all")} == {"replayed"}
    again = tandem("events", "replay", "--all")  # nothing parked any more: nothing to do
    assert again.exit_code == 0 and "0 replayed, 0 still invalid" in again.stdout
    assert len(tandem.inbox.rows()) == 2
    # an id that is no longer parked (replayed above) or never was: refused, nothing replayed
    twice = tandem("events", "replay", str(ids[0]), "999999")
    assert twice.exit_code == 1
    assert f"no parked event with id {ids[0]}, 999999; nothing was replayed" in twice.output
    assert len(tandem.inbox.rows()) == 2


def test_a_replayed_event_is_deduplicated_by_its_id(tandem, world, tmp_path):
    old = tmp_path / "old.yaml"
    old.write_text(_renamed(world.text, "crm", "dynamics"), encoding="utf-8")
    text = line(key="A1", id="evt-a1").replace('"erp"', '"crm"').replace('"customer"', '"account"')
    tandem("publish", "--file", "-", input=text + "\n", config=old)
    tandem("publish", "--file", "-", input=text + "\n")  # sent again, after the fix: accepted now
    assert [r.event_id for r in tandem.inbox.rows()] == ["evt-a1"]
    result = tandem("events", "replay", "--all")
    assert result.exit_code == 0 and "1 replayed" in result.stdout
    assert [r.event_id for r in tandem.inbox.rows()] == ["evt-a1"]  # the same event: no second row


# --- tandem replay --events -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--events",), "--events needs --since"),
        (("--events", "--since", "yesterday"), "is not a duration like 30s, 15m, 2h or 7d"),
        (("--events", "--since", "1h", "--until", "soon"), "is not a duration"),
        (("--events", "--since", "1h", "--mapping", "NOSUCH"), "NOSUCH"),
    ],
)
def test_replay_events_usage_errors_exit_2(tandem, args, message):
    result = tandem("replay", *args)
    assert result.exit_code == 2
    assert message in result.output


def test_replay_events_queues_each_record_once_and_skips_rescans(tandem):
    tandem("publish", "erp", "customer", "C1", "C2")
    tandem("publish", "erp", "customer", "C1")
    tandem(
        "publish",
        "--file",
        "-",
        input=line(key="*", op="rescan", since="2026-01-05T09:00:00Z") + "\n",
    )
    before = len(tandem.inbox.rows())
    dry = tandem("replay", "--events", "--since", "1h", "--dry-run")
    assert dry.exit_code == 0 and "2 records would be synced again" in dry.stdout
    assert len(tandem.inbox.rows()) == before
    result = tandem("replay", "--events", "--since", "1h")
    assert result.exit_code == 0
    assert "2 records queued to sync again" in result.stdout
    added = tandem.inbox.rows()[before:]
    assert sorted(r.record_key for r in added) == ["C1", "C2"]
    assert all(r.event_id.startswith("replay-") and r.op == "upsert" for r in added)


def test_replay_events_json(tandem):
    tandem("publish", "erp", "customer", "C1")
    assert tandem.json("replay", "--events", "--since", "1h", "--dry-run") == {"records": 1}
    assert tandem.json("replay", "--events", "--since", "1h") == {"queued": 1}


def test_replay_events_outside_the_window_queues_nothing(tandem):
    tandem("publish", "erp", "customer", "C1")
    result = tandem("replay", "--events", "--since", "3h", "--until", "2h")
    assert result.exit_code == 0 and "0 records queued" in result.stdout
    future = tandem("replay", "--events", "--since", "2999-01-01T00:00:00")
    assert "0 records queued" in future.stdout
    assert len(tandem.inbox.rows()) == 1


def test_replay_without_dead_letters_lists_none(tandem):
    assert tandem.json("replay") == []


@pytest.mark.slow
def test_replay_events_with_a_running_worker_syncs_the_present(tmp_path):
    from workers.usecases.couple import create_and_couple

    def run(*args: str, code: int = 0) -> str:
        done = subprocess.run(
            [TANDEM, *args], env=p.env, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == code, done.stdout + done.stderr
        return done.stdout

    with pipeline("embedded", tmp_path) as p:
        p.world.insert_customer("C1", phone="+45 1111")
        assert create_and_couple(p.world.rt, "CUSTOMER", "erp", ["C1"]).counts.inserted == 1
        account = p.world.counterpart("CUSTOMER", "erp", "C1")
        assert account is not None
        p.start_worker()
        p.world.edit("erp", "customer", "C1", phone="+45 2222")
        published = json.loads(run("publish", "erp", "customer", "C1", "--json"))
        assert published["accepted"] == 1
        p.wait_applied(1)
        assert p.world.account(account)["telephone"] == "+45 2222"
        # a change that no event reported (its event was lost): replaying the window reads the present
        p.world.edit("erp", "customer", "C1", city="Odense")
        assert "1 records would be synced again" in run("replay", "--events", "--since", "1h", "--dry-run")
        assert "1 records queued to sync again" in run("replay", "--events", "--since", "1h")
        p.wait_applied(2)
        assert p.world.account(account)["city"] == "Odense"
        assert json.loads(run("events", "status", "--json")) == {"inbox": {"done": 2}, "parked": 0}
        # replaying again changes nothing that was applied already
        snapshot = p.world.snapshot()
        # the original event and the replayed one name the same record: it is queued once
        assert "1 records queued" in run("replay", "--events", "--since", "1h", "--mapping", "CUSTOMER")
        p.wait_applied(3)
        after = p.world.snapshot()
        assert after["erp.customer"] == snapshot["erp.customer"]
        assert after["crm.account"] == snapshot["crm.account"]
