"""Dead letters: the sync messages that failed all their retries, read from the broker (or the inbox)."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from adapters.store.inbox import DEAD, RECEIVED, Inbox
from config.settings import Settings
from workers.broker import queue_name
from workers.failures import inbox_ids

log = logging.getLogger(__name__)


@dataclass
class DeadLetter:
    id: str
    mapping: str
    system: str
    keys: list[str]
    inbox_ids: list[int]
    error: str
    failed_at: dt.datetime | None
    raw: Any = field(default=None, repr=False)

    @property
    def age(self) -> dt.timedelta | None:
        return None if self.failed_at is None else dt.datetime.now(dt.UTC) - self.failed_at


def _letter(message_id: str, data: dict[str, Any], failed_at: dt.datetime | None, raw: Any) -> DeadLetter:
    kwargs = data.get("kwargs") or {}
    items = kwargs.get("items") or []
    traceback = (data.get("options") or {}).get("traceback") or ""
    error = traceback.strip().splitlines()[-1] if traceback.strip() else "failed (no traceback kept)"
    return DeadLetter(
        id=message_id,
        mapping=str(kwargs.get("mapping", "?")),
        system=str(kwargs.get("system", "?")),
        keys=[str(item[0]) for item in items]
        or ([f"rescan since {kwargs['since']}"] if "since" in kwargs else []),
        inbox_ids=inbox_ids(kwargs),
        error=error,
        failed_at=failed_at,
        raw=raw,
    )


class DeadLetterQueue(Protocol):
    def list(self) -> list[DeadLetter]: ...

    def remove(self, letters: Sequence[DeadLetter]) -> None: ...


class RedisDeadLetters:
    """dramatiq's Redis broker keeps dead letters in a sorted set (by time) and a hash of message bodies."""

    def __init__(self, settings: Settings) -> None:
        import redis

        assert settings.broker_url is not None
        self.client = redis.Redis.from_url(settings.broker_url)
        self.key = f"{settings.namespace}-dramatiq:{queue_name(settings)}.XQ"

    def list(self) -> list[DeadLetter]:
        entries = cast(list[tuple[bytes, float]], self.client.zrange(self.key, 0, -1, withscores=True))
        if not entries:
            return []
        ids = [member.decode() for member, _ in entries]
        bodies = cast(list[bytes | None], self.client.hmget(f"{self.key}.msgs", ids))
        letters = []
        for (member, score), body in zip(entries, bodies, strict=True):
            if body is None:
                continue
            failed_at = dt.datetime.fromtimestamp(score / 1000, dt.UTC)
            letters.append(_letter(member.decode(), json.loads(body), failed_at, member))
        return letters

    def remove(self, letters: Sequence[DeadLetter]) -> None:
        ids = [letter.id for letter in letters]
        if ids:
            self.client.zrem(self.key, *ids)
            self.client.hdel(f"{self.key}.msgs", *ids)


class RabbitDeadLetters:
    """dramatiq's RabbitMQ broker dead-letters into `<queue>.XQ`: read it without consuming, ack to remove."""

    def __init__(self, settings: Settings) -> None:
        from kombu import Connection

        assert settings.broker_url is not None
        self.connection = Connection(settings.broker_url, connect_timeout=5)
        self.queue = f"{queue_name(settings)}.XQ"

    def _fetch(self) -> tuple[Any, list[tuple[Any, DeadLetter]]]:
        channel = self.connection.channel()
        held = []
        try:
            while (message := channel.basic_get(queue=self.queue, no_ack=False)) is not None:
                data = json.loads(message.body)
                stamp = (data.get("options") or {}).get("requeue_timestamp") or data.get("message_timestamp")
                failed_at = dt.datetime.fromtimestamp(stamp / 1000, dt.UTC) if stamp else None
                held.append((message, _letter(str(data.get("message_id")), data, failed_at, message)))
        except Exception as exc:
            if "NOT_FOUND" in str(exc):  # no message ever failed: the dead-letter queue does not exist yet
                return channel, []
            raise
        return channel, held

    def list(self) -> list[DeadLetter]:
        channel, held = self._fetch()
        channel.close()  # every unacked message goes back to the queue, in order
        return [letter for _, letter in held]

    def remove(self, letters: Sequence[DeadLetter]) -> None:
        wanted = {letter.id for letter in letters}
        channel, held = self._fetch()
        try:
            for message, letter in held:
                if letter.id in wanted:
                    channel.basic_ack(message.delivery_tag)
        finally:
            channel.close()


class InboxDeadLetters:
    """Embedded: the in-process broker keeps nothing across restarts; the inbox's dead rows are the record."""

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    def list(self) -> list[DeadLetter]:
        grouped: dict[tuple[str, str, str], DeadLetter] = {}
        for row in self.inbox.rows(state=DEAD):
            error = row.last_error or "failed"
            letter = grouped.setdefault(
                (row.mapping, row.system, error),
                DeadLetter(f"inbox:{row.id}", row.mapping, row.system, [], [], error, row.enqueued_at),
            )
            letter.keys.append(row.record_key)
            letter.inbox_ids.append(row.id)
        return list(grouped.values())

    def remove(self, letters: Sequence[DeadLetter]) -> None:
        del letters  # the rows themselves change state when replayed


def dead_letters(settings: Settings, inbox: Inbox) -> DeadLetterQueue:
    url = settings.broker_url or ""
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisDeadLetters(settings)
    if url.startswith(("amqp://", "amqps://")):
        return RabbitDeadLetters(settings)
    return InboxDeadLetters(inbox)


def replay(queue: DeadLetterQueue, inbox: Inbox, letters: Sequence[DeadLetter]) -> int:
    """Gives the letters' events back to the dispatcher (which re-reads the present) and drops the letters.

    A letter that names no inbox event (not one of ours) is left where it is. Returns the events replayed.
    """
    ours = [letter for letter in letters if letter.inbox_ids]
    ids = [i for letter in ours for i in letter.inbox_ids]
    if ids:
        inbox.set_state(ids, RECEIVED)
    queue.remove(ours)
    return len(ids)
