"""Turning canonical values back into what a SQL column takes, refusing what it cannot hold."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from typing import Any

from sqlalchemy import Column
from sqlalchemy import types as t

from adapters.connectors.base import RecordRejected
from domain.values import Value


def coerce(column: Column[Any], value: Value) -> Any:
    """The driver value for `value` in `column`; RecordRejected names the column when it does not fit."""
    if value is None:
        return None
    try:
        return _coerce(column.type, value)
    except (ValueError, TypeError, decimal.InvalidOperation, OverflowError) as exc:
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        raise RecordRejected(
            f"{column.table.name}.{column.name}: cannot store {shown} as {column.type}: {exc}"
        ) from None


def _coerce(kind: t.TypeEngine[Any], value: Value) -> Any:
    if isinstance(kind, t.Boolean):
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
        raise ValueError("not a boolean")
    if isinstance(kind, t.Integer):
        if isinstance(value, bool):
            raise ValueError("a boolean is not an integer")
        if isinstance(value, float) and not value.is_integer():
            raise ValueError("has a fraction")
        whole = int(value) if isinstance(value, int | float) else int(str(value).strip())
        low, high = _integer_range(kind)
        if not low <= whole <= high:
            raise ValueError(f"out of range ({low} to {high})")
        return whole
    if isinstance(kind, t.Numeric):
        if isinstance(value, bool):
            raise ValueError("a boolean is not a number")
        number = decimal.Decimal(str(value))
        if not number.is_finite():
            raise ValueError("not a finite number")
        if not isinstance(kind, t.Float) and kind.scale is not None:
            # a DECIMAL(p, s) would round away further decimals silently, or overflow
            if number.normalize().as_tuple().exponent < -kind.scale:  # type: ignore[operator]
                raise ValueError(f"more than {kind.scale} decimals")
            if kind.precision is not None and number.adjusted() >= kind.precision - kind.scale:
                raise ValueError(f"more than {kind.precision - kind.scale} digits before the decimal point")
        return number if kind.asdecimal else float(number)
    if isinstance(kind, t.DateTime):
        moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
        if not kind.timezone and moment.tzinfo is not None:
            moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
        return moment
    if isinstance(kind, t.Date):
        return dt.date.fromisoformat(str(value)[:10])
    if isinstance(kind, t.Time):
        return dt.time.fromisoformat(str(value))
    if isinstance(kind, t.Uuid):
        parsed = uuid.UUID(str(value))
        return parsed if kind.as_uuid else str(parsed)
    if isinstance(kind, t.LargeBinary):
        return bytes.fromhex(str(value))
    if isinstance(kind, t.JSON):
        return value
    if isinstance(kind, t.String):
        text = (
            value
            if isinstance(value, str)
            else ("true" if value is True else "false" if value is False else str(value))
        )
        if "\x00" in text:
            raise ValueError("text holds a NUL character")
        if kind.length is not None and len(text) > kind.length:
            raise ValueError(f"longer than {kind.length} characters")
        return text
    return value


def _integer_range(kind: t.Integer) -> tuple[int, int]:
    """The values an integer column can hold: 16, 32 or 64 bits, signed unless the type says unsigned."""
    bits = 16 if isinstance(kind, t.SmallInteger) else 64 if isinstance(kind, t.BigInteger) else 32
    if getattr(kind, "unsigned", False):
        return 0, 2**bits - 1
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def coerce_key(column: Column[Any], key: str) -> Any | None:
    """A stored key in the column's type, or None when no row can have it (e.g. 'abc' for an integer key)."""
    try:
        return _coerce(column.type, key)
    except (ValueError, TypeError, decimal.InvalidOperation, OverflowError):
        return None


def new_version(column: Column[Any]) -> Any:
    """The value that marks a row as just changed, for a modified-at or a version column."""
    if isinstance(column.type, t.DateTime):
        now = dt.datetime.now(dt.UTC)
        return now if column.type.timezone else now.replace(tzinfo=None)
    if isinstance(column.type, t.Integer):
        return column + 1
    return dt.datetime.now(dt.UTC).isoformat()
