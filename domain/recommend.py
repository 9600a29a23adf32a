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
    sending, getting = _outgoing(mapping, this, mine), _outgoing(mapping, other, theirs)
    if sending and not theirs:
        return Recommendation(this, f"only {this} changed since the last sync ({', '.join(mine)})")
    if getting and not mine:
        return Recommendation(other, f"only {other} changed since the last sync ({', '.join(theirs)})")
    if mine and theirs:
        return Recommendation(
            None, f"both changed ({this}: {', '.join(mine)}; {other}: {', '.join(theirs)}): merge"
        )
    if mine or theirs:
        changed, columns = (this, mine) if mine else (other, theirs)
        target = mapping.other(changed)
        why = (
            f"mapping {mapping.name} does not flow from {changed} to {target}"
            if not mapping.may_flow(changed, target)
            else f"none of those fields flows from {changed} to {target}"
        )
        return Recommendation(
            None, f"only {changed} changed since the last sync ({', '.join(columns)}), but {why}: merge"
        )
    return Recommendation(None, "nothing changed on either side since the last sync: merge")


def _outgoing(mapping: TableMapping, system: str, columns: list[str]) -> list[str]:
    """The changed columns that some field would carry from `system` to the other side."""
    target = mapping.other(system)
    flowing = {
        f.columns[system] for f in mapping.active_fields() if system in f.columns and f.flows(system, target)
    }
    return [c for c in columns if c in flowing]
