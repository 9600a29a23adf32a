"""The SQL connector: any SQLAlchemy database as a system, its tables reflected, every value bound."""

from __future__ import annotations

import threading
import uuid
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy import types as t
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Engine

from adapters.connectors.base import RecordRejected, SystemUnavailable, UnknownTable
from adapters.connectors.sqltypes import coerce, coerce_key, new_version
from adapters.sqlengine import make_engines, one_of
from domain.filters import Condition, Filter, Op
from domain.mapping import NewKeys, TableSide
from domain.values import Record, Value, as_key, canonical

CHUNK = 500
# MySQL/MariaDB report bad values as OperationalError; these codes blame the record, not the server.
_MYSQL_DATA_ERRORS = {1048, 1264, 1265, 1292, 1364, 1366, 1406, 1411, 3819, 4025}


class SqlConnector:
    def __init__(self, name: str, url: str, schema: str | None = None, engine: Engine | None = None) -> None:
        self.name = name
        self.schema = schema
        self.engine, self.reader = (engine, engine) if engine is not None else make_engines(url)
        self._tables: dict[str, sa.Table] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self.engine.dispose()
        self.reader.dispose()

    # --- tables ---------------------------------------------------------------------------------

    def table(self, name: str) -> sa.Table:
        with self._lock:
            if name not in self._tables:
                try:
                    with _translated(self.name):
                        self._tables[name] = _as_stored(
                            sa.Table(name, sa.MetaData(), schema=self.schema, autoload_with=self.engine),
                            self.engine.dialect.name,
                        )
                except sa_exc.NoSuchTableError:
                    raise UnknownTable(f"{self.name} has no table {name!r}") from None
            return self._tables[name]

    def _column(self, table: sa.Table, name: str) -> sa.Column[Any]:
        try:
            return table.c[name]
        except KeyError:
            raise UnknownTable(f"{self.name} table {table.name!r} has no column {name!r}") from None

    def check(self, side: TableSide, columns: Sequence[str]) -> list[str]:
        try:
            table = self.table(side.table)
        except UnknownTable as exc:
            return [str(exc)]
        return [f"{self.name} table {side.table!r} has no column {c!r}" for c in columns if c not in table.c]

    def _select(
        self, side: TableSide, columns: Sequence[str]
    ) -> tuple[sa.Table, sa.Select[Any], sa.Column[Any]]:
        table = self.table(side.table)
        key = self._column(table, side.key)
        # the key is always read: records are returned by key, and pages continue after the last key
        names = dict.fromkeys([side.key, *columns])
        return table, sa.select(*(self._column(table, c) for c in names)), key

    # --- reads ----------------------------------------------------------------------------------

    def read(self, side: TableSide, keys: Sequence[str], columns: Sequence[str]) -> dict[str, Record]:
        _, select, key = self._select(side, columns)
        wanted = [k for k in (coerce_key(key, k) for k in dict.fromkeys(keys)) if k is not None]
        found: dict[str, Record] = {}
        with _translated(self.name), self.reader.connect() as connection:
            for start in range(0, len(wanted), CHUNK):
                rows = connection.execute(select.where(self._one_of(key, wanted[start : start + CHUNK])))
                for row in rows.mappings():
                    record = _canonical(row)
                    found[as_key(record[side.key]) or ""] = record
        return found

    def query(
        self,
        side: TableSide,
        columns: Sequence[str],
        where: Filter | None = None,
        modified_since: Value = None,
        page: int = 1000,
    ) -> Iterator[list[Record]]:
        table, select, key = self._select(side, columns)
        if where:
            select = select.where(self.compile(table, where))
        if modified_since is not None:
            if not side.version:
                raise UnknownTable(f"{self.name} table {side.table!r} has no version column configured")
            version = self._column(table, side.version)
            select = select.where(version >= coerce(version, modified_since))
        select = select.order_by(key).limit(page)
        last: Any = None
        while True:
            statement = select if last is None else select.where(key > last)
            with _translated(self.name), self.reader.connect() as connection:
                rows = list(connection.execute(statement).mappings())
            if not rows:
                return
            last = rows[-1][side.key]
            yield [_canonical(row) for row in rows]
            if len(rows) < page:
                return

    def find(
        self,
        side: TableSide,
        columns: Sequence[str],
        groups: Sequence[Mapping[str, Sequence[Value]]],
        folded: set[str],
    ) -> list[Record]:
        table, select, key = self._select(side, columns)
        clauses = []
        for group in groups:
            parts = []
            for name, values in group.items():
                column = self._column(table, name)
                if name in folded:
                    parts.append(self._one_of(self._fold(column), [str(v).lower() for v in values]))
                else:
                    bound = [
                        b
                        for b in (coerce_key(column, str(v)) if v is not None else None for v in values)
                        if b is not None
                    ]
                    parts.append(self._one_of(self._exact(column), bound))
            if parts:
                clauses.append(sa.and_(*parts))
        if not clauses:
            return []
        with _translated(self.name), self.reader.connect() as connection:
            rows = connection.execute(select.where(sa.or_(*clauses)).order_by(key)).mappings()
            return [_canonical(row) for row in rows]

    def _one_of(self, column: sa.ColumnElement[Any], values: Sequence[Any]) -> sa.ColumnElement[bool]:
        return one_of(column, values, self.engine.dialect.name)

    def _fold(self, column: sa.Column[Any]) -> sa.ColumnElement[Any]:
        # SQLite's lower() only folds ASCII; the engine registers a Unicode-aware one (see sqlengine).
        if self.engine.dialect.name == "sqlite":
            return sa.func.tandem_lower(column, type_=column.type)
        # typed: `= ANY(:array)` (see one_of) needs the element type of the array it binds
        return sa.func.lower(column, type_=column.type)

    def compile(self, table: sa.Table, where: Filter) -> sa.ColumnElement[bool]:
        """The filter as a SQL expression; every value travels as a bound parameter."""
        return sa.and_(sa.true(), *(self._condition(table, c) for c in where.conditions))

    def _condition(self, table: sa.Table, condition: Condition) -> sa.ColumnElement[bool]:
        column = self._column(table, condition.field)
        exact = self._exact(column)
        op, value = condition.op, condition.value
        if op is Op.IS_NULL:
            return column.is_(None)
        if op is Op.NOT_NULL:
            return column.is_not(None)
        if op in (Op.IN, Op.NOT_IN):
            assert isinstance(value, tuple)
            values = [coerce(column, v) for v in value if v is not None]
            has_null = any(v is None for v in value)
            inside = sa.or_(exact.in_(values), column.is_(None)) if has_null else exact.in_(values)
            if op is Op.IN:
                return inside
            return (
                sa.and_(exact.not_in(values), column.is_not(None))
                if has_null
                else sa.or_(exact.not_in(values), column.is_(None))
            )
        assert not isinstance(value, tuple)
        if op is Op.EQ:
            return column.is_(None) if value is None else exact == coerce(column, value)
        if op is Op.NE:
            return (
                column.is_not(None)
                if value is None
                else sa.or_(exact != coerce(column, value), column.is_(None))
            )
        if value is None:
            return sa.false()
        # an explicit parameter: SQLAlchemy refuses to order against a bare True or False
        bound = sa.literal(coerce(column, value), column.type)
        comparisons: dict[Op, sa.ColumnElement[bool]] = {
            Op.LT: exact < bound,
            Op.LE: exact <= bound,
            Op.GT: exact > bound,
            Op.GE: exact >= bound,
        }
        return comparisons[op]

    def _exact(self, column: sa.Column[Any]) -> sa.ColumnElement[Any]:
        # MySQL and MariaDB compare text without regard to case by default; filters are case-sensitive.
        # MariaDB's utf8mb4_bin also pads with spaces ('a' = 'a '); its nopad_bin compares exactly.
        if self.engine.dialect.name in ("mysql", "mariadb") and isinstance(column.type, t.String):
            mariadb = getattr(self.engine.dialect, "is_mariadb", False)
            return column.collate("utf8mb4_nopad_bin" if mariadb else "utf8mb4_bin")
        return column

    # --- writes ---------------------------------------------------------------------------------

    def create(self, side: TableSide, rows: Sequence[Record]) -> list[str]:
        table = self.table(side.table)
        key = self._column(table, side.key)
        prepared = [self._new_row(side, table, key, row) for row in rows]
        groups: dict[tuple[str, ...], list[int]] = defaultdict(list)
        for index, row in enumerate(prepared):
            groups[tuple(sorted(row))].append(index)
        keys: list[str] = [""] * len(prepared)
        with _translated(self.name), self.engine.begin() as connection:
            for names, indexes in groups.items():
                statement = sa.insert(table).returning(key, sort_by_parameter_order=True)
                params = [{name: prepared[n][name] for name in names} for n in indexes]
                result = connection.execute(statement, params)
                for index, created in zip(indexes, result.scalars().all(), strict=True):
                    keys[index] = as_key(canonical(created)) or ""
        return keys

    def _new_row(self, side: TableSide, table: sa.Table, key: sa.Column[Any], row: Record) -> dict[str, Any]:
        values = {name: coerce(self._column(table, name), value) for name, value in row.items()}
        if values.get(side.key) is None:
            values.pop(side.key, None)
            if side.new_keys is NewKeys.UUID:
                values[side.key] = coerce(key, _new_key(key, side.key_prefix))
        if side.version and side.version not in row:
            version = self._column(table, side.version)
            stamp = new_version(version)
            values[side.version] = 1 if isinstance(stamp, sa.ColumnElement) else stamp
        return values

    def update(self, side: TableSide, changes: Mapping[str, Record]) -> None:
        table = self.table(side.table)
        key = self._column(table, side.key)
        version = self._column(table, side.version) if side.version else None
        batches: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for record_key, values in changes.items():
            bound_key = coerce_key(key, record_key)
            if bound_key is None or not values:
                continue
            names = tuple(sorted(values))
            params = {f"p{i}": coerce(self._column(table, c), values[c]) for i, c in enumerate(names)}
            params["k"] = bound_key
            batches[names].append(params)
        with _translated(self.name), self.engine.begin() as connection:
            for names, batch in batches.items():
                assignments: dict[Any, Any] = {table.c[c]: sa.bindparam(f"p{i}") for i, c in enumerate(names)}
                if version is not None and version.name not in names:
                    assignments[version] = new_version(version)
                statement = sa.update(table).where(key == sa.bindparam("k")).values(assignments)
                connection.execute(statement, batch)

    def delete(self, side: TableSide, keys: Sequence[str]) -> None:
        table = self.table(side.table)
        key = self._column(table, side.key)
        bound = [b for b in (coerce_key(key, k) for k in keys) if b is not None]
        with _translated(self.name), self.engine.begin() as connection:
            for start in range(0, len(bound), CHUNK):
                connection.execute(sa.delete(table).where(self._one_of(key, bound[start : start + CHUNK])))


