"""The dramatiq broker that settings choose (RabbitMQ, Redis, or in-process), with Tandem's middleware."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker

from adapters.store.inbox import Inbox
from config.settings import Settings
from workers.failures import RecordFailures


def queue_name(settings: Settings) -> str:
    return f"{settings.namespace}.sync"


def pika_url(url: str) -> str:
    """kombu writes the default vhost as `//`; pika wants it as `/%2F`."""
    scheme, _, rest = url.partition("://")
    host, slash, vhost = rest.partition("/")
    if not slash or vhost in ("", "/"):
        return f"{scheme}://{host}/%2F"
    return url


def build_broker(settings: Settings, inbox: Callable[[], Inbox]) -> Any:
    """A broker for this process; with no TANDEM_BROKER_URL, an in-process one (the embedded default)."""
    url = settings.broker_url
    broker: Any
    if url is None or url.startswith("stub:"):
        broker = StubBroker()
        broker.emit_after("process_boot")  # an in-process Worker needs it; a dramatiq CLI process emits it
    elif url.startswith(("redis://", "rediss://", "unix://")):
        from dramatiq.brokers.redis import RedisBroker

        broker = RedisBroker(url=url, namespace=f"{settings.namespace}-dramatiq")
    elif url.startswith(("amqp://", "amqps://")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        broker = RabbitmqBroker(url=pika_url(url), confirm_delivery=True)
    else:
        raise ValueError(
            f"TANDEM_BROKER_URL must be redis://, amqp:// or stub://, not {url.split(':', 1)[0]}://"
        )
    broker.add_middleware(RecordFailures(inbox))
    dramatiq.set_broker(broker)
    return broker
