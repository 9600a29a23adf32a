"""Shared fixtures: a fresh database per test on SQLite, PostgreSQL or MariaDB."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from tests import services


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'db.sqlite'}"


def _postgres_database() -> Iterator[str]:
    services.need("PostgreSQL", services.POSTGRES, 5432)
    name = services.unique("tandem")
    admin = sa.create_engine(services.POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(services.POSTGRES).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


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
    yield from _postgres_database()


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    yield from _mariadb_database()


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A fresh, empty database for the coupling store: SQLite and PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.sqlite'}"
    else:
        yield from _postgres_database()


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def system_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A fresh, empty database for a system behind the SQL connector."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'system.sqlite'}"
    elif request.param == "postgres":
        yield from _postgres_database()
    else:
        yield from _mariadb_database()
