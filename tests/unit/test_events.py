"""The change-event envelope: what parse() accepts, what it refuses (with which reason), and the id rules.

Bad input is the main subject: every field with a wrong type, unknown fields, control characters, empty
and oversized values, non-objects, broken bytes, deep nesting. A hypothesis fuzz test checks the one
promise every caller relies on: parse() returns an Event or raises InvalidEvent, nothing else.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.events import EXCHANGE, MAX_BODY_BYTES, Event, InvalidEvent, change, parse, stable_id

MINIMAL = {"system": "erp", "table": "customer", "key": "C00001"}
FULL = {
    "version": 1,
    "id": "0b7c3a52-6f0e-4d7e-9a51-3d1f0c2e9a01",
    "system": "crm",
    "table": "account",
    "key": "5e4f2c1a-0000-4b7e-9d0a-7d1f3c2b6a10",
    "op": "delete",
    "occurred_at": "2026-01-05T09:00:00Z",
    "published_at": "2026-01-05T09:00:01.250+00:00",
    "fields": ["name", "telephone1"],
    "payload": {"message": "Delete", "depth": 1, "nested": {"list": [1, 2.5, None, True, "x"]}},
    "source": "webhook:dataverse",
}


def with_(**changes: Any) -> dict[str, Any]:
    return {**MINIMAL, **changes}


def reason(body: Any) -> str:
    with pytest.raises(InvalidEvent) as caught:
        parse(body)
    return str(caught.value)


# --- valid events ------------------------------------------------------------------------------------


def test_a_minimal_event_gets_the_defaults():
    event = parse(MINIMAL)
    assert (event.system, event.table, event.key) == ("erp", "customer", "C00001")
    assert event.version == 1
    assert event.op == "upsert"
    assert uuid.UUID(event.id).version == 4  # a fresh id when the sender gives none
    assert event.occurred_at is None and event.published_at is None and event.since is None
    assert event.fields is None and event.payload is None and event.source is None
    assert event.body() == {"version": 1, "id": event.id, **MINIMAL, "op": "upsert"}


def test_two_minimal_events_get_different_ids():
    assert parse(MINIMAL).id != parse(MINIMAL).id


def test_a_full_event_keeps_every_field():
    event = parse(FULL)
    assert event.id == FULL["id"]
    assert event.op == "delete"
    assert event.occurred_at == dt.datetime(2026, 1, 5, 9, 0, 0, tzinfo=dt.UTC)
    assert event.published_at == dt.datetime(2026, 1, 5, 9, 0, 1, 250000, tzinfo=dt.UTC)
    assert event.fields == ["name", "telephone1"]
    assert event.payload == FULL["payload"]
    assert event.source == "webhook:dataverse"
    assert event.routing_key == "crm.account.delete"


def test_the_body_round_trips_through_json():
    event = parse(FULL)
    again = parse(json.dumps(event.body()))
    assert again == event
    assert event.body()["occurred_at"] == "2026-01-05T09:00:00Z"


def test_the_body_leaves_out_unset_fields():
    body = parse(with_(op="delete")).body()
    assert set(body) == {"version", "id", "system", "table", "key", "op"}


def test_events_are_frozen():
    event = parse(MINIMAL)
    with pytest.raises(ValueError):
        event.key = "other"  # type: ignore[misc]


def test_bytes_str_bytearray_memoryview_and_dict_are_all_accepted():
    text = json.dumps(with_(id="same"))
    forms: list[Any] = [
        text,
        text.encode(),
        bytearray(text.encode()),
        memoryview(text.encode()),
        json.loads(text),
    ]
    events = [parse(form) for form in forms]
    assert all(event == events[0] for event in events)


def test_utf8_text_in_keys_survives_bytes_and_str():
    body = with_(key="Ærø Cykler ÅpS — 株式会社")
    assert parse(json.dumps(body, ensure_ascii=False).encode("utf-8")).key == body["key"]
    assert parse(json.dumps(body)).key == body["key"]


def test_json_in_utf16_with_a_bom_is_decoded():
    # json.loads detects UTF-16/32 in bytes; a sender on Windows may post those
    assert parse(json.dumps(MINIMAL).encode("utf-16")).key == "C00001"


@pytest.mark.parametrize("op", ["upsert", "delete"])
def test_upsert_and_delete_need_no_since(op):
    assert parse(with_(op=op)).op == op


def test_a_rescan_carries_since_and_key_star():
    event = parse(with_(op="rescan", key="*", since="2026-01-05T08:00:00+01:00"))
    assert event.since == dt.datetime(2026, 1, 5, 7, 0, tzinfo=dt.UTC)
    assert event.routing_key == "erp.customer.rescan"


def test_a_rescan_without_since_is_refused():
    assert reason(with_(op="rescan", key="*")) == "a rescan event needs `since`"
    assert reason(with_(op="rescan", key="*", since=None)) == "a rescan event needs `since`"


def test_a_moment_given_as_unix_seconds_is_accepted():
    assert parse(with_(occurred_at=1_700_000_000)).occurred_at == dt.datetime.fromtimestamp(
        1_700_000_000, dt.UTC
    )


@pytest.mark.parametrize("name", ["occurred_at", "published_at", "since"])
def test_a_moment_without_an_offset_is_utc(name):
    # a PostgreSQL store would otherwise read a naive moment in its session's time zone
    event = parse(with_(op="rescan", **{"since": "2026-01-05T08:00:00Z", name: "2026-01-05T09:00:00"}))
    assert getattr(event, name) == dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
    assert parse(with_(**{name: "2026-01-05T09:00:00+01:00"})).model_dump()[name].utcoffset() == dt.timedelta(
        hours=1
    )


def test_an_event_id_of_500_characters_is_the_limit():
    assert parse(with_(id="x" * 500)).id == "x" * 500
    assert "id:" in reason(with_(id="x" * 501))


def test_payload_just_under_the_limit_is_accepted():
    filler = "y" * (MAX_BODY_BYTES - 100)
    assert parse({**MINIMAL, "payload": {"x": filler}}).payload == {"x": filler}


# --- type errors, field by field --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("system", 5),
        ("system", None),
        ("system", ["erp"]),
        ("system", {"name": "erp"}),
        ("system", True),
        ("table", 1.5),
        ("table", None),
        ("key", 5),
        ("key", None),
        ("key", ["C1"]),
        ("key", False),
        ("id", 17),
        ("id", None),
        ("id", {"uuid": "x"}),
        ("op", "explode"),
        ("op", "UPSERT"),
        ("op", None),
        ("op", 1),
        ("version", 2),
        ("version", "1"),
        ("version", 0),
        ("version", None),
        ("occurred_at", "yesterday"),
        ("occurred_at", "2026-13-01T00:00:00"),
        ("occurred_at", ["2026-01-01"]),
        ("occurred_at", {}),
        ("published_at", "soon"),
        ("since", "last week"),
        ("fields", "name"),
        ("fields", [1, 2]),
        ("fields", {"name": True}),
        ("fields", [None]),
        ("payload", "text"),
        ("payload", [1, 2]),
        ("payload", 5),
        ("source", 5),
        ("source", ["api"]),
    ],
)
def test_a_wrong_type_names_the_field(name, value):
    text = reason(with_(**{name: value}))
    assert text.startswith(f"{name}")  # "<field>: <what is wrong>" (or "<field>.<index>: …")
    assert ":" in text


@pytest.mark.parametrize("name", ["system", "table", "key"])
def test_a_missing_required_field_is_named(name):
    body = dict(MINIMAL)
    del body[name]
    assert reason(body) == f"{name}: Field required"


def test_several_problems_are_listed_together_up_to_five():
    text = reason({"key": 5, "op": "x", "version": 3, "fields": "f", "payload": 1, "source": 2})
    assert len(text.split("; ")) == 5


def test_an_unknown_field_is_refused_by_name():
    assert reason(with_(colour="blue")) == "colour: unknown field"


def test_a_misspelled_field_is_refused_not_ignored():
    # `occured_at` (one r) would otherwise silently drop the sender's moment
    assert "occured_at: unknown field" in reason(with_(occured_at="2026-01-01T00:00:00Z"))


# --- control characters, empty and oversized strings ---------------------------------------------


@pytest.mark.parametrize("name", ["system", "table", "key", "id"])
@pytest.mark.parametrize("character", ["\x00", "\n", "\r", "\t", "\x1b", "\x1f"])
def test_control_characters_are_refused_in_names_and_ids(name, character):
    assert (
        reason(with_(**{name: f"a{character}b"}))
        == f"{name}: Value error, must not contain control characters"
    )


@pytest.mark.parametrize("name", ["system", "table", "key", "id"])
def test_an_empty_string_is_refused(name):
    assert reason(with_(**{name: ""})).startswith(f"{name}: String should have at least 1 character")


@pytest.mark.parametrize("name", ["system", "table", "key"])
def test_a_name_longer_than_500_characters_is_refused(name):
    assert parse(with_(**{name: "n" * 500})) is not None
    assert reason(with_(**{name: "n" * 501})).startswith(f"{name}: String should have at most 500")


def test_a_source_longer_than_200_characters_is_refused():
    assert parse(with_(source="s" * 200)).source == "s" * 200
    assert reason(with_(source="s" * 201)).startswith("source: String should have at most 200")


def test_too_many_fields_or_a_too_long_field_name_is_refused():
    assert parse(with_(fields=["f"] * 1000)).fields == ["f"] * 1000
    assert reason(with_(fields=["f"] * 1001)).startswith("fields: List should have at most 1000")
    assert reason(with_(fields=["f" * 501])).startswith("fields.0: String should have at most 500")


def test_a_lone_surrogate_in_a_key_is_refused():
    # valid JSON (\ud800 is an escape), but no database can store it as UTF-8 text
    assert "key:" in reason(b'{"system": "erp", "table": "customer", "key": "\\ud800"}')


# --- oversized bodies and payloads ------------------------------------------------------------------


def test_an_oversized_body_is_refused_before_it_is_decoded():
    body = b"{" + b" " * MAX_BODY_BYTES + b"}"  # not even JSON: the size is checked first
    assert reason(body) == f"event of {len(body)} bytes is larger than {MAX_BODY_BYTES}"
    assert reason(body.decode()) == f"event larger than {MAX_BODY_BYTES} bytes"


def test_the_size_of_text_counts_its_utf8_bytes_not_its_characters():
    # 100k characters of three UTF-8 bytes each: 300 kB on the wire
    body = json.dumps({**MINIMAL, "payload": {"x": "€" * 100_000}}, ensure_ascii=False)
    assert len(body) < MAX_BODY_BYTES < len(body.encode())
    assert "larger than" in reason(body)


def test_an_oversized_payload_is_refused_even_when_already_decoded():
    assert (
        reason({**MINIMAL, "payload": {"x": "y" * 300_000}}) == f"payload larger than {MAX_BODY_BYTES} bytes"
    )


def test_a_payload_nested_too_deep_to_serialize_is_refused():
    # it would be accepted here and then fail when parked or published: refuse it with a reason
    payload: Any = 1
    for _ in range(400):
        payload = {"a": payload}
    assert "payload" in reason({**MINIMAL, "payload": payload})


def test_a_payload_that_is_not_json_is_refused():
    assert "payload" in reason({**MINIMAL, "payload": {"when": object()}})


# --- not JSON, not an object --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b"{not json",
        b'{"system": "erp",}',
        b"\x80\x81 binary",
        b"\xff\xfe\x00",
        "{'single': 1}",
        "nul\x00",
    ],
)
def test_text_that_is_not_json_is_refused(body):
    assert reason(body).startswith("not JSON")


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b"[1, 2, 3]", "list"),
        (b'"an event"', "str"),
        (b"42", "int"),
        (b"4.2", "float"),
        (b"true", "bool"),
        (b"null", "NoneType"),
        ([MINIMAL], "list"),
        (42, "int"),
        (None, "NoneType"),
    ],
)
def test_a_body_that_is_not_an_object_is_refused(body, kind):
    assert reason(body) == f"an event is a JSON object, not {kind}"


def test_deeply_nested_json_is_refused_not_a_crash():
    # within the size limit, but deeper than the JSON decoder's recursion limit
    assert reason(b"[" * 100_000).startswith("not JSON")
    assert reason("{" * 50_000 + "}" * 50_000).startswith("not JSON")


def test_an_integer_with_too_many_digits_is_refused_not_a_crash():
    # Python refuses to convert more than 4300 digits (a denial-of-service guard): that is bad input
    body = b'{"system": "erp", "table": "t", "key": "k", "payload": {"n": ' + b"9" * 5000 + b"}}"
    assert reason(body).startswith("not JSON")


# --- change() and the routing key -------------------------------------------------------------------


def test_change_builds_the_same_event_as_parse():
    moment = dt.datetime(2026, 1, 5, 9, tzinfo=dt.UTC)
    event = change("erp", "customer", "C1", "delete", occurred_at=moment, fields=["name"], event_id="e1")
    assert event == parse(
        {"id": "e1", **MINIMAL, "key": "C1", "op": "delete", "occurred_at": moment, "fields": ["name"]}
    )


def test_change_turns_numeric_keys_into_text():
    assert change("erp", "item", 1001).key == "1001"


def test_change_refuses_what_parse_refuses():
    with pytest.raises(InvalidEvent, match="key: String should have at least 1 character"):
        change("erp", "customer", None)
    with pytest.raises(InvalidEvent, match="a rescan event needs `since`"):
        change("erp", "customer", "*", "rescan")
    with pytest.raises(InvalidEvent, match="table: Value error, must not contain control characters"):
        change("erp", "cust\nomer", "C1")


@pytest.mark.parametrize(
    ("system", "table", "op", "expected"),
    [
        ("erp", "customer", "upsert", "erp.customer.upsert"),
        ("crm", "account", "delete", "crm.account.delete"),
        ("erp", "payment_terms", "upsert", "erp.payment_terms.upsert"),
    ],
)
def test_the_routing_key_is_system_table_op(system, table, op, expected):
    assert change(system, table, "k", op).routing_key == expected


def test_the_exchange_is_the_topic_exchange_tandem_changes():
    assert EXCHANGE == "tandem.changes"


# --- stable ids ---------------------------------------------------------------------------------------


def test_stable_id_is_the_same_for_the_same_parts():
    first = stable_id("poll", "erp", "customer", "C1", "2026-01-05T09:00:00")
    assert first == stable_id("poll", "erp", "customer", "C1", "2026-01-05T09:00:00")
    assert uuid.UUID(first).version == 5


def test_stable_id_is_fixed_across_releases():
    # ids already stored in inboxes must keep matching: this value may never change
    assert stable_id("poll", "erp", "customer", "C1", 1) == str(
        uuid.uuid5(uuid.UUID("5f0f5b1e-4f7a-4c8e-9d0a-7d1f3c2b6a10"), "poll\x1ferp\x1fcustomer\x1fC1\x1f1")
    )


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (("erp", "customer", "C1"), ("erp", "customer", "C2")),
        (("erp", "customer", "C1"), ("crm", "customer", "C1")),
        (("a", "bc"), ("ab", "c")),  # the separator keeps the parts apart
        (("a", "b"), ("a", "b", "")),
        (("C1", 1), ("C1", 2)),
    ],
)
def test_stable_id_differs_when_any_part_differs(left, right):
    assert stable_id(*left) != stable_id(*right)


def test_stable_id_is_a_valid_event_id():
    event_id = stable_id("x")
    assert change("erp", "customer", "C1", event_id=event_id).id == event_id


# --- fuzz: parse returns an Event or raises InvalidEvent, never anything else -----------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=30,
)
field_names = st.sampled_from(
    [
        *("version", "id", "system", "table", "key", "op", "occurred_at", "published_at", "since"),
        *("fields", "payload", "source", "extra"),
    ]
)
field_values = st.one_of(
    json_values,
    st.sampled_from(["erp", "customer", "upsert", "delete", "rescan", "*", "", "2026-01-05T09:00:00Z", 1]),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=600),
)
envelopes = st.dictionaries(field_names, field_values, max_size=12).map(
    lambda body: {**MINIMAL, **body} if len(body) % 2 else body
)


def _either(body: Any) -> None:
    try:
        event = parse(body)
    except InvalidEvent as exc:
        assert str(exc)  # a reason is always given
        return
    assert isinstance(event, Event)
    # what was accepted can be sent on and accepted again (NaN and Infinity in a payload travel as null)
    assert parse(event.body()).body() == event.body()
    event.model_dump_json()  # and can be parked


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(envelopes)
def test_fuzz_envelope_like_objects(body):
    _either(body)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_fuzz_any_json_value(body):
    _either(body)
    _either(json.dumps(body))


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_fuzz_arbitrary_bytes(body):
    _either(body)


@settings(max_examples=300)
@given(envelopes)
def test_fuzz_encoded_envelopes_with_mangled_bytes(body):
    raw = bytearray(json.dumps(body).encode())
    if raw:
        raw[len(raw) // 2] ^= 0x80  # a flipped bit in the middle: invalid UTF-8 or a changed character
    _either(bytes(raw))
