"""`tandem poll`: finds changed rows of SQL-backed systems by their modified-at column and publishes events.

A watermark per table is stored durably. Each poll re-reads an overlap window before the watermark, so
a row committed late with an older timestamp is still seen; event ids are derived from (key, version),
so a row seen twice makes the same event and the inbox drops the second.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from adapters.connectors.base import Connector
from adapters.events import change, stable_id
from adapters.store.inbox import Inbox
from domain.mapping import MappingSet, TableSide
from producers.api import Publisher

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    system: str
    side: TableSide


def targets(mappings: MappingSet, systems: Sequence[str] | None = None) -> list[Target]:
    """Every mapped table with a version column, once (two mappings of one table poll it once)."""
    found: dict[tuple[str, str], Target] = {}
    for mapping in mappings:
        for side in mapping.sides:
            if side.version and (systems is None or side.system in systems):
                found.setdefault((side.system, side.table), Target(side.system, side))
    return list(found.values())


def _moment(value: object) -> dt.datetime | None:
    if isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return None


class Poller:
    def __init__(
        self,
        inbox: Inbox,
        connectors: dict[str, Connector],
        publisher: Publisher,
        watched: Sequence[Target],
        overlap: dt.timedelta = dt.timedelta(seconds=5),
    ) -> None:
        self.inbox = inbox
        self.connectors = connectors
        self.publisher = publisher
        self.watched = list(watched)
        self.overlap = overlap

    def start(self, from_start: bool) -> None:
        """Sets the watermark of tables polled for the first time: now, or the beginning of time."""
        for target in self.watched:
            if self.inbox.watermark(target.system, target.side.table) is None:
                # "" is the beginning, stored: None would read as "never polled" again after a restart
                mark = "" if from_start else dt.datetime.now(dt.UTC).isoformat()
                self.inbox.set_watermark(target.system, target.side.table, mark)

    def poll(self) -> int:
        """One pass over every table; returns how many events were published."""
        return sum(self.poll_table(target) for target in self.watched)

    def poll_table(self, target: Target) -> int:
        side = target.side
        assert side.version is not None
        mark = _moment(self.inbox.watermark(target.system, side.table))
        since = None if mark is None else (mark - self.overlap).isoformat()
        connector = self.connectors[target.system]
        published = 0
        newest = mark
        for page in connector.query(side, [side.key, side.version], modified_since=since):
            events = []
            for row in page:
                version = row.get(side.version)
                moment = _moment(version)
                if moment is not None and (newest is None or moment > newest):
                    newest = moment
                events.append(
                    change(
                        target.system,
                        side.table,
                        row[side.key],
                        occurred_at=moment,
                        source="poller",
                        event_id=stable_id("poll", target.system, side.table, row[side.key], version),
                    )
                )
            published += self.publisher.publish_events(events)
        # only once the events are confirmed: a crash before this line publishes them again (same ids)
        if newest is not None and newest != mark:
            self.inbox.set_watermark(target.system, side.table, newest.isoformat())
        return published
