"""The dependencies that use cases run with: the mappings, the coupling store and one connector per system."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from adapters.connectors.base import Connector
from adapters.store.store import Store
from domain.mapping import MappingSet


@dataclass
class Runtime:
    mappings: MappingSet
    store: Store
    connectors: Mapping[str, Connector]
    batch_size: int = 500

    def connector(self, system: str) -> Connector:
        try:
            return self.connectors[system]
        except KeyError:
            raise KeyError(f"no connector for system {system!r}") from None

    def close(self) -> None:
        for connector in self.connectors.values():
            connector.close()
        self.store.close()
