"""`tandem webhook`: an HTTP receiver that authenticates each sender and publishes what it reports."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from adapters.connectors.base import Connector
from adapters.events import Event, InvalidEvent
from config.webhooks import Webhook
from domain.mapping import MappingSet
from producers.api import Publisher
from producers.payloads import from_business_central, from_dataverse, from_tandem

log = logging.getLogger(__name__)

JSON_TYPES = ("application/json", "text/json", "application/cloudevents+json")


def _problem(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def authenticated(hook: Webhook, request: Request, body: bytes) -> bool:
    """Constant-time checks; a source with no auth relies on clientState (checked per notification)."""
    auth = hook.auth
    if auth is None:
        return hook.kind == "business_central"
    if auth.kind == "hmac":
        given = request.headers.get(auth.name, "")
        digest = hmac.new(auth.secret.encode(), body, getattr(hashlib, auth.algorithm)).hexdigest()
        given = given.split("=", 1)[1] if "=" in given else given
        return hmac.compare_digest(given.strip().lower().encode(), digest.encode())  # str: ASCII only
    given = (
        request.headers.get(auth.name, "")
        if auth.kind == "header"
        else request.query_params.get(auth.name, "")
    )
    return hmac.compare_digest(given.encode(), auth.secret.encode())


def _client_states_match(hook: Webhook, body: Any) -> bool:
    if hook.client_state is None:
        return True
    items = body.get("value") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        return False
    expected = hook.client_state.encode()
    return all(
        isinstance(i, dict)
        and hmac.compare_digest(str(i.get("clientState", "")).encode("utf-8", "surrogatepass"), expected)
        for i in items
    )


class KeyResolver:
    """For senders that name records by another column (BC's systemId): the table's own keys, in bulk."""

    def __init__(self, mappings: MappingSet, connectors: dict[str, Connector]) -> None:
        self.mappings = mappings
        self.connectors = connectors

    def resolve(self, hook: Webhook, events: Sequence[Event]) -> tuple[list[Event], int]:
        routed = {r.table: r.key_column for r in hook.tables.values() if r.key_column}
        if not routed:
            return list(events), 0
        wanted: dict[str, set[str]] = defaultdict(set)
        for event in events:
            if event.table in routed and event.op != "rescan":
                wanted[event.table].add(event.key)
        found: dict[tuple[str, str], str] = {}
        system = hook.system or ""
        for table, values in wanted.items():
            mappings = self.mappings.for_table(system, table)
            if not mappings:
                continue
            side = mappings[0].side(system)
            column = routed[table]
            rows = self.connectors[side.system].find(
                side, [side.key, column], [{column: sorted(values)}], set()
            )
            found.update({(table, str(r[column])): str(r[side.key]) for r in rows})
        out, unresolved = [], 0
        for event in events:
            if event.table not in routed or event.op == "rescan":
                out.append(event)
            elif (key := found.get((event.table, event.key))) is not None:
                out.append(event.model_copy(update={"key": key}))
            else:
                unresolved += 1  # e.g. a deleted record: `tandem errors find-deleted` finds those
        return out, unresolved


def create_app(
    hooks: dict[str, Webhook], publisher: Publisher, resolver: KeyResolver | None = None
) -> Starlette:
    translate: dict[str, Callable[[Webhook, Any], list[Event]]] = {
        "tandem": lambda hook, body: from_tandem(body),
        "dataverse": from_dataverse,
        "business_central": from_business_central,
    }

    async def receive(request: Request) -> Response:
        hook = hooks.get(request.path_params["name"])
        if hook is None:
            return _problem(404, "no such webhook source")
        token = request.query_params.get("validationToken")
        if hook.kind == "business_central" and token is not None:
            return PlainTextResponse(token)  # BC's subscription handshake: echo the token
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in JSON_TYPES:
            return _problem(415, f"content type must be application/json, not {content_type or 'missing'}")
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > hook.max_body_bytes:
            return _problem(413, f"body larger than {hook.max_body_bytes} bytes")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > hook.max_body_bytes:
                return _problem(413, f"body larger than {hook.max_body_bytes} bytes")
        if not authenticated(hook, request, body):
            return _problem(401, "not authenticated")
        try:
            decoded = json.loads(body)
        except (ValueError, RecursionError) as exc:  # also too deep, or an integer of > 4300 digits
            return _problem(400, f"not JSON: {exc}")
        if hook.kind == "business_central" and not _client_states_match(hook, decoded):
            return _problem(401, "clientState does not match")
        try:
            events = translate[hook.kind](hook, decoded)
        except InvalidEvent as exc:
            return _problem(400, str(exc))
        unresolved = 0
        if resolver is not None:
            events, unresolved = await run_in_threadpool(resolver.resolve, hook, events)
        try:
            published = await run_in_threadpool(publisher.publish_events, events)
        except Exception:
            log.exception("publishing %d events from %s failed", len(events), hook.name)
            return _problem(503, "the bus is unavailable; nothing was published, send again")
        return JSONResponse({"published": published, "unresolved": unresolved}, status_code=202)

    async def health(request: Request) -> Response:
        del request
        return JSONResponse({"ok": True, "sources": sorted(hooks)})

    return Starlette(
        routes=[
            Route("/hooks/{name}", receive, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ]
    )
