"""The dramatiq actors: thin wrappers that call the apply use cases with this process's runtime."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

import dramatiq

from config.settings import Settings
from workers.broker import queue_name
from workers.process import Process
from workers.usecases.apply import apply_changes, rescan

APPLY = "tandem_apply"
RESCAN = "tandem_rescan"


class Actors:
    """Registers the actors on a broker; `process` gives the process's runtime when a message runs."""

    def __init__(self, broker: Any, settings: Settings, process: Callable[[], Process]) -> None:
        self.process = process
        options = {
            # explicit limits: dramatiq's defaults retry for about a month
            "max_retries": settings.retries,
            "min_backoff": settings.min_backoff_ms,
            "max_backoff": settings.max_backoff_ms,
            "time_limit": settings.time_limit_s * 1000,
            "max_age": 24 * 3600 * 1000,
        }
        queue = queue_name(settings)
        self.apply = dramatiq.Actor(
            self._apply, broker=broker, actor_name=APPLY, queue_name=queue, priority=0, options=options
        )
        self.rescan = dramatiq.Actor(
            self._rescan, broker=broker, actor_name=RESCAN, queue_name=queue, priority=10, options=options
        )

    def _apply(self, mapping: str, system: str, items: Sequence[tuple[str, Sequence[int]]]) -> None:
        process = self.process()
        apply_changes(process.runtime, process.jobs, mapping, system, items)

    def _rescan(self, mapping: str, system: str, since: str, inbox_id: int) -> None:
        process = self.process()
        moment = dt.datetime.fromisoformat(since)
        rescan(process.runtime, process.inbox, process.jobs, mapping, system, moment, inbox_id)
