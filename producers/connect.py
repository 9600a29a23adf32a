"""Choosing the producers' bus from settings: kombu when TANDEM_BUS_URL is set, else the embedded inbox."""

from __future__ import annotations

from adapters.bus import KombuBus, Topology
from adapters.store.inbox import Inbox
from adapters.store.store import Store
from config.mappings import Configuration
from config.settings import Settings
from producers.api import InboxBus, Publisher


def publisher_for(settings: Settings, configuration: Configuration, store_url: str, source: str) -> Publisher:
    if settings.bus_url is not None:
        return Publisher(KombuBus(settings.bus_url, Topology(settings.namespace)), source)
    store = Store(store_url)
    return Publisher(
        InboxBus(Inbox(store.engine), configuration.mappings, configuration.systems, source), source
    )
