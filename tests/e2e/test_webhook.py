"""The webhook receiver end to end: HTTP in, rows in the store's inbox out (or nothing, and why).

The starlette app from producers/webhook.py runs under starlette's TestClient with a Publisher on an
InboxBus over a real SQLite store; the sources come from a mapping file's `webhooks:` section, loaded as
`tandem webhook` loads it. Refused requests must publish nothing: each of those tests asserts an empty
inbox and no parked events. The last test runs the real `tandem webhook` command on a free port.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from adapters.demo.seed import DemoPaths, Sizes, create
from adapters.store.inbox import Inbox, InboxRow
from adapters.store.store import Store
from config.mappings import Configuration, load_text
from config.wiring import connectors_for
from producers.api import InboxBus, Publisher
from producers.webhook import KeyResolver, create_app
from tests.factories import World, build_world, databases
from tests.pipeline import TANDEM, wait_for
from tests.runner import Tandem

with warnings.catch_warnings():
    # starlette 1.x prefers httpx2 for its TestClient; httpx is what this project installs
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
HOOK_SECRET = "tandem-hmac-secret-0123456789abcdef"
DV_KEY = "dv-shared-key-0123456789abcdef"
BC_STATE = "bc-client-state-0123456789abcdef"
SECRETS = {"HOOK_SECRET": HOOK_SECRET, "DV_KEY": DV_KEY, "BC_STATE": BC_STATE}
INTEGRATION_USER = "4f2b8d9e-1c3a-4e5f-9a7b-6c8d0e1f2a3b"
ACCOUNT = "5e4f2c1a-7b3d-4b7e-9d0a-7d1f3c2b6a10"
COMPANY = "b18aed47-c385-49d2-b954-dbdf8ad71780"
SMALL = 4096  # max_body_bytes of the `small` source

WEBHOOKS = f"""
webhooks:
  events:
    kind: tandem
    auth: {{hmac: {{secret: "${{HOOK_SECRET}}"}}}}
  small:
    kind: tandem
    auth: {{hmac: {{header: X-Signature, secret: "${{HOOK_SECRET}}", algorithm: sha512}}}}
    max_body_bytes: {SMALL}
  dataverse:
    kind: dataverse
    system: crm
    auth: {{header: x-tandem-key, key: "${{DV_KEY}}"}}
    ignore_users: ["{INTEGRATION_USER}"]
  dataverse-code:
    kind: dataverse
    system: crm
    auth: {{query: code, key: "${{DV_KEY}}"}}
  bc:
    kind: business_central
    system: erp
    client_state: "${{BC_STATE}}"
    tables: {{customers: customer}}
