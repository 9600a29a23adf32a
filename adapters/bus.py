"""The change-event bus on kombu: the topic exchange, the router's queue, and a publisher with confirms."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from kombu import Connection, Exchange, Queue

from adapters.events import Event

# Bounded: a bus that stays away for ~10 s makes the publish fail loudly instead of hanging forever.
RETRY_POLICY = {"max_retries": 5, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 2.0}


MESSAGE_EVENTS = 500  # events per bus message: one confirm per message, not per event


def _groups(events: Sequence[Event]) -> Iterator[tuple[str, list[Event]]]:
    """Consecutive events with the same routing key, in chunks of at most MESSAGE_EVENTS."""
    current: list[Event] = []
    for event in events:
        if current and (event.routing_key != current[0].routing_key or len(current) >= MESSAGE_EVENTS):
            yield current[0].routing_key, current
            current = []
        current.append(event)
    if current:
        yield current[0].routing_key, current


@dataclass(frozen=True)
class Topology:
    """The names on the bus; a namespace keeps test runs and environments apart."""

    namespace: str = "tandem"

    @property
    def exchange(self) -> Exchange:
        return Exchange(f"{self.namespace}.changes", type="topic", durable=True)

    @property
    def queue(self) -> Queue:
        return Queue(f"{self.namespace}.router", self.exchange, routing_key="#", durable=True)


def is_amqp(url: str) -> bool:
    return url.split("://", 1)[0] in ("amqp", "pyamqp", "amqps")


# Redis keeps a consumer's unacked messages aside and gives them back only after this many seconds:
# the router acks within milliseconds, so a router killed mid-flush delays its messages by 30 s, not 1 h.
REDIS_VISIBILITY_TIMEOUT_S = 30


def connect(url: str) -> Connection:
    options: dict[str, Any] = {"confirm_publish": True} if is_amqp(url) else {}
    if url.startswith(("redis://", "rediss://")):
        options["visibility_timeout"] = REDIS_VISIBILITY_TIMEOUT_S
    return Connection(url, transport_options=options, connect_timeout=5)


class KombuBus:
    """Publishes events; returns only when the broker has confirmed them (AMQP) or stored them (Redis)."""

    def __init__(self, url: str, topology: Topology = Topology()) -> None:
        self.url = url
        self.topology = topology
        self.connection = connect(url)
        self._lock = threading.Lock()
        self._declared = False

    def publish(self, events: Sequence[Event]) -> None:
        """Sends events of one routing key together, up to MESSAGE_EVENTS in one bus message (a JSON list)."""
        if not events:
            return
        exchange, queue = self.topology.exchange, self.topology.queue
        with self._lock:
            producer = self.connection.Producer(serializer="json")
            for routing_key, group in _groups(events):
                # Declaring the exchange and the router's queue here means no event is dropped for want
                # of a binding, even before the first router starts (Redis and memory drop silently).
                producer.publish(
                    group[0].body() if len(group) == 1 else [e.body() for e in group],
                    exchange=exchange,
                    routing_key=routing_key,
                    declare=[] if self._declared else [exchange, queue],
                    retry=True,
                    retry_policy=RETRY_POLICY,
                    mandatory=is_amqp(self.url),
                    delivery_mode=2,
                )
                self._declared = True

    def close(self) -> None:
        self.connection.release()
