"""Canonical field values: the JSON-shaped form in which both systems' values are compared and stored."""

from __future__ import annotations

import datetime as dt
import decimal
import math
from collections.abc import Mapping
from typing import Any

# A value as the engine sees it: what JSON can hold. Connectors hand records over in this form, so the
# base stored after a sync compares equal to a fresh read of the same row.
Value = None | bool | int | float | str
Record = dict[str, Value]


def canonical(value: Any) -> Value:
    """Turn a driver value into its canonical form (dates become ISO strings, decimals numbers)."""
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ValueError(f"non-finite number {value!r} cannot be synchronized")
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise ValueError(f"non-finite number {value!r} cannot be synchronized")
        if value == value.to_integral_value():
            return int(value)
        return float(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    raise TypeError(f"unsupported value type {type(value).__name__}")


def canonical_record(row: Mapping[str, Any]) -> Record:
    return {name: canonical(value) for name, value in row.items()}


def same(left: Value, right: Value) -> bool:
    """Equality of canonical values; 1 and 1.0 agree, True and 1 do not."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    return left == right


def as_key(value: Value) -> str | None:
    """A record key as the coupling store holds it: a string (keys are compared as strings everywhere)."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def is_blank(value: Value) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")
