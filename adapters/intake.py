"""Accepting events into the inbox: a row per event and mapping; unknown systems parked, the rest counted."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from adapters.events import Event
from adapters.store.inbox import Inbox
from domain.mapping import MappingSet


@dataclass
class Intake:
    accepted: int = 0  # new inbox rows
    duplicates: int = 0  # rows whose event id was in the inbox already
    unmapped: int = 0  # events for tables that no mapping uses: counted and dropped
    parked: list[int] = field(default_factory=list)  # ids of parked invalid events

    def merge(self, other: Intake) -> None:
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.unmapped += other.unmapped
        self.parked.extend(other.parked)


def accept(
    inbox: Inbox, mappings: MappingSet, systems: Collection[str], events: Sequence[Event], source: str
) -> Intake:
    """Records valid events durably; returns what happened to each kind of event."""
    result = Intake()
    rows: list[dict[str, Any]] = []
    for event in events:
        if event.system not in systems:
            known = ", ".join(sorted(systems))
            reason = f"unknown system {event.system!r} (known: {known})"
            result.parked.append(inbox.park(reason, event.model_dump_json(), source, event.routing_key))
            continue
        targets = mappings.for_table(event.system, event.table)
        if not targets:
            result.unmapped += 1
            continue
        for mapping in targets:
            rows.append(
                {
                    "event_id": event.id,
                    "mapping": mapping.name,
                    "system": event.system,
                    "table_name": event.table,
                    "record_key": event.key,
                    "op": event.op,
                    "since": event.since,
                    "occurred_at": event.occurred_at,
                    "published_at": event.published_at,
                }
            )
    result.accepted = inbox.accept(rows)
    result.duplicates = len(rows) - result.accepted
    return result
