"""Shared fixtures: a fresh database per test on SQLite, PostgreSQL or MariaDB; worlds; the CLI runner."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests import services
from tests.factories import BACKENDS, MakeWorld, World, build_world, databases, postgres_database
from tests.runner import Tandem


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'db.sqlite'}"


def _mariadb_database() -> Iterator[str]:
    services.need("MariaDB", services.MARIADB, 3306)
    name = services.unique("tandem")
    admin = sa.create_engine(services.MARIADB)
    with admin.begin() as connection:
        connection.execute(
            sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        )
    url = (
        sa.make_url(services.MARIADB)
        .set(database=name, query={"charset": "utf8mb4"})
        .render_as_string(hide_password=False)
    )
    try:
        yield url
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with postgres_database() as url:
        yield url


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    yield from _mariadb_database()


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A fresh, empty database for the coupling store: SQLite and PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.sqlite'}"
    else:
        with postgres_database() as url:
            yield url


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def system_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A fresh, empty database for a system behind the SQL connector."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'system.sqlite'}"
    elif request.param == "postgres":
        with postgres_database() as url:
            yield url
    else:
        yield from _mariadb_database()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The store and both systems on SQLite, then on PostgreSQL."""
    return str(request.param)


@pytest.fixture
def urls(backend: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    with databases(backend, tmp_path) as found:
        yield found


@pytest.fixture
def make_world(urls: dict[str, str]) -> Iterator[MakeWorld]:
    """Builds worlds on the test's databases (tables are created once; later worlds reuse them)."""
    made: list[World] = []

    def make(**options: Any) -> World:
        world = build_world(urls, create=not made, **options)
        made.append(world)
        return world

    yield make
    for world in reversed(made):
        world.close()


@pytest.fixture
def world(make_world: MakeWorld) -> World:
    """The default world (a test module that needs other options defines its own `world`)."""
    return make_world()


@pytest.fixture
def tandem(world: World, tmp_path: Path) -> Tandem:
    """The command against the test's `world` (each test module says which world that is)."""
    return Tandem(world, tmp_path / "home", world.write_config(tmp_path / "mappings.yaml"))
