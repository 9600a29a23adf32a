"""The change event: Tandem's versioned JSON envelope, its validation and its routing key."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import to_json

from domain.values import Value

EXCHANGE = "tandem.changes"
MAX_BODY_BYTES = 256 * 1024  # a bigger event is parked: events are hints, not record copies
NAMESPACE = uuid.UUID("5f0f5b1e-4f7a-4c8e-9d0a-7d1f3c2b6a10")

Text = Annotated[str, Field(min_length=1, max_length=500)]
Op = Literal["upsert", "delete", "rescan"]


class InvalidEvent(Exception):
    """An event that cannot be applied as it is: parked with this reason, never retried on its own."""


class Event(BaseModel):
    """One change in one system: "record KEY of TABLE in SYSTEM changed (or was deleted)".

    Events are hints: a worker re-reads both systems, so duplicated, late and reordered events are
    harmless. `rescan` asks for every record of the table changed since `since` (key "*").
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    id: Text = Field(default_factory=lambda: str(uuid.uuid4()))
    system: Text
    table: Text
    key: Text
    op: Op = "upsert"
    occurred_at: dt.datetime | None = None
    published_at: dt.datetime | None = None
    since: dt.datetime | None = None
    fields: list[Annotated[str, Field(max_length=500)]] | None = Field(default=None, max_length=1000)
    payload: dict[str, Any] | None = None
    source: Annotated[str, Field(max_length=200)] | None = None

    @field_validator("system", "table", "key", "id")
    @classmethod
    def _printable(cls, value: str) -> str:
        if any(ord(c) < 32 for c in value):
            raise ValueError("must not contain control characters")
        return value

    @field_validator("occurred_at", "published_at", "since")
    @classmethod
    def _utc(cls, value: dt.datetime | None) -> dt.datetime | None:
        # a moment without an offset is UTC, whatever time zone a store's session would assume
        return value.replace(tzinfo=dt.UTC) if value is not None and value.tzinfo is None else value

    @property
    def routing_key(self) -> str:
        return f"{self.system}.{self.table}.{self.op}"

    def body(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


def change(
    system: str,
    table: str,
    key: Value,
    op: Op = "upsert",
    *,
    occurred_at: dt.datetime | None = None,
    fields: list[str] | None = None,
    payload: dict[str, Any] | None = None,
    source: str | None = None,
    event_id: str | None = None,
    since: dt.datetime | None = None,
) -> Event:
    """Builds a valid event (raises InvalidEvent with the reason otherwise)."""
    data: dict[str, Any] = {
        "system": system,
        "table": table,
        "key": "" if key is None else str(key),
        "op": op,
    }
    optional = {
        "occurred_at": occurred_at,
        "fields": fields,
        "payload": payload,
        "source": source,
        "id": event_id,
        "since": since,
    }
    data.update({k: v for k, v in optional.items() if v is not None})
    return parse(data)


def stable_id(*parts: object) -> str:
    """The same id for the same change seen twice (a poller's overlap window relies on it)."""
    return str(uuid.uuid5(NAMESPACE, "\x1f".join(str(p) for p in parts)))


def parse(body: Any) -> Event:
    """Validates a decoded body, or raw bytes / text of JSON, into an Event."""
    if isinstance(body, bytes | bytearray | memoryview):
        raw = bytes(body)
        if len(raw) > MAX_BODY_BYTES:
            raise InvalidEvent(f"event of {len(raw)} bytes is larger than {MAX_BODY_BYTES}")
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError) as exc:  # also too deep, or an integer of > 4300 digits
            raise InvalidEvent(f"not JSON: {exc}") from None
    elif isinstance(body, str):
        if len(body.encode("utf-8", "surrogatepass")) > MAX_BODY_BYTES:
            raise InvalidEvent(f"event larger than {MAX_BODY_BYTES} bytes")
        try:
            body = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise InvalidEvent(f"not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidEvent(f"an event is a JSON object, not {type(body).__name__}")
    try:
        event = Event.model_validate(body)
    except ValidationError as exc:
        raise InvalidEvent(_reason(exc)) from None
    if event.op == "rescan" and event.since is None:
        raise InvalidEvent("a rescan event needs `since`")
    if event.payload is not None:
        try:  # as it will be sent and parked: an event that cannot be serialized is refused here
            size = len(to_json(event.payload))
        except ValueError as exc:
            raise InvalidEvent(f"payload cannot be serialized as JSON: {exc}") from None
        if size > MAX_BODY_BYTES:
            raise InvalidEvent(f"payload larger than {MAX_BODY_BYTES} bytes")
    return event


def _reason(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "event"
        message = "unknown field" if error["type"] == "extra_forbidden" else error["msg"]
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def schema() -> dict[str, Any]:
    """The JSON Schema of the envelope (docs/event.schema.json is this, written out)."""
    document = Event.model_json_schema()
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["$id"] = "https://tandem.invalid/schemas/event-v1.json"
    return document