"""


def sign(body: bytes, secret: str = HOOK_SECRET, algorithm: str = "sha256") -> str:
    return hmac.new(secret.encode(), body, getattr(hashlib, algorithm)).hexdigest()


def encode(value: Any) -> bytes:
    return json.dumps(value).encode()


def event(key: Any = "C1", **extra: Any) -> dict[str, Any]:
    return {"system": "erp", "table": "customer", "key": key, **extra}


@dataclass
class Receiver:
    client: TestClient
    inbox: Inbox
    configuration: Configuration

    def rows(self) -> list[InboxRow]:
        return self.inbox.rows()

    def nothing_published(self) -> bool:
        return self.inbox.rows() == [] and self.inbox.invalid(None) == []

    def tandem(self, body: bytes, *, source: str = "events", **headers: str) -> httpx.Response:
        """Posts our envelope, signed unless a signature header is given."""
        headers = {"content-type": "application/json", "x-tandem-signature": sign(body), **headers}
        response: httpx.Response = self.client.post(f"/hooks/{source}", content=body, headers=headers)
        return response


def _receiver(configuration: Configuration, store: Store) -> Iterator[Receiver]:
    inbox = Inbox(store.engine)
    bus = InboxBus(inbox, configuration.mappings, configuration.systems, "webhook")
    publisher = Publisher(bus, "webhook")
    connectors = connectors_for(configuration)
    app = create_app(dict(configuration.webhooks), publisher, KeyResolver(configuration.mappings, connectors))
    try:
        with TestClient(app) as client:
            yield Receiver(client, inbox, configuration)
    finally:
        for connector in connectors.values():
            connector.close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with databases("sqlite", tmp_path) as urls:
        made = build_world(urls)
        try:
            yield made
        finally:
            made.close()


@pytest.fixture
def receiver(world: World) -> Iterator[Receiver]:
    configuration = load_text(world.text + WEBHOOKS, "mappings.yaml", SECRETS)
    yield from _receiver(configuration, world.rt.store)


# --- kind tandem: HMAC of the body ----------------------------------------------------------------------


def test_a_signed_event_is_published_into_the_inbox(receiver):
    response = receiver.tandem(encode(event("C1", occurred_at="2026-01-05T09:00:00Z")))
    assert response.status_code == 202, response.text
    assert response.json() == {"published": 1, "unresolved": 0}
    (row,) = receiver.rows()
    assert (row.mapping, row.system, row.table_name, row.record_key, row.op) == (
        "CUSTOMER",
        "erp",
        "customer",
        "C1",
        "upsert",
    )
    assert row.state == "received" and row.published_at is not None


def test_a_list_of_signed_events_is_published_together(receiver):
    body = encode(
        [event("C1"), event("C2", op="delete"), {"system": "crm", "table": "account", "key": ACCOUNT}]
    )
    response = receiver.tandem(body)
    assert response.status_code == 202
    assert response.json()["published"] == 3
    assert [(r.mapping, r.record_key, r.op) for r in receiver.rows()] == [
        ("CUSTOMER", "C1", "upsert"),
        ("CUSTOMER", "C2", "delete"),
        ("CUSTOMER", ACCOUNT, "upsert"),
    ]


def test_a_signature_with_its_algorithm_prefix_and_in_upper_case_is_accepted(receiver):
    body = encode(event())
    assert receiver.tandem(body, **{"x-tandem-signature": f"sha256={sign(body)}"}).status_code == 202
    body = encode(event("C2"))
    assert receiver.tandem(body, **{"x-tandem-signature": sign(body).upper()}).status_code == 202
    assert len(receiver.rows()) == 2


def test_the_same_event_posted_twice_is_one_inbox_row(receiver):
    body = encode(event(id="evt-1"))
    assert receiver.tandem(body).status_code == 202
    assert receiver.tandem(body).status_code == 202
    assert [r.event_id for r in receiver.rows()] == ["evt-1"]


def test_a_configured_header_and_algorithm_are_used(receiver):
    body = encode(event())
    headers = {"content-type": "application/json", "X-Signature": sign(body, algorithm="sha512")}
    assert receiver.client.post("/hooks/small", content=body, headers=headers).status_code == 202
    wrong = {"content-type": "application/json", "X-Signature": sign(body)}  # sha256 where sha512 is due
    assert receiver.client.post("/hooks/small", content=body, headers=wrong).status_code == 401
    assert len(receiver.rows()) == 1


def test_a_missing_signature_is_refused(receiver):
    response = receiver.client.post(
        "/hooks/events", content=encode(event()), headers={"content-type": "application/json"}
    )
    assert response.status_code == 401
    assert response.json() == {"error": "not authenticated"}
    assert receiver.nothing_published()


@pytest.mark.parametrize(
    "signature",
    [
        "",
        "sha256=",
        "0" * 64,
        sign(b"another body"),
        sign(encode(event()), secret="wrong secret"),
        sign(encode(event()))[:-1],
        "sha256=" + sign(encode(event()))[:32],
    ],
)
def test_a_wrong_signature_is_refused(receiver, signature):
    response = receiver.tandem(encode(event()), **{"x-tandem-signature": signature})
    assert response.status_code == 401
    assert receiver.nothing_published()


def test_a_signature_with_non_ascii_bytes_is_refused_not_a_crash(receiver):
    # header bytes arrive as latin-1 text; comparing such text with compare_digest raises TypeError
    body = encode(event())
    response = receiver.client.post(
        "/hooks/events",
        content=body,
        headers=[(b"content-type", b"application/json"), (b"x-tandem-signature", b"\xff\xfe" + b"0" * 62)],
    )
    assert response.status_code == 401
    assert receiver.nothing_published()


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_a_wrong_content_type_is_refused(receiver, content_type):
    response = receiver.tandem(encode(event()), **{"content-type": content_type})
    assert response.status_code == 415
    assert content_type in response.json()["error"]
    assert receiver.nothing_published()


def test_a_missing_content_type_is_refused(receiver):
    body = encode(event())
    response = receiver.client.post("/hooks/events", content=body, headers={"x-tandem-signature": sign(body)})
    assert response.status_code == 415
    assert "missing" in response.json()["error"]


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "Application/JSON", "text/json"])
def test_json_content_types_with_parameters_or_capitals_are_accepted(receiver, content_type):
    assert receiver.tandem(encode(event()), **{"content-type": content_type}).status_code == 202


def _big_list(size: int) -> bytes:
    events = [event(f"C{i:05d}") for i in range(size // 50 + 1)]
    body = encode(events)
    assert len(body) > size
    return body


def test_an_oversized_body_is_refused_by_its_content_length(receiver):
    body = _big_list(SMALL)
    headers = {"content-type": "application/json", "X-Signature": sign(body, algorithm="sha512")}
    response = receiver.client.post("/hooks/small", content=body, headers=headers)
    assert response.status_code == 413
    assert response.json() == {"error": f"body larger than {SMALL} bytes"}
    assert receiver.nothing_published()


def test_an_oversized_body_without_a_content_length_is_refused_while_streaming(receiver):
    body = _big_list(SMALL)
    chunks = [body[i : i + 1000] for i in range(0, len(body), 1000)]
    headers = {"content-type": "application/json", "X-Signature": sign(body, algorithm="sha512")}
    request = receiver.client.build_request("POST", "/hooks/small", content=iter(chunks), headers=headers)
    assert "content-length" not in request.headers
    assert request.headers["transfer-encoding"] == "chunked"
    response = receiver.client.send(request)
    assert response.status_code == 413
    assert receiver.nothing_published()


def test_a_body_at_the_limit_is_accepted(receiver):
    body = encode([event("C1")])
    body = body[:-1] + b" " * (SMALL - len(body)) + b"]"
    assert len(body) == SMALL
    headers = {"content-type": "application/json", "X-Signature": sign(body, algorithm="sha512")}
    assert receiver.client.post("/hooks/small", content=body, headers=headers).status_code == 202


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"", b"\x80\x81\x82", b'{"system": "erp",', b"[" * 50_000, b'{"n": ' + b"9" * 5000 + b"}"],
    ids=["broken", "empty", "binary", "cut", "too deep", "huge integer"],
)
def test_malformed_json_is_refused_with_400(receiver, body):
    response = receiver.tandem(body)
    assert response.status_code == 400
    assert response.json()["error"].startswith("not JSON")
    assert receiver.nothing_published()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (event(key=5), "key:"),
        (event(op="explode"), "op:"),
        (event(colour="blue"), "colour: unknown field"),
        ({"system": "erp", "table": "customer"}, "key: Field required"),
        (event(op="rescan", key="*"), "a rescan event needs `since`"),
        (event(key="C\x001"), "control characters"),
        ("just text", "an event is a JSON object, not str"),
        (json.dumps(event()), "an event is a JSON object, not str"),  # encoded twice
        ([event(), 5], "an event is a JSON object, not int"),
        ([], "an empty list of events"),
    ],
)
def test_an_invalid_event_is_refused_and_nothing_published(receiver, body, reason):
    response = receiver.tandem(encode(body))
    assert response.status_code == 400
    assert reason in response.json()["error"]
    assert receiver.nothing_published()


def test_one_bad_event_in_a_list_refuses_the_whole_list(receiver):
    body = encode([event("C1"), event("C2"), event(key=None), event("C4")])
    response = receiver.tandem(body)
    assert response.status_code == 400
    assert "key" in response.json()["error"]
    assert receiver.nothing_published()  # not even C1 and C2, which came before it


def test_an_event_for_an_unknown_system_is_accepted_and_parked(receiver):
    response = receiver.tandem(encode([{"system": "sales", "table": "order", "key": "SO1"}, event("C1")]))
    assert response.status_code == 202
    assert [r.record_key for r in receiver.rows()] == ["C1"]
    (parked,) = receiver.inbox.invalid()
    assert parked.reason == "unknown system 'sales' (known: crm, erp)"
    assert parked.source == "webhook"
    assert parked.routing_key == "sales.order.upsert"
    assert json.loads(parked.body)["key"] == "SO1"


def test_an_event_for_a_table_no_mapping_uses_is_counted_and_dropped(receiver):
    response = receiver.tandem(encode({"system": "erp", "table": "item", "key": "1001"}))
    assert response.status_code == 202
    assert receiver.nothing_published()


# --- kind dataverse: a shared key in a header, or in the query (WebhookKey) ----------------------------


def dataverse_context(
    message: str = "Update", user: str = "0d3c2b1a-9e8f-4a7b-8c6d-5e4f3a2b1c0d"
) -> dict[str, Any]:
    target: dict[str, Any]
    if message == "Delete":
        target = {
            "__type": "EntityReference:http://schemas.microsoft.com/xrm/2011/Contracts",
            "Id": ACCOUNT,
            "KeyAttributes": [],
            "LogicalName": "account",
            "Name": None,
            "RowVersion": None,
        }
    else:
        target = {
            "__type": "Entity:http://schemas.microsoft.com/xrm/2011/Contracts",
            "Attributes": [
                {"key": "name", "value": "Contoso Ltd"},
                {"key": "accountid", "value": ACCOUNT},
                {"key": "modifiedon", "value": "/Date(1700000000000)/"},
            ],
            "EntityState": None,
            "FormattedValues": [],
            "Id": ACCOUNT,
            "KeyAttributes": [],
            "LogicalName": "account",
            "RelatedEntities": [],
            "RowVersion": "1234567",
        }
    return {
        "BusinessUnitId": "2e1c4a3b-5d6f-4e7a-8b9c-0d1e2f3a4b5c",
        "CorrelationId": "9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d",
        "Depth": 1,
        "InitiatingUserId": user,
        "InputParameters": [{"key": "Target", "value": target}],
        "MessageName": message,
        "Mode": 1,
        "OperationCreatedOn": "/Date(1700000000000)/",
        "OperationId": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
        "OrganizationId": "f1e2d3c4-b5a6-4978-8a9b-0c1d2e3f4a5b",
        "OutputParameters": [],
        "PostEntityImages": [],
        "PreEntityImages": [],
        "PrimaryEntityId": ACCOUNT,
        "PrimaryEntityName": "account",
        "SecondaryEntityName": "none",
        "Stage": 40,
        "UserId": user,
    }


@pytest.mark.parametrize(
    ("message", "op"), [("Update", "upsert"), ("Create", "upsert"), ("Delete", "delete")]
)
def test_a_dataverse_post_with_the_key_header_is_published(receiver, message, op):
    response = receiver.client.post(
        "/hooks/dataverse", json=dataverse_context(message), headers={"x-tandem-key": DV_KEY}
    )
    assert response.status_code == 202, response.text
    (row,) = receiver.rows()
    assert (row.mapping, row.system, row.table_name, row.record_key, row.op) == (
        "CUSTOMER",
        "crm",
        "account",
        ACCOUNT,
        op,
    )


@pytest.mark.parametrize(
    "headers", [{}, {"x-tandem-key": "wrong"}, {"x-tandem-key": DV_KEY[:-1]}, {"code": DV_KEY}]
)
def test_a_dataverse_post_without_the_right_key_header_is_refused(receiver, headers):
    response = receiver.client.post("/hooks/dataverse", json=dataverse_context(), headers=headers)
    assert response.status_code == 401
    assert receiver.nothing_published()


def test_a_dataverse_post_by_our_integration_user_publishes_nothing(receiver):
    response = receiver.client.post(
        "/hooks/dataverse",
        json=dataverse_context(user=INTEGRATION_USER.upper()),
        headers={"x-tandem-key": DV_KEY},
    )
    assert response.status_code == 202
    assert response.json() == {"published": 0, "unresolved": 0}
    assert receiver.nothing_published()


def test_a_dataverse_webhook_key_in_the_query_is_accepted(receiver):
    response = receiver.client.post(
        "/hooks/dataverse-code", params={"code": DV_KEY}, json=dataverse_context()
    )
    assert response.status_code == 202
    assert [r.record_key for r in receiver.rows()] == [ACCOUNT]


@pytest.mark.parametrize(
    ("params", "headers"),
    [({}, {}), ({"code": "wrong"}, {}), ({"code": ""}, {}), ({}, {"code": DV_KEY}), ({"key": DV_KEY}, {})],
)
def test_a_dataverse_webhook_key_missing_or_wrong_is_refused(receiver, params, headers):
    response = receiver.client.post(
        "/hooks/dataverse-code", params=params, headers=headers, json=dataverse_context()
    )
    assert response.status_code == 401
    assert receiver.nothing_published()


def test_a_malformed_dataverse_context_is_refused_with_its_reason(receiver):
    response = receiver.client.post(
        "/hooks/dataverse", json={"MessageName": "Update"}, headers={"x-tandem-key": DV_KEY}
    )
    assert response.status_code == 400
    assert "PrimaryEntityName" in response.json()["error"]
    assert receiver.nothing_published()


# --- kind business_central: the handshake and clientState ----------------------------------------------


def bc_item(key: str = "C1", kind: str = "updated", state: str = BC_STATE) -> dict[str, Any]:
    resource = f"api/v2.0/companies({COMPANY})/customers" + ("" if kind == "collection" else f"({key})")
    return {
        "subscriptionId": "tandem-customers",
        "clientState": state,
        "expirationDateTime": "2026-01-08T09:00:00Z",
        "resource": resource,
        "changeType": kind,
        "lastModifiedDateTime": "2026-01-05T09:00:00.123Z",
    }


def test_the_bc_validation_handshake_echoes_the_token_as_plain_text(receiver):
    token = "c2e5b7f9-tandem-validation-token"
    response = receiver.client.post(f"/hooks/bc?validationToken={token}")  # BC posts it with no body
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == token
    assert receiver.nothing_published()


def test_the_handshake_is_only_for_bc_sources(receiver):
    response = receiver.client.post("/hooks/events?validationToken=abc")
    assert response.status_code == 415  # a tandem source treats it as an ordinary (empty, untyped) post
    assert receiver.nothing_published()


def test_bc_notifications_with_the_client_state_are_published(receiver):
    response = receiver.client.post(
        "/hooks/bc", json={"value": [bc_item("C1"), bc_item("C2", "created"), bc_item("C3", "deleted")]}
    )
    assert response.status_code == 202, response.text
    assert response.json()["published"] == 3
    assert [(r.mapping, r.system, r.table_name, r.record_key, r.op) for r in receiver.rows()] == [
        ("CUSTOMER", "erp", "customer", "C1", "upsert"),
        ("CUSTOMER", "erp", "customer", "C2", "upsert"),
        ("CUSTOMER", "erp", "customer", "C3", "delete"),
    ]


@pytest.mark.parametrize(
    "states",
    [
        ["wrong"],
        [BC_STATE, "wrong"],
        ["wrong", BC_STATE],
        [BC_STATE, BC_STATE[:-1]],
        [BC_STATE, BC_STATE.upper()],
        [BC_STATE, ""],
    ],
)
def test_one_wrong_client_state_refuses_the_whole_post(receiver, states):
    items = [bc_item(f"C{i}", state=state) for i, state in enumerate(states)]
    response = receiver.client.post("/hooks/bc", json={"value": items})
    assert response.status_code == 401
    assert response.json() == {"error": "clientState does not match"}
    assert receiver.nothing_published()


def test_a_client_state_that_is_not_valid_unicode_is_refused_not_a_crash(receiver):
    body = b'{"value": [' + encode(bc_item())[:-1] + b', "clientState": "\\ud800"}]}'
    assert json.loads(body)["value"][0]["clientState"] == "\ud800"
    response = receiver.client.post("/hooks/bc", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 401
    assert receiver.nothing_published()


def test_a_notification_without_a_client_state_is_refused(receiver):
    item = bc_item()
    del item["clientState"]
    assert receiver.client.post("/hooks/bc", json={"value": [bc_item(), item]}).status_code == 401
    assert receiver.nothing_published()


@pytest.mark.parametrize("body", [{}, {"value": []}, {"value": "x"}, [bc_item()], {"value": [None]}])
def test_bc_bodies_without_notifications_are_refused(receiver, body):
    response = receiver.client.post("/hooks/bc", json=body)
    assert response.status_code in (400, 401)  # no notification carries the client state
    assert receiver.nothing_published()


def test_a_bc_collection_notification_is_a_rescan_row(receiver):
    response = receiver.client.post("/hooks/bc", json={"value": [bc_item(kind="collection")]})
    assert response.status_code == 202
    (row,) = receiver.rows()
    assert (row.mapping, row.system, row.table_name, row.record_key, row.op) == (
        "CUSTOMER",
        "erp",
        "customer",
        "*",
        "rescan",
    )
    assert row.since is not None
    assert row.since.replace(tzinfo=None).isoformat() == "2026-01-05T09:00:00.123000"


def test_a_bc_notification_resent_is_one_inbox_row(receiver):
    body = {"value": [bc_item("C1")]}
    assert receiver.client.post("/hooks/bc", json=body).status_code == 202
    assert receiver.client.post("/hooks/bc", json=body).status_code == 202
    assert len(receiver.rows()) == 1


# --- paths -------------------------------------------------------------------------------------------------


def test_an_unknown_source_is_404(receiver):
    response = receiver.client.post(
        "/hooks/nosuch", content=encode(event()), headers={"content-type": "application/json"}
    )
    assert response.status_code == 404
    assert response.json() == {"error": "no such webhook source"}
    assert receiver.nothing_published()


def test_only_post_is_accepted_on_a_hook(receiver):
    assert receiver.client.get("/hooks/events").status_code == 405
    assert receiver.client.put("/hooks/events", content=b"{}").status_code == 405


def test_health_lists_the_sources(receiver):
    response = receiver.client.get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "ok": True,
        "sources": ["bc", "dataverse", "dataverse-code", "events", "small"],
    }


# --- key_column: BC names records by systemId; the event carries the table's key ----------------------

DEMO_WEBHOOKS = """
webhooks:
  bc:
    kind: business_central
    system: erp
    client_state: "${BC_STATE}"
    tables:
      customers: {table: customer, key_column: system_id}
      contacts: {table: contact, key_column: system_id}
