"""Fuzzing the filter compiler: whatever the values, they travel as bound parameters, never as SQL text."""

from __future__ import annotations

import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import mysql, postgresql, sqlite

from adapters.connectors.base import RecordRejected
from adapters.connectors.sql import SqlConnector
from domain.filters import Condition, Filter, Op
from domain.values import Value

TABLE = sa.Table(
    "customer",
    sa.MetaData(),
    sa.Column("no", sa.String(50), primary_key=True),
    sa.Column("name", sa.String(200)),
    sa.Column("credit", sa.Integer),
    sa.Column("blocked", sa.Boolean),
)
DIALECTS = {"postgresql": postgresql.dialect(), "sqlite": sqlite.dialect(), "mysql": mysql.dialect()}
HOSTILE = st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=3, max_size=40).filter(
    lambda s: s.strip() and s.lower() not in {"customer", "name", "credit", "blocked"}
)
TEXT_OPS = [Op.EQ, Op.NE, Op.LT, Op.LE, Op.GT, Op.GE]


def conditions() -> st.SearchStrategy[Condition]:
    one = st.builds(lambda op, v: Condition("name", op, v), st.sampled_from(TEXT_OPS), HOSTILE)
    many = st.builds(
        lambda op, vs: Condition("name", op, tuple(vs)),
        st.sampled_from([Op.IN, Op.NOT_IN]),
        st.lists(HOSTILE, min_size=1, max_size=5),
    )
    number = st.builds(
        lambda op, v: Condition("credit", op, v), st.sampled_from(TEXT_OPS), st.integers(-(10**9), 10**9)
    )
    return st.one_of(one, many, number)


def connector(dialect: str) -> SqlConnector:
    engine = sa.create_engine("sqlite://")
    engine.dialect.name = dialect  # the compiler picks dialect-specific forms (collations) by name
    return SqlConnector("erp", "sqlite://", engine=engine)


@settings(max_examples=300, deadline=None)
@given(st.lists(conditions(), min_size=1, max_size=4), st.sampled_from(sorted(DIALECTS)))
def test_no_filter_value_ever_appears_in_the_sql_text(found, dialect):
    where = Filter(tuple(found))
    try:
        expression = connector(dialect).compile(TABLE, where)
    except RecordRejected as exc:  # a value the column cannot hold (a NUL character): a clear refusal
        assert "name" in str(exc)
        return
    compiled = sa.select(TABLE).where(expression).compile(dialect=DIALECTS[dialect])
    text = str(compiled)
    # the values leave no trace in the text: plain stand-ins of the same types give the same statement
    # (a search for each value in the text would also find "loc" in "blocked")
    plain = connector(dialect).compile(TABLE, Filter(tuple(_plain(c) for c in found)))
    assert text == str(sa.select(TABLE).where(plain).compile(dialect=DIALECTS[dialect]))
    values = [v for c in found for v in (c.value if isinstance(c.value, tuple) else (c.value,))]
    bound: set[str] = set()
    for param in compiled.params.values():
        bound.update(map(str, param if isinstance(param, list) else [param]))
    for value in values:
        assert str(value) in bound, f"{value!r} is not among the bound parameters {bound}"


def _plain(condition: Condition) -> Condition:
    """The condition with each value replaced by an innocuous one of its type."""

    def stand_in(value: Value) -> Value:
        return "plain" if isinstance(value, str) else 0

    value = condition.value
    plain = tuple(stand_in(v) for v in value) if isinstance(value, tuple) else stand_in(value)
    return Condition(condition.field, condition.op, plain)
