"""The connector protocol and the two ways a write can fail: the system is away, or the record is refused."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

from domain.filters import Filter
from domain.mapping import TableSide
from domain.values import Record, Value


class SystemUnavailable(Exception):
    """The system cannot be reached now: retry the whole batch later; no record is to blame."""


class RecordRejected(Exception):
    """The system refused this record's values: list it as an error; retrying unchanged will not help."""


class UnknownTable(Exception):
    """A table or column named in the mapping does not exist in the system."""


class Connector(Protocol):
    name: str

    def check(self, side: TableSide, columns: Sequence[str]) -> list[str]:
        """Problems with the table and columns the mapping names (empty when all exist)."""

    def read(self, side: TableSide, keys: Sequence[str], columns: Sequence[str]) -> dict[str, Record]:
        """The records with these keys that exist, by key, in one round trip per few hundred keys."""

    def query(
        self,
        side: TableSide,
        columns: Sequence[str],
        where: Filter | None = None,
        modified_since: Value = None,
        page: int = 1000,
    ) -> Iterator[list[Record]]:
        """Pages of records in key order that pass the filter (and changed at or after modified_since)."""

    def find(
        self,
        side: TableSide,
        columns: Sequence[str],
        groups: Sequence[Mapping[str, Sequence[Value]]],
        folded: set[str],
    ) -> list[Record]:
        """Records where, for any one group, every column holds one of its values (`folded`: ignore case)."""

    def create(self, side: TableSide, rows: Sequence[Record]) -> list[str]:
        """Inserts the rows; returns their keys in order."""

    def update(self, side: TableSide, changes: Mapping[str, Record]) -> None:
        """Writes the changed values of existing records, by key."""

    def delete(self, side: TableSide, keys: Sequence[str]) -> None: ...

    def close(self) -> None: ...
