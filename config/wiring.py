"""The composition root: builds the store and the connectors that a configuration names."""

from __future__ import annotations

from pathlib import Path

from adapters.connectors.base import Connector
from adapters.connectors.sql import SqlConnector
from adapters.runtime import Runtime
from adapters.store.store import Store
from config.errors import ConfigError, Problem
from config.mappings import Configuration, load_file
from config.settings import Settings


def load_configuration(settings: Settings, path: Path | None = None) -> Configuration:
    return load_file(path or settings.config_path())


def connectors_for(configuration: Configuration) -> dict[str, Connector]:
    built: dict[str, Connector] = {}
    for name, system in configuration.systems.items():
        built[name] = SqlConnector(name, system.url, system.schema)
    return built


def build_runtime(settings: Settings, configuration: Configuration) -> Runtime:
    store = Store(settings.store_url)
    return Runtime(configuration.mappings, store, connectors_for(configuration), settings.batch_size)


def check_systems(configuration: Configuration, connectors: dict[str, Connector]) -> None:
    """Raises ConfigError, with lines, for tables and columns that the systems do not have."""
    problems: list[Problem] = []
    for mapping in configuration.mappings:
        for system in mapping.systems:
            side = mapping.side(system)
            try:
                found = connectors[system].check(side, mapping.columns(system))
            except Exception as exc:
                found = [f"cannot inspect {system}: {exc}"]
            problems.extend(
                configuration.problem(message, "mappings", mapping.name, system) for message in found
            )
    if problems:
        raise ConfigError(configuration.source, problems)
