"""Field transforms: small pure functions applied, in order, to a value on its way into a system."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from domain.errors import TransformError
from domain.values import Value, same


class Transform(Protocol):
    def apply(self, value: Value) -> Value: ...


def _text(name: str, value: Value) -> str:
    if not isinstance(value, str):
        raise TransformError(f"{name} expects text, got {type(value).__name__} {value!r}")
    return value


def _number(name: str, value: Value) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TransformError(f"{name} expects a number, got {type(value).__name__} {value!r}")
    return value


@dataclass(frozen=True)
class Upper:
    def apply(self, value: Value) -> Value:
        return None if value is None else _text("upper", value).upper()


@dataclass(frozen=True)
class Lower:
    def apply(self, value: Value) -> Value:
        return None if value is None else _text("lower", value).lower()


@dataclass(frozen=True)
class Title:
    def apply(self, value: Value) -> Value:
        return None if value is None else _text("title", value).title()


@dataclass(frozen=True)
class Trim:
    def apply(self, value: Value) -> Value:
        return None if value is None else _text("trim", value).strip()


@dataclass(frozen=True)
class Prefix:
    text: str

    def apply(self, value: Value) -> Value:
        return None if value is None else self.text + _text("prefix", value)


@dataclass(frozen=True)
class Suffix:
    text: str

    def apply(self, value: Value) -> Value:
        return None if value is None else _text("suffix", value) + self.text


@dataclass(frozen=True)
class Replace:
    old: str
    new: str

    def apply(self, value: Value) -> Value:
        return None if value is None else _text("replace", value).replace(self.old, self.new)


@dataclass(frozen=True)
class RegexReplace:
    pattern: re.Pattern[str]
    replacement: str

    def apply(self, value: Value) -> Value:
        if value is None:
            return None
        try:
            return self.pattern.sub(self.replacement, _text("regex_replace", value))
        except (re.error, IndexError) as exc:
            raise TransformError(f"regex_replace failed: {exc}") from exc


@dataclass(frozen=True)
class Substring:
    """Characters from `start` (0-based), at most `length` of them (all the rest when None)."""

    start: int = 0
    length: int | None = None

    def apply(self, value: Value) -> Value:
        if value is None:
            return None
        text = _text("substring", value)
        end = None if self.length is None else self.start + self.length
        return text[self.start : end]


@dataclass(frozen=True)
class Round:
    digits: int = 0

    def apply(self, value: Value) -> Value:
        if value is None:
            return None
        rounded = round(_number("round", value), self.digits)
        return int(rounded) if self.digits <= 0 else rounded


@dataclass(frozen=True)
class DateFormat:
    """Re-formats a date or timestamp held as text: parsed with `source` (ISO 8601 when None)."""

    target: str
    source: str | None = None

    def apply(self, value: Value) -> Value:
        if value is None:
            return None
        text = _text("date_format", value)
        try:
            moment = (
                dt.datetime.strptime(text, self.source) if self.source else dt.datetime.fromisoformat(text)
            )
        except ValueError as exc:
            raise TransformError(f"date_format cannot read {text!r}: {exc}") from exc
        return moment.strftime(self.target)


UNMAPPED_ERROR = "error"
UNMAPPED_KEEP = "keep"
UNMAPPED_NULL = "null"


@dataclass(frozen=True)
class ValueMap:
    """Translates listed values (option sets); `unmapped` says what happens to any other value."""

    pairs: tuple[tuple[Value, Value], ...]
    unmapped: str = UNMAPPED_ERROR

    def apply(self, value: Value) -> Value:
        for source, target in self.pairs:
            if same(source, value):
                return target
        if value is None or self.unmapped == UNMAPPED_NULL:
            return None
        if self.unmapped == UNMAPPED_KEEP:
            return value
        known = ", ".join(repr(source) for source, _ in self.pairs)
        raise TransformError(f"value {value!r} is not in the value map (known: {known})")


@dataclass(frozen=True)
class IfBlank:
    """Replaces NULL or blank text with a fixed value."""

    value: Value

    def apply(self, value: Value) -> Value:
        if value is None or (isinstance(value, str) and not value.strip()):
            return self.value
        return value


@dataclass(frozen=True)
class ToText:
    def apply(self, value: Value) -> Value:
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)


@dataclass(frozen=True)
class ToNumber:
    def apply(self, value: Value) -> Value:
        if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
            return value
        text = _text("to_number", value).strip()
        try:
            return int(text)  # exact, however many digits (a float keeps only about 16)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError as exc:
            raise TransformError(f"to_number cannot read {text!r}") from exc
        if not math.isfinite(number):
            raise TransformError(f"to_number cannot read {text!r}: not a finite number")
        return int(number) if number.is_integer() and "." not in text else number


@dataclass(frozen=True)
class Chain:
    """Transforms applied left to right; the empty chain copies the value."""

    steps: Sequence[Transform] = field(default_factory=tuple)

    def apply(self, value: Value) -> Value:
        for step in self.steps:
            value = step.apply(value)
        return value

    def __bool__(self) -> bool:
        return bool(self.steps)


IDENTITY = Chain()
