"""Turning what senders post — our envelope, Dataverse execution contexts, BC notifications — into events."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from adapters.events import Event, InvalidEvent, Op, change, parse, stable_id
from config.webhooks import Webhook

_DOTNET_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")
_RESOURCE = re.compile(r"(?P<name>[A-Za-z_][\w.]*)(?:\((?P<id>[^()]*)\))?$")


def from_tandem(body: Any) -> list[Event]:
    """Our envelope: one event, or a list of them."""
    items = body if isinstance(body, list) else [body]
    if not items:
        raise InvalidEvent("an empty list of events")
    for item in items:  # decoded already: a string here is not JSON text to be decoded again
        if not isinstance(item, dict):
            raise InvalidEvent(f"an event is a JSON object, not {type(item).__name__}")
    return [parse(item) for item in items]


def _dotnet_date(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    found = _DOTNET_DATE.match(value)
    if found is not None:
        try:
            return dt.datetime.fromtimestamp(int(found.group(1)) / 1000, dt.UTC)
        except (OverflowError, OSError, ValueError):  # beyond the calendar: no moment, not a crash
            return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _pairs(items: Any) -> dict[str, Any]:
    """Dataverse serializes dictionaries as lists of {key, value}."""
    if isinstance(items, dict):
        return items
    if isinstance(items, list):
        return {str(i.get("key")): i.get("value") for i in items if isinstance(i, dict) and "key" in i}
    return {}


def from_dataverse(hook: Webhook, body: Any) -> list[Event]:
    """A Dataverse webhook's serialized RemoteExecutionContext: one change of one row."""
    if not isinstance(body, dict):
        raise InvalidEvent("a Dataverse execution context is a JSON object")
    message = body.get("MessageName")
    entity = body.get("PrimaryEntityName")
    record_id = body.get("PrimaryEntityId")
    if not isinstance(message, str) or not isinstance(entity, str) or not isinstance(record_id, str):
        raise InvalidEvent(
            "a Dataverse execution context needs MessageName, PrimaryEntityName and PrimaryEntityId"
        )
    user = str(body.get("InitiatingUserId") or body.get("UserId") or "").lower()
    if user and user in hook.ignore_users:
        return []  # written by the integration user: our own change coming back
    target = _pairs(body.get("InputParameters")).get("Target")
    attributes = _pairs(target.get("Attributes")) if isinstance(target, dict) else {}
    route = hook.route(entity)
    assert hook.system is not None
    operation = body.get("OperationId") or body.get("RequestId") or body.get("CorrelationId") or ""
    return [
        change(
            hook.system,
            route.table,
            record_id,
            "delete" if message.lower() == "delete" else "upsert",
            occurred_at=_dotnet_date(body.get("OperationCreatedOn")),
            fields=sorted(attributes)[:1000] or None,
            payload={"message": message, "initiating_user": user or None},
            source=f"webhook:{hook.name}",
            # without an operation id nothing tells a resend from the next change: a fresh event id
            event_id=stable_id("dataverse", operation, entity, record_id, message) if operation else None,
        )
    ]


def from_business_central(hook: Webhook, body: Any) -> list[Event]:
    """Business Central API notifications: a `value` list; `collection` means "many changed since then"."""
    if not isinstance(body, dict) or not isinstance(body.get("value"), list) or not body["value"]:
        raise InvalidEvent("a Business Central notification is an object with a non-empty `value` list")
    events = []
    assert hook.system is not None
    for index, item in enumerate(body["value"]):
        if not isinstance(item, dict):
            raise InvalidEvent(f"value[{index}] is not an object")
        resource, kind = item.get("resource"), item.get("changeType")
        if not isinstance(resource, str) or kind not in ("created", "updated", "deleted", "collection"):
            raise InvalidEvent(
                f"value[{index}] needs `resource` and changeType created/updated/deleted/collection"
            )
        found = _RESOURCE.search(resource.rstrip("/").rsplit("/", 1)[-1])
        if found is None:
            raise InvalidEvent(f"value[{index}]: cannot read resource {resource!r}")
        route = hook.route(found.group("name"))
        moment = _dotnet_date(item.get("lastModifiedDateTime"))
        stamp = item.get("lastModifiedDateTime")  # without it a resend and the next change look alike
        identity = stable_id("bc", item.get("subscriptionId"), resource, kind, stamp) if stamp else None
        source = f"webhook:{hook.name}"
        if kind == "collection":
            since = moment or dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
            events.append(
                change(hook.system, route.table, "*", "rescan", since=since, source=source, event_id=identity)
            )
            continue
        record_id = (found.group("id") or "").strip("'")
        if not record_id:
            raise InvalidEvent(f"value[{index}]: resource {resource!r} names no record")
        op: Op = "delete" if kind == "deleted" else "upsert"
        events.append(
            change(
                hook.system, route.table, record_id, op, occurred_at=moment, source=source, event_id=identity
            )
        )
    return events
