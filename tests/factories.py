"""A small test world: two SQL systems ("erp" and "crm"), a mapping file built from parameters, a Runtime.

    with databases("postgres", tmp_path) as urls:
        world = build_world(urls, conflict="latest")
        world.insert_customer("C1", name="Contoso")
        create_and_couple(world.rt, "CUSTOMER", "erp", ["C1"])

The ERP has `salesperson` and `customer`, the CRM `systemuser` and `account`; the SALESPEOPLE mapping
pairs the first two and is what CUSTOMER's salesperson lookup goes through. The helpers write "as a
user would": straight into the system's tables, stamping the modified-at column.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from adapters.runtime import Runtime
from adapters.sqlengine import make_engine
from config.mappings import Configuration, load_text
from config.settings import Settings
from config.wiring import build_runtime
from domain.values import Record, canonical_record
from tests import services

Money = sa.Numeric(18, 2)

# the backends a world runs on: SQLite, and PostgreSQL (marked, so `-m "not postgres"` leaves it out)
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]

ERP = sa.MetaData()
sa.Table(
    "salesperson",
    ERP,
    sa.Column("code", sa.String(20), primary_key=True),
    sa.Column("name", sa.String(100)),
    sa.Column("modified", sa.DateTime, nullable=False),
)
sa.Table(
    "customer",
    ERP,
    sa.Column("no", sa.String(20), primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("phone", sa.String(30)),
    sa.Column("city", sa.String(50)),
    sa.Column("credit", Money),
    sa.Column("salesperson", sa.String(20)),
    sa.Column("modified", sa.DateTime, nullable=False),
)

CRM = sa.MetaData()
sa.Table(
    "systemuser",
    CRM,
    sa.Column("systemuserid", sa.String(36), primary_key=True),
    sa.Column("fullname", sa.String(100)),
    sa.Column("modifiedon", sa.DateTime, nullable=False),
)
sa.Table(
    "account",
    CRM,
    sa.Column("accountid", sa.String(36), primary_key=True),
    sa.Column("accountnumber", sa.String(20)),
    sa.Column("name", sa.String(160), nullable=False),
    sa.Column("telephone", sa.String(50)),
    sa.Column("city", sa.String(80)),
    sa.Column("creditlimit", Money),
    sa.Column("ownerid", sa.String(36)),
    sa.Column("statecode", sa.Integer, nullable=False, server_default="0"),
    sa.Column("modifiedon", sa.DateTime, nullable=False),
)

SCHEMAS = {"erp": ERP, "crm": CRM}
# (system, table) -> (key column, modified-at column)
TABLES = {
    ("erp", "salesperson"): ("code", "modified"),
    ("erp", "customer"): ("no", "modified"),
    ("crm", "systemuser"): ("systemuserid", "modifiedon"),
    ("crm", "account"): ("accountid", "modifiedon"),
}


def now() -> dt.datetime:
    """A modified-at stamp as the systems store it (naive UTC, as the SQL connector writes it)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def later(minutes: int) -> dt.datetime:
    """A stamp `minutes` from now: edits that must read as made after (or before) one another."""
    return now() + dt.timedelta(minutes=minutes)


