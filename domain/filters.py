"""Filters as data: conditions on a record's fields, evaluated here and compiled to SQL by the connector."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from domain.values import Value, same


class Op(StrEnum):
    EQ = "eq"
    NE = "ne"
    IN = "in"
    NOT_IN = "not_in"
    LT = "lt"
    LE = "le"
    GT = "gt"
    GE = "ge"
    IS_NULL = "is_null"
    NOT_NULL = "not_null"


LIST_OPS = frozenset({Op.IN, Op.NOT_IN})
VALUELESS_OPS = frozenset({Op.IS_NULL, Op.NOT_NULL})
ORDER_OPS = frozenset({Op.LT, Op.LE, Op.GT, Op.GE})


@dataclass(frozen=True)
class Condition:
    """One test of one field. NULL-safe: `ne` and `not_in` hold for a NULL field, orderings never do."""

    field: str
    op: Op
    value: Value | tuple[Value, ...] = None

    def holds(self, record: Mapping[str, Value]) -> bool:
        actual = record.get(self.field)
        if self.op is Op.IS_NULL:
            return actual is None
        if self.op is Op.NOT_NULL:
            return actual is not None
        if self.op in LIST_OPS:
            assert isinstance(self.value, tuple)
            found = any(same(actual, option) for option in self.value)
            return found if self.op is Op.IN else not found
        assert not isinstance(self.value, tuple)
        if self.op is Op.EQ:
            return same(actual, self.value)
        if self.op is Op.NE:
            return not same(actual, self.value)
        return _ordered(self.op, actual, self.value)


def _ordered(op: Op, actual: Value, bound: Value) -> bool:
    if actual is None or bound is None:
        return False
    try:
        if op is Op.LT:
            return actual < bound  # type: ignore[operator]
        if op is Op.LE:
            return actual <= bound  # type: ignore[operator]
        if op is Op.GT:
            return actual > bound  # type: ignore[operator]
        return actual >= bound  # type: ignore[operator]
    except TypeError:
        return False


@dataclass(frozen=True)
class Filter:
    """All conditions must hold; the empty filter admits every record."""

    conditions: tuple[Condition, ...] = ()

    def matches(self, record: Mapping[str, Value]) -> bool:
        return all(condition.holds(record) for condition in self.conditions)

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(condition.field for condition in self.conditions)

    def __bool__(self) -> bool:
        return bool(self.conditions)


EVERYTHING = Filter()