"""


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[Receiver, dict[str, str]]]:
    """The demo systems (small), the demo mapping file with a BC source; erp customer no → system_id."""
    paths = DemoPaths(tmp_path / "demo")
    create(paths, Sizes(customers=50, contacts=5, items=3, salespeople=2, shared_accounts=1))
    text = (ROOT / "config" / "demo" / "mappings.yaml").read_text(encoding="utf-8") + DEMO_WEBHOOKS
    configuration = load_text(text, "mappings.yaml", {"TANDEM_HOME": str(tmp_path), **SECRETS})
    assert configuration.systems["erp"].url == f"sqlite:///{paths.erp}"
    engine = sa.create_engine(f"sqlite:///{paths.erp}")
    with engine.connect() as connection:
        ids = {no: sid for no, sid in connection.execute(sa.text("SELECT no, system_id FROM customer"))}
    engine.dispose()
    store = Store(f"sqlite:///{paths.store}")
    try:
        for made in _receiver(configuration, store):
            yield made, ids
    finally:
        store.engine.dispose()


def test_a_bc_system_id_is_resolved_to_the_tables_key(demo):
    receiver, ids = demo
    response = receiver.client.post(
        "/hooks/bc", json={"value": [bc_item(ids["C00001"]), bc_item(ids["C00002"], "created")]}
    )
    assert response.status_code == 202, response.text
    assert response.json() == {"published": 2, "unresolved": 0}
    assert sorted((r.mapping, r.table_name, r.record_key) for r in receiver.rows()) == [
        ("CUSTOMER", "customer", "C00001"),
        ("CUSTOMER", "customer", "C00002"),
    ]


def test_an_unknown_system_id_is_counted_as_unresolved(demo):
    receiver, ids = demo
    unknown = "00000000-0000-4000-8000-000000000000"
    response = receiver.client.post(
        "/hooks/bc", json={"value": [bc_item(ids["C00003"]), bc_item(unknown, "deleted")]}
    )
    assert response.status_code == 202
    assert response.json() == {"published": 1, "unresolved": 1}
    assert [r.record_key for r in receiver.rows()] == ["C00003"]


def test_a_collection_is_not_resolved_and_becomes_a_rescan(demo):
    receiver, _ = demo
    response = receiver.client.post("/hooks/bc", json={"value": [bc_item(kind="collection")]})
    assert response.status_code == 202
    assert response.json() == {"published": 1, "unresolved": 0}
    (row,) = receiver.rows()
    assert (row.mapping, row.record_key, row.op) == ("CUSTOMER", "*", "rescan")


# --- the real `tandem webhook` command ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.slow
def test_the_tandem_webhook_command_receives_and_publishes(world, tmp_path):
    config = tmp_path / "mappings.yaml"
    config.write_text(world.text + WEBHOOKS, encoding="utf-8")
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TANDEM_")},
        **SECRETS,
        "TANDEM_CONFIG": str(config),
        "TANDEM_DATABASE_URL": world.urls["store"],
        "TANDEM_HOME": str(tmp_path / "home"),
    }
    process = subprocess.Popen(
        [TANDEM, "webhook", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: process.poll() is not None or _answers(f"{base}/health"), 30, "/health to answer")
        assert process.poll() is None, "tandem webhook exited"
        body = encode([event("C1"), event("C2", op="delete")])
        response = httpx.post(
            f"{base}/hooks/events",
            content=body,
            headers={"content-type": "application/json", "x-tandem-signature": sign(body)},
        )
        assert response.status_code == 202, response.text
        assert response.json() == {"published": 2, "unresolved": 0}
        refused = httpx.post(
            f"{base}/hooks/events", content=body, headers={"content-type": "application/json"}
        )
        assert refused.status_code == 401
        rows = Inbox(world.rt.store.engine).rows()
        assert [(r.record_key, r.op) for r in rows] == [("C1", "upsert"), ("C2", "delete")]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        output = process.communicate(timeout=30)[0]  # waits, and closes the pipe
    assert process.returncode in (0, -signal.SIGTERM), output
    assert f"tandem webhook on http://127.0.0.1:{port}/hooks/" in output


def test_the_tandem_webhook_command_refuses_a_file_without_webhooks(world, tmp_path):
    config = world.write_config(tmp_path / "mappings.yaml")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TANDEM_")},
        "TANDEM_DATABASE_URL": world.urls["store"],
        "TANDEM_HOME": str(tmp_path / "home"),
    }
    result = subprocess.run(
        [TANDEM, "--config", str(config), "webhook", "--port", str(_free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "has no `webhooks:` section" in result.stderr


def test_an_unset_webhook_secret_stops_only_the_tandem_webhook_command(world, tmp_path, monkeypatch):
    for name in SECRETS:
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "hooks.yaml"
    config.write_text(world.text + WEBHOOKS, encoding="utf-8")
    tandem = Tandem(world, tmp_path / "home", config)

    checked = tandem("mappings", "check", "--offline")
    assert checked.exit_code == 0, checked.output
    assert "warning:" in checked.stdout and "environment variable HOOK_SECRET is not set" in checked.stdout
    assert tandem.json("couplings", "CUSTOMER") == []  # the rest of the file serves every other command

    refused = tandem("webhook", "--port", str(_free_port()))
    assert refused.exit_code == 2
    assert "environment variable HOOK_SECRET is not set" in refused.output
    assert "hooks.yaml" in refused.output and "webhooks" in refused.output