# --- databases -------------------------------------------------------------------------------------


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards (skipped on a developer's machine when down)."""
    services.need("PostgreSQL", services.POSTGRES, 5432)
    name = services.unique("tandem")
    admin = sa.create_engine(services.POSTGRES, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            yield sa.make_url(services.POSTGRES).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@contextmanager
def databases(
    backend: str, folder: Path, names: tuple[str, ...] = ("store", "erp", "crm")
) -> Iterator[dict[str, str]]:
    """One fresh database per name, on "sqlite" (files in `folder`) or "postgres"."""
    if backend == "sqlite":
        yield {name: f"sqlite:///{folder / name}.sqlite" for name in names}
        return
    if backend != "postgres":
        raise ValueError(f"unknown backend {backend!r}")
    with ExitStack() as stack:
        yield {name: stack.enter_context(postgres_database()) for name in names}


# --- the mapping file ------------------------------------------------------------------------------


def mapping_yaml(
    erp_url: str,
    crm_url: str,
    *,
    direction: str = "both",
    conflict: str = "fail",
    deletion: str = "fail",
    sync_only_coupled: bool = True,
    skip_after: int = 2,
    match: bool = False,
    if_uncoupled: str = "error",
    match_fields: Mapping[str, bool | Mapping[str, Any]] | None = None,
    salespeople_match: bool = False,
) -> str:
    """The mapping file's text: SALESPEOPLE (salesperson ↔ systemuser) and CUSTOMER (customer ↔ account).

    `match` makes CUSTOMER's name a match field; `match_fields` instead gives CUSTOMER's match settings
    by ERP column (`{"phone": {"priority": 1}, "name": {"priority": 2, "case_sensitive": True}}`), as
    the mapping file's `match` takes them; `salespeople_match` makes SALESPEOPLE's name a match field.
    """
    settings: dict[str, bool | Mapping[str, Any]] = {"name": True} if match else {}
    if match_fields is not None:
        settings = dict(match_fields)
    unknown = set(settings) - {"name", "phone", "city", "credit"}
    if unknown:
        raise ValueError(f"match_fields: no CUSTOMER field with the ERP column {sorted(unknown)}")

    def matched(fmap: dict[str, Any]) -> dict[str, Any]:
        rule = settings.get(fmap["erp"])
        if rule is not None and rule is not False:
            fmap["match"] = rule if rule is True else dict(rule)
        return fmap

    name_field = matched({"erp": "name", "crm": "name"})
    salesperson_field: dict[str, Any] = {"erp": "name", "crm": "fullname"}
    if salespeople_match:
        salesperson_field["match"] = True
    data = {
        "version": 1,
        "systems": {"erp": {"connector": "sql", "url": erp_url}, "crm": {"connector": "sql", "url": crm_url}},
        "mappings": {
            "SALESPEOPLE": {
                "erp": {"table": "salesperson", "key": "code", "version": "modified", "new_keys": "uuid"},
                "crm": {
                    "table": "systemuser",
                    "key": "systemuserid",
                    "version": "modifiedon",
                    "new_keys": "uuid",
                },
                "direction": "both",
                "fields": [salesperson_field],
            },
            "CUSTOMER": {
                "erp": {
                    "table": "customer",
                    "key": "no",
                    "version": "modified",
                    "new_keys": "uuid",
                    "key_prefix": "C-",
                },
                "crm": {
                    "table": "account",
                    "key": "accountid",
                    "version": "modifiedon",
                    "new_keys": "uuid",
                    "filter": [{"field": "statecode", "op": "eq", "value": 0}],
                },
                "direction": direction,
                "sync_only_coupled": sync_only_coupled,
                "conflict": conflict,
                "deletion": deletion,
                "skip_after": skip_after,
                "depends_on": ["SALESPEOPLE"],
                "fields": [
                    name_field,
                    *(
                        [{"erp": "no", "crm": "accountnumber", "direction": "erp->crm"}]
                        if direction != "crm->erp"
                        else []
                    ),
                    matched({"erp": "phone", "crm": "telephone"}),
                    matched({"erp": "city", "crm": "city"}),
                    matched({"erp": "credit", "crm": "creditlimit"}),
                    {
                        "erp": "salesperson",
                        "crm": "ownerid",
                        "lookup": "SALESPEOPLE",
                        "if_uncoupled": if_uncoupled,
                    },
                ],
            },
        },
    }
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


# --- the world -------------------------------------------------------------------------------------


@dataclass
class World:
    """Both systems' databases, the store's URL, the mapping text and the Runtime built from them."""

    urls: dict[str, str]
    text: str
    configuration: Configuration
    rt: Runtime
    engines: dict[str, sa.Engine] = field(default_factory=dict)

    def write_config(self, path: Path) -> Path:
        path.write_text(self.text, encoding="utf-8")
        return path

    def close(self) -> None:
        self.rt.close()
        for engine in self.engines.values():
            engine.dispose()

    # --- as a user would -----------------------------------------------------------------------

    def _table(self, system: str, table: str) -> tuple[sa.Table, sa.Column[Any], str]:
        key, modified = TABLES[(system, table)]
        found = SCHEMAS[system].tables[table]
        return found, found.c[key], modified

    def insert(
        self, system: str, table: str, rows: list[dict[str, Any]], at: dt.datetime | None = None
    ) -> None:
        """Inserts rows in one statement, stamping modified-at (unless a row carries its own)."""
        found, _, modified = self._table(system, table)
        stamp = at or now()
        with self.engines[system].begin() as connection:
            connection.execute(sa.insert(found), [{modified: stamp, **row} for row in rows])

    def insert_customer(self, no: str, *, at: dt.datetime | None = None, **values: Any) -> str:
        self.insert("erp", "customer", [{"no": no, "name": f"Customer {no}", **values}], at)
        return no

    def insert_account(self, *, at: dt.datetime | None = None, **values: Any) -> str:
        key = str(values.pop("accountid", None) or uuid.uuid4())
        self.insert("crm", "account", [{"accountid": key, "name": f"Account {key[:8]}", **values}], at)
        return key

    def edit(
        self, system: str, table: str, key: str, *, at: dt.datetime | None = None, **values: Any
    ) -> None:
        """Changes one record as a person would, stamping its modified-at."""
        found, key_column, modified = self._table(system, table)
        with self.engines[system].begin() as connection:
            result = connection.execute(
                sa.update(found).where(key_column == key).values({modified: at or now(), **values})
            )
        assert result.rowcount == 1, f"no {system}.{table} row {key!r} to edit"

    def edit_all(self, system: str, table: str, at: dt.datetime | None = None, **values: Any) -> int:
        found, _, modified = self._table(system, table)
        with self.engines[system].begin() as connection:
            return connection.execute(sa.update(found).values({modified: at or now(), **values})).rowcount

    def delete(self, system: str, table: str, key: str) -> None:
        found, key_column, _ = self._table(system, table)
        with self.engines[system].begin() as connection:
            result = connection.execute(sa.delete(found).where(key_column == key))
        assert result.rowcount == 1, f"no {system}.{table} row {key!r} to delete"

    # --- reading -------------------------------------------------------------------------------

    def row(self, system: str, table: str, key: str) -> Record | None:
        """One record in canonical form (numbers as int/float, moments as ISO text), or None."""
        found, key_column, _ = self._table(system, table)
        with self.engines[system].connect() as connection:
            hit = connection.execute(sa.select(found).where(key_column == key)).mappings().first()
        return None if hit is None else canonical_record(dict(hit))

    def rows(self, system: str, table: str) -> list[Record]:
        found, key_column, _ = self._table(system, table)
        with self.engines[system].connect() as connection:
            hits = connection.execute(sa.select(found).order_by(key_column)).mappings().all()
        return [canonical_record(dict(hit)) for hit in hits]

    def count(self, system: str, table: str) -> int:
        found, _, _ = self._table(system, table)
        with self.engines[system].connect() as connection:
            return int(connection.execute(sa.select(sa.func.count()).select_from(found)).scalar_one())

    def customer(self, no: str) -> Record:
        found = self.row("erp", "customer", no)
        assert found is not None, f"no erp customer {no!r}"
        return found

    def account(self, key: str) -> Record:
        found = self.row("crm", "account", key)
        assert found is not None, f"no crm account {key!r}"
        return found

    def counterpart(self, mapping: str, system: str, key: str) -> str | None:
        """The key coupled to `key` of `system` in the store (None when it is not coupled)."""
        table_mapping = self.rt.mappings[mapping]
        coupling = self.rt.store.couplings(table_mapping, system, [key]).get(key)
        return None if coupling is None else coupling.keys[table_mapping.other(system)]

    def snapshot(self) -> dict[str, Any]:
        """Every row of both systems and of the store's tables: compare two to prove nothing was written."""
        found: dict[str, Any] = {f"{s}.{t}": self.rows(s, t) for s, t in TABLES}
        with self.rt.store.engine.connect() as connection:
            for name in ("tandem_coupling", "tandem_job", "tandem_error"):
                rows = connection.execute(sa.text(f"SELECT * FROM {name} ORDER BY id")).mappings().all()
                found[name] = [dict(r) for r in rows]
        return found


def build_world(
    urls: Mapping[str, str], *, batch_size: int = 500, create: bool = True, **options: Any
) -> World:
    """Creates the systems' tables (unless `create` is off) and a Runtime on urls["store"]."""
    engines = {system: make_engine(urls[system]) for system in SCHEMAS}
    if create:
        for system, metadata in SCHEMAS.items():
            metadata.create_all(engines[system])
    text = mapping_yaml(urls["erp"], urls["crm"], **options)
    configuration = load_text(text, "mappings.yaml")
    settings = Settings(database_url=urls["store"], batch_size=batch_size)
    rt = build_runtime(settings, configuration)
    return World(dict(urls), text, configuration, rt, engines)


MakeWorld = Callable[..., World]  # build_world with options: a world on the test's databases
