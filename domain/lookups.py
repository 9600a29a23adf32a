"""Lookups: translating a reference to a record of another mapping through that mapping's couplings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from domain.errors import LookupNotCoupled, TransformError
from domain.mapping import FieldMapping, Unset
from domain.values import Value, as_key, is_blank, same


class Lookups(Protocol):
    def translate(self, mapping: str, source: str, key: str) -> str | None:
        """The key coupled in the other system to `key` of `source` in `mapping`, or None."""


@dataclass(frozen=True)
class LookupTable:
    """Lookups answered from couplings that the caller fetched in bulk beforehand."""

    pairs: Mapping[tuple[str, str, str], str] = field(default_factory=dict)

    def translate(self, mapping: str, source: str, key: str) -> str | None:
        return self.pairs.get((mapping, source, key))


NO_LOOKUPS = LookupTable()


def convey(fmap: FieldMapping, source: str, target: str, value: Value, lookups: Lookups) -> Value:
    """The value that field `fmap` of `source` should have once written into `target`."""
    if not isinstance(fmap.constant, Unset):
        return fmap.constant
    if fmap.lookup is None:
        try:
            return fmap.chain(target).apply(value)
        except TransformError as exc:
            raise TransformError(f"field {fmap.name}: {exc}") from exc
    if is_blank(value):
        return None
    key = as_key(value)
    assert key is not None
    counterpart = lookups.translate(fmap.lookup, source, key)
    if counterpart is None:
        if fmap.blank_if_uncoupled:
            return None
        raise LookupNotCoupled(
            f"field {fmap.name}: the {source} record {key!r} of mapping {fmap.lookup} is not coupled; "
            f"couple it (or sync {fmap.lookup}) and retry"
        )
    return counterpart


def agree(fmap: FieldMapping, current: Value, desired: Value) -> bool:
    """Whether a target already holds the desired value; lookups compare as keys, as couplings do."""
    if fmap.lookup is not None:
        return as_key(current) == as_key(desired)
    return same(current, desired)