def _as_stored(table: sa.Table, dialect: str) -> sa.Table:
    """Reflected types as the values they hold: MySQL's BOOLEAN is TINYINT(1); SQLite integers are 64-bit."""
    for column in table.c:
        kind = column.type
        if dialect in ("mysql", "mariadb") and isinstance(kind, mysql.TINYINT) and kind.display_width == 1:
            column.type = t.Boolean()
        elif dialect == "sqlite" and isinstance(kind, t.Integer) and not isinstance(kind, t.BigInteger):
            column.type = t.BigInteger()
    return table


def _new_key(column: sa.Column[Any], prefix: str) -> str:
    """A UUID key, shortened to random hex when the column is narrower than a UUID (e.g. Code[20])."""
    generated = uuid.uuid4()
    length = getattr(column.type, "length", None)
    if length is None or len(prefix) + 36 <= length:
        return prefix + str(generated)
    room = length - len(prefix)
    if room < 12:
        raise RecordRejected(
            f"{column.table.name}.{column.name} is too narrow for generated keys ({length} characters)"
        )
    return prefix + generated.hex[:room].upper()


def _canonical(row: Mapping[Any, Any]) -> Record:
    return {str(name): canonical(value) for name, value in row.items()}


class _translated:
    """Maps driver errors to the connector's: a server away is SystemUnavailable, bad data RecordRejected."""

    def __init__(self, system: str) -> None:
        self.system = system

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        if error is None or not isinstance(error, sa_exc.SQLAlchemyError):
            return
        if isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError):
            code = getattr(getattr(error, "orig", None), "args", [None])[0]
            if not (isinstance(code, int) and code in _MYSQL_DATA_ERRORS):
                raise SystemUnavailable(f"{self.system} is unavailable: {_first_line(error)}") from error
        if isinstance(error, sa_exc.DBAPIError | sa_exc.StatementError):
            raise RecordRejected(f"{self.system} refused the write: {_first_line(error)}") from error


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__
