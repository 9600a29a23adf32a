"""Fetching, in bulk, the couplings that lookup fields need to translate a batch's references."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from adapters.runtime import Runtime
from domain.lookups import LookupTable
from domain.mapping import TableMapping
from domain.values import Record, as_key


def fetch_lookups(
    rt: Runtime,
    mapping: TableMapping,
    records: Mapping[str, Iterable[Record | None]],
    sources: Collection[str] | None = None,
) -> LookupTable:
    """One query per lookup field and side: the counterparts of every referenced key in `records`."""
    table: dict[tuple[str, str, str], str] = {}
    for fmap in mapping.active_fields():
        if fmap.lookup is None:
            continue
        through = rt.mappings[fmap.lookup]
        for system, column in fmap.columns.items():
            if sources is not None and system not in sources:
                continue
            values = {as_key(r.get(column)) or "" for r in records.get(system, ()) if r is not None} - {""}
            for key, other in rt.store.translate(through, system, values).items():
                table[(through.name, system, key)] = other
    return LookupTable(table)
