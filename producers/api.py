"""The Python API for publishing changes: to the kombu bus (scaled) or straight into the inbox (embedded)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from adapters.events import Event, Op, change
from adapters.intake import Intake, accept
from adapters.store.inbox import Inbox
from domain.mapping import MappingSet
from domain.values import Value


class Bus(Protocol):
    def publish(self, events: Sequence[Event]) -> None: ...

    def close(self) -> None: ...


class InboxBus:
    """The embedded bus: publishing records the events in the store's inbox, where a worker finds them."""

    def __init__(
        self, inbox: Inbox, mappings: MappingSet, systems: Iterable[str], source: str = "api"
    ) -> None:
        self.inbox = inbox
        self.mappings = mappings
        self.systems = set(systems)
        self.source = source
        self.last = Intake()

    def publish(self, events: Sequence[Event]) -> None:
        self.last = accept(self.inbox, self.mappings, self.systems, events, self.source)

    def close(self) -> None:
        return None


class Publisher:
    """Publishes change events; returns once the bus has them (confirmed), so nothing is lost after."""

    def __init__(self, bus: Bus, source: str = "api") -> None:
        self.bus = bus
        self.source = source

    def publish(self, system: str, table: str, key: Value, op: Op = "upsert", **details: Any) -> Event:
        event = change(system, table, key, op, source=details.pop("source", self.source), **details)
        self.publish_events([event])
        return event

    def publish_events(self, events: Iterable[Event], chunk: int = 1000) -> int:
        """Stamps `published_at` and publishes in chunks; returns how many were published."""
        count = 0
        batch: list[Event] = []
        for event in events:
            batch.append(event.model_copy(update={"published_at": dt.datetime.now(dt.UTC)}))
            if len(batch) >= chunk:
                self.bus.publish(batch)
                count += len(batch)
                batch = []
        if batch:
            self.bus.publish(batch)
            count += len(batch)
        return count

    def close(self) -> None:
        self.bus.close()
