"""Dramatiq middleware that records a message's final failure in the inbox before it is dead-lettered."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import dramatiq

from adapters.store.inbox import DEAD, Inbox

log = logging.getLogger(__name__)


class RecordFailures(dramatiq.Middleware):  # type: ignore[misc]
    """Marks the message's inbox rows dead with the error; idempotent, so a redelivery changes nothing."""

    def __init__(self, inbox: Callable[[], Inbox]) -> None:
        self.inbox = inbox

    def before_nack(self, broker: Any, message: Any) -> None:
        ids = inbox_ids(message.kwargs)
        if not ids:
            return
        exception = getattr(message, "_exception", None)
        error = f"{type(exception).__name__}: {exception}" if exception is not None else "failed"
        try:
            self.inbox().set_state(ids, DEAD, error[:4000])
        except Exception:  # the dead letter stays visible in the broker even if the store is away
            log.exception("could not record the failure of message %s", message.message_id)


def inbox_ids(kwargs: dict[str, Any]) -> list[int]:
    """The inbox row ids that a sync message carries."""
    ids = [i for _, row_ids in kwargs.get("items", []) for i in row_ids]
    if "inbox_id" in kwargs:
        ids.append(kwargs["inbox_id"])
    return ids
