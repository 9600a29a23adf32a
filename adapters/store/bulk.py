"""Bulk inserts into the store's own tables: on PostgreSQL one short statement with one array per column."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite


def insert_rows(
    connection: sa.Connection,
    table: sa.Table,
    rows: Sequence[dict[str, Any]],
    *,
    returning: sa.Column[Any] | None = None,
    unique: Sequence[str] | None = None,
) -> list[Any]:
    """Inserts rows (all with the same keys); returns `returning` of the new rows, in the rows' order.

    With `unique`, rows clashing on those columns are skipped (and return nothing). On PostgreSQL the
    rows travel as arrays through unnest(): a multi-row VALUES statement with thousands of parameters
    costs the driver more to prepare than the server takes to run it.
    """
    if not rows:
        return []
    if connection.dialect.name == "postgresql":
        return _unnest(connection, table, rows, returning, unique)
    statement: Any = sqlite.insert(table) if connection.dialect.name == "sqlite" else sa.insert(table)
    if unique:
        statement = statement.on_conflict_do_nothing(index_elements=list(unique))
    if returning is None:
        connection.execute(statement, list(rows))
        return []
    if unique:
        return list(connection.execute(statement.returning(returning), list(rows)).scalars())
    return list(
        connection.execute(statement.returning(returning, sort_by_parameter_order=True), list(rows)).scalars()
    )


def _unnest(
    connection: sa.Connection,
    table: sa.Table,
    rows: Sequence[dict[str, Any]],
    returning: sa.Column[Any] | None,
    unique: Sequence[str] | None,
) -> list[Any]:
    quote = connection.dialect.identifier_preparer.quote
    names = list(rows[0])
    arrays, selects, params = [], [], {}
    for index, name in enumerate(names):
        column = table.c[name]
        is_json = isinstance(column.type, sa.JSON)
        kind = "text" if is_json else column.type.compile(dialect=postgresql.dialect())  # type: ignore[no-untyped-call]
        values = [row[name] for row in rows]
        params[f"p{index}"] = [None if v is None else json.dumps(v) for v in values] if is_json else values
        arrays.append(f"CAST(:p{index} AS {kind}[])")
        selects.append(f"v.c{index}::json" if is_json else f"v.c{index}")
    columns = ", ".join(quote(n) for n in names)
    aliases = ", ".join(f"c{i}" for i in range(len(names)))
    # only our own table's identifiers, quoted by the dialect, go into the text; every value is bound
    sql = (
        f"INSERT INTO {quote(table.name)} ({columns}) SELECT {', '.join(selects)} "  # noqa: S608
        f"FROM unnest({', '.join(arrays)}) WITH ORDINALITY AS v({aliases}, ord) ORDER BY ord"
    )
    if unique:
        sql += f" ON CONFLICT ({', '.join(quote(n) for n in unique)}) DO NOTHING"
    if returning is None:
        connection.execute(sa.text(sql), params)
        return []
    sql += f" RETURNING {quote(returning.name)}"
    # rows are inserted in `ord` order, so their new serial ids ascend in the same order
    return sorted(connection.execute(sa.text(sql), params).scalars())
