"""Table mappings and field mappings: which tables and fields of two systems correspond, and how."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from domain.filters import EVERYTHING, Filter
from domain.transforms import IDENTITY, Chain
from domain.values import Record, Value


class ConflictKind(StrEnum):
    FAIL = "fail"
    PREFER = "prefer"
    LATEST = "latest"


@dataclass(frozen=True)
class ConflictPolicy:
    """What wins when both sides changed a field to different values since the last sync."""

    kind: ConflictKind = ConflictKind.FAIL
    system: str | None = None  # the preferred system, for PREFER

    def __str__(self) -> str:
        return f"prefer {self.system}" if self.kind is ConflictKind.PREFER else self.kind.value


class DeletionPolicy(StrEnum):
    """What happens when one record of a coupled pair is deleted."""

    FAIL = "fail"  # list it as an error; the administrator chooses
    UNCOUPLE = "uncouple"  # remove the coupling, keep the survivor
    RESTORE = "restore"  # re-create the deleted record from the survivor
    PROPAGATE = "propagate"  # delete the survivor too


class NewKeys(StrEnum):
    """How a record that the engine creates gets its key, unless a mapped value or a default gives it."""

    DATABASE = "database"  # the database assigns it (autoincrement, server default)
    UUID = "uuid"  # the engine generates a UUID


@dataclass(frozen=True)
class Template:
    """Default values for records created in a side, chosen by a filter on the source record."""

    values: Record
    when: Filter = EVERYTHING
    priority: int = 0


@dataclass(frozen=True)
class TableSide:
    system: str
    table: str
    key: str
    version: str | None = None
    filter: Filter = EVERYTHING
    templates: tuple[Template, ...] = ()
    new_keys: NewKeys = NewKeys.DATABASE
    key_prefix: str = ""

    def template_for(self, source: Mapping[str, Value]) -> Record:
        for template in sorted(self.templates, key=lambda t: t.priority):
            if template.when.matches(source):
                return dict(template.values)
        return {}


@dataclass(frozen=True)
class MatchRule:
    priority: int = 1
    case_sensitive: bool = False


class Unset:
    """The marker for 'no constant value' (None is a constant: it writes NULL)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET = Unset()


@dataclass(frozen=True)
class FieldMapping:
    """A pair of fields (or a constant into one field); `sources` are the systems whose values flow out."""

    name: str
    columns: Mapping[str, str]
    sources: frozenset[str]
    enabled: bool = True
    constant: Value | Unset = UNSET
    transforms: Mapping[str, Chain] = field(default_factory=dict)
    lookup: str | None = None
    blank_if_uncoupled: bool = False
    match: MatchRule | None = None

    @property
    def is_constant(self) -> bool:
        return not isinstance(self.constant, Unset)

    def flows(self, source: str, target: str) -> bool:
        if source == target or target not in self.columns or source not in self.sources:
            return False
        return self.is_constant or source in self.columns

    def chain(self, target: str) -> Chain:
        return self.transforms.get(target, IDENTITY)


@dataclass(frozen=True)
class TableMapping:
    name: str
    sides: tuple[TableSide, TableSide]
    sources: frozenset[str]
    fields: tuple[FieldMapping, ...]
    sync_only_coupled: bool = True
    depends_on: tuple[str, ...] = ()
    conflict: ConflictPolicy = field(default_factory=ConflictPolicy)
    deletion: DeletionPolicy = DeletionPolicy.FAIL
    skip_after: int = 2

    @property
    def systems(self) -> tuple[str, str]:
        return self.sides[0].system, self.sides[1].system

    def side(self, system: str) -> TableSide:
        for side in self.sides:
            if side.system == system:
                return side
        raise KeyError(f"mapping {self.name} has no side {system!r} (it has {', '.join(self.systems)})")

    def other(self, system: str) -> str:
        first, second = self.systems
        if system == first:
            return second
        if system == second:
            return first
        raise KeyError(f"mapping {self.name} has no side {system!r} (it has {first}, {second})")

    def may_flow(self, source: str, target: str) -> bool:
        return source in self.sources and source != target and target in self.systems

    @property
    def both_ways(self) -> bool:
        return len(self.sources) == 2

    @property
    def direction(self) -> str:
        if self.both_ways:
            return "both"
        (source,) = self.sources
        return f"{source}->{self.other(source)}"

    def active_fields(self) -> Iterator[FieldMapping]:
        return (f for f in self.fields if f.enabled)

    def columns(self, system: str) -> tuple[str, ...]:
        """The columns of a side that the engine reads: key, version, mapped, filtered."""
        side = self.side(system)
        names = [side.key]
        if side.version:
            names.append(side.version)
        names.extend(f.columns[system] for f in self.fields if system in f.columns)
        names.extend(side.filter.fields)
        return tuple(dict.fromkeys(names))

    def mapped_columns(self, system: str) -> tuple[str, ...]:
        """The columns whose values make up this side's base."""
        return tuple(
            dict.fromkeys(
                f.columns[system] for f in self.active_fields() if system in f.columns and not f.is_constant
            )
        )

    @property
    def match_fields(self) -> tuple[FieldMapping, ...]:
        return tuple(f for f in self.active_fields() if f.match is not None)


@dataclass(frozen=True)
class MappingSet:
    """All table mappings of one configuration, by name, with their dependency order."""

    mappings: Mapping[str, TableMapping]

    def __getitem__(self, name: str) -> TableMapping:
        try:
            return self.mappings[name]
        except KeyError:
            known = ", ".join(sorted(self.mappings)) or "none"
            raise KeyError(f"unknown mapping {name!r} (known: {known})") from None

    def __iter__(self) -> Iterator[TableMapping]:
        return iter(self.mappings.values())

    def __len__(self) -> int:
        return len(self.mappings)

    def for_table(self, system: str, table: str) -> list[TableMapping]:
        return [m for m in self if system in m.systems and m.side(system).table == table]

    def ordered(self, names: Iterable[str] | None = None) -> list[TableMapping]:
        """Mappings with each one after those it depends on (configuration order otherwise)."""
        wanted = set(self.mappings) if names is None else {self[n].name for n in names}
        order: list[TableMapping] = []
        seen: set[str] = set()

        def visit(name: str) -> None:
            if name in seen:
                return
            seen.add(name)
            for parent in self.mappings[name].depends_on:
                visit(parent)
            if name in wanted:
                order.append(self.mappings[name])

        for name in self.mappings:
            visit(name)
        return order

    def waves(self, names: Iterable[str] | None = None) -> list[list[TableMapping]]:
        """Groups that can run together: each wave only needs mappings of earlier waves."""
        chosen = self.ordered(names)
        chosen_names = {m.name for m in chosen}
        level: dict[str, int] = {}
        for mapping in chosen:
            parents = [level[p] for p in mapping.depends_on if p in chosen_names]
            level[mapping.name] = 1 + max(parents, default=-1)
        waves: list[list[TableMapping]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
        for mapping in chosen:
            waves[level[mapping.name]].append(mapping)
        return waves
