"""Recommending a sync direction for one coupled pair, as BC's Synchronize Now does, with the reason."""

from __future__ import annotations

from dataclasses import dataclass

from domain.coupling import Coupling
from domain.mapping import TableMapping
from domain.planner import changed_columns
from domain.values import Record


@dataclass(frozen=True)
class Recommendation:
    source: str | None  # push from this system; None means merge
    reason: str


def recommend(
    mapping: TableMapping, coupling: Coupling, records: dict[str, Record], this: str
) -> Recommendation:
    """Send when only this side changed, get when only the other did, merge when both or neither."""
    other = mapping.other(this)
    if coupling.base is None:
        return Recommendation(None, "the pair was never synchronized: merge, conflicts go by the policy")
    mine = changed_columns(mapping, coupling, this, records[this])
    theirs = changed_columns(mapping, coupling, other, records[other])
    if mine and not theirs and mapping.may_flow(this, other):
        return Recommendation(this, f"only {this} changed since the last sync ({', '.join(mine)})")
    if theirs and not mine and mapping.may_flow(other, this):
        return Recommendation(other, f"only {other} changed since the last sync ({', '.join(theirs)})")
    if mine and theirs:
        return Recommendation(
            None, f"both changed ({this}: {', '.join(mine)}; {other}: {', '.join(theirs)}): merge"
        )
    return Recommendation(None, "nothing changed on either side since the last sync: merge")
