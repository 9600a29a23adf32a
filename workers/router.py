"""The router: consumes change events from the bus, records them in the inbox, then acks and dispatches."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from kombu.mixins import ConsumerMixin

from adapters.bus import Topology, connect
from adapters.events import Event, InvalidEvent, parse
from adapters.intake import Intake, accept
from adapters.store.inbox import Inbox
from domain.mapping import MappingSet

log = logging.getLogger(__name__)

FLUSH_EVERY = 500  # events
FLUSH_AFTER_S = 0.02  # the longest a message waits in the buffer while more keep coming
QUIET_S = 0.002  # no message for this long: what is buffered goes to the inbox now


class Router(ConsumerMixin):  # type: ignore[misc]
    """Accept JSON only; a message is acked only after its event is durable in the inbox (or parked)."""

    def __init__(
        self,
        url: str,
        topology: Topology,
        inbox: Inbox,
        mappings: MappingSet,
        systems: set[str],
        after_flush: Callable[[], object] = lambda: None,
    ) -> None:
        self.connection = connect(url)
        self.topology = topology
        self.inbox = inbox
        self.mappings = mappings
        self.systems = systems
        self.after_flush = after_flush
        self.buffer: list[tuple[Any, Any]] = []
        self.first_at = 0.0
        self.buffered = 0  # events in the buffer (a message may carry many)
        self.totals = Intake()

    def get_consumers(self, consumer: Any, channel: Any) -> list[Any]:
        return [
            consumer(
                queues=[self.topology.queue],
                callbacks=[self.on_message],
                accept=["json"],
                prefetch_count=2 * FLUSH_EVERY,
                on_decode_error=self.on_decode_error,
            )
        ]

    def on_message(self, body: Any, message: Any) -> None:
        if not self.buffer:
            self.first_at = time.monotonic()
            self.buffered = 0
        self.buffer.append((body, message))
        self.buffered += len(body) if isinstance(body, list) else 1
        if self.buffered >= FLUSH_EVERY:
            self.flush()

    def serve(self) -> None:
        """Consumes until `should_stop` (checked every FLUSH_AFTER_S), reconnecting as kombu does."""
        self.run()

    def consume(self, limit: int | None = None, **kwargs: Any) -> Iterator[None]:
        """kombu's consume loop (run() calls it), but a buffer is flushed as soon as the bus goes quiet.

        A burst is gathered into one inbox write; a lone event waits QUIET_S, not FLUSH_AFTER_S.
        """
        with self.consumer_context(**kwargs) as (connection, _channel, _consumers):
            while not self.should_stop:
                wait = QUIET_S if self.buffer else FLUSH_AFTER_S
                try:
                    connection.drain_events(timeout=wait)
                except TimeoutError:  # socket.timeout: nothing came
                    connection.heartbeat_check()
                    if self.buffer:
                        self.flush()
                    continue
                except OSError:
                    if self.should_stop:
                        break
                    raise
                self.on_iteration()
                yield

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        """kombu would ack and drop an undecodable message; it is parked with the reason instead."""
        reason = f"cannot decode ({message.content_type or 'no content type'}): {exc}"
        self.inbox.park(reason, message.body or b"", "bus", message.delivery_info.get("routing_key"))
        message.ack()

    def on_iteration(self) -> None:
        if self.buffer and time.monotonic() - self.first_at >= FLUSH_AFTER_S:
            self.flush()

    def flush(self) -> None:
        batch, self.buffer = self.buffer, []
        events: list[Event] = []
        try:
            for body, message in batch:
                routing_key = message.delivery_info.get("routing_key")
                for item in _items(body):
                    try:
                        events.append(parse(item))
                    except InvalidEvent as exc:
                        text = item if isinstance(item, str | bytes) else _json(item)
                        self.inbox.park(str(exc), text, "bus", routing_key)
            intake = accept(self.inbox, self.mappings, self.systems, events, "bus")
        except Exception:
            # the store is away: give the messages back to the bus; they come again
            log.exception("cannot record %d events; returning them to the bus", len(batch))
            for _, message in batch:
                message.requeue()
            time.sleep(1)
            return
        for _, message in batch:
            message.ack()
        self.totals.merge(intake)
        if intake.unmapped:
            log.info("%d events for tables that no mapping uses were dropped", intake.unmapped)
        self.after_flush()


MAX_MESSAGE_EVENTS = 10_000


def _items(body: Any) -> list[Any]:
    """A bus message carries one event, or a JSON list of events (what the publisher batches)."""
    if isinstance(body, list) and 0 < len(body) <= MAX_MESSAGE_EVENTS:
        return body
    return [body]


def _json(body: Any) -> str:
    try:
        return json.dumps(body, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(body)
