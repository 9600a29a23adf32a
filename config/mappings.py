"""Loading the mapping file: YAML → validated models → the domain's MappingSet, with located errors."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from config.errors import ConfigError, Problem
from config.schema import (
    ConditionModel,
    FieldModel,
    FileModel,
    MappingModel,
    MatchModel,
    SideModel,
    TransformModel,
)
from config.webhooks import Webhook
from config.webhooks import build as build_webhook
from config.yamlfile import Document, expand, parse
from domain import transforms as tf
from domain.filters import Condition, Filter
from domain.mapping import (
    UNSET,
    ConflictKind,
    ConflictPolicy,
    DeletionPolicy,
    FieldMapping,
    MappingSet,
    MatchRule,
    NewKeys,
    TableMapping,
    TableSide,
    Template,
)

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class SystemConfig:
    name: str
    connector: str
    url: str
    schema: str | None = None


@dataclass(frozen=True)
class Configuration:
    """A loaded mapping file: the systems, the mappings, and where each key stands in the file."""

    source: str
    systems: Mapping[str, SystemConfig]
    mappings: MappingSet
    document: Document = field(repr=False)
    webhooks: Mapping[str, Webhook] = field(default_factory=dict)
    # webhook sources whose secret names an unset variable: only `tandem webhook` needs them, so only
    # it refuses to start; every other command works with the file
    webhook_problems: Sequence[Problem] = ()

    def line(self, *path: str | int) -> int | None:
        return self.document.line(path)

    def problem(self, message: str, *path: str | int) -> Problem:
        return Problem(message, path, self.line(*path))


def load_file(path: str | Path, environ: Mapping[str, str] | None = None) -> Configuration:
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, [Problem("no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, [Problem(f"cannot read the file: {exc}")]) from None
    return load_text(text, source, environ)


def load_text(
    text: str, source: str = "<mappings>", environ: Mapping[str, str] | None = None
) -> Configuration:
    document = parse(text, source)
    if not isinstance(document.data, dict):
        raise ConfigError(
            source, [Problem("the file must be a mapping with `systems` and `mappings`", (), 1)]
        )
    try:
        model = FileModel.model_validate(document.data)
    except ValidationError as exc:
        raise ConfigError(source, _problems(exc, document)) from None
    builder = _Builder(model, document, environ)
    result = builder.build()
    if builder.problems:
        raise ConfigError(source, builder.problems)
    systems, mappings = result
    return Configuration(source, systems, mappings, document, builder.webhooks, builder.unresolved)


def _problems(exc: ValidationError, document: Document, prefix: Loc = ()) -> list[Problem]:
    problems = []
    for error in exc.errors(include_url=False):
        loc = (*prefix, *(p for p in error["loc"] if not _is_union_tag(p)))
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == "missing":
            message = "required key is missing"
        problems.append(Problem(message, loc, document.line(loc)))
    return problems


def _is_union_tag(part: str | int) -> bool:
    # pydantic names the union member it tried ("str", "list[...]", "MatchModel"): not a key
    return isinstance(part, str) and ("[" in part or part in _UNION_MEMBERS)


_UNION_MEMBERS = frozenset({"str", "int", "float", "bool", "none", MatchModel.__name__})
_COLUMN = re.compile(r"[^\x00-\x1f]{1,200}")


_ARROW = re.compile(r"^\s*([^\s>-][^>]*?)\s*->\s*(\S.*?)\s*$")


class _Builder:
    def __init__(self, model: FileModel, document: Document, environ: Mapping[str, str] | None) -> None:
        self.model = model
        self.document = document
        self.environ = environ
        self.problems: list[Problem] = []
        self.webhooks: dict[str, Webhook] = {}
        self.unresolved: list[Problem] = []

    def problem(self, message: str, *path: str | int) -> Problem:
        return Problem(message, path, self.document.line(path))

    def fail(self, message: str, *path: str | int) -> None:
        self.problems.append(self.problem(message, *path))

    def build(self) -> tuple[dict[str, SystemConfig], MappingSet]:
        systems = {}
        for name, system in self.model.systems.items():
            try:
                url = expand(system.url, self.environ)
            except KeyError as exc:
                self.fail(str(exc.args[0]), "systems", name, "url")
                url = system.url
            systems[name] = SystemConfig(name, system.connector, url, system.schema_)
        mappings: dict[str, TableMapping] = {}
        for name, mapping in self.model.mappings.items():
            built = self.mapping(name, mapping, systems)
            if built is not None:
                mappings[name] = built
        self.check_references(mappings)
        for name, hook in self.model.webhooks.items():
            if hook.system is not None and hook.system not in systems:
                self.fail(
                    f"unknown system {hook.system!r} (systems: {', '.join(systems)})",
                    "webhooks",
                    name,
                    "system",
                )
                continue
            try:
                self.webhooks[name] = build_webhook(name, hook, lambda text: expand(text, self.environ))
            except KeyError as exc:
                self.unresolved.append(self.problem(str(exc.args[0]), "webhooks", name))
        return systems, MappingSet(mappings)

    def mapping(
        self, name: str, model: MappingModel, systems: Mapping[str, SystemConfig]
    ) -> TableMapping | None:
        where = ("mappings", name)
        sides: list[TableSide] = []
        for system, raw in model.side_models.items():
            if system not in systems:
                known = ", ".join(systems)
                self.fail(
                    f"unknown key: neither a mapping setting nor a system (systems: {known})", *where, system
                )
                continue
            try:
                side = SideModel.model_validate(raw)
            except ValidationError as exc:
                self.problems.extend(_problems(exc, self.document, (*where, system)))
                continue
            sides.append(self.side(system, side, (*where, system)))
        if len(sides) != 2:
            if not any(p.path[:2] == where for p in self.problems):
                self.fail(f"a mapping pairs exactly two systems; found {len(sides)}", *where)
            return None
        sides.sort(key=lambda s: s.system)
        names = (sides[0].system, sides[1].system)
        sources = self.direction(model.direction, names, (*where, "direction"))
        if sources is None:
            return None
        fields = [self.field(f, i, names, sources, (*where, "fields", i)) for i, f in enumerate(model.fields)]
        built = [f for f in fields if f is not None]
        self.check_targets(built, where)
        return TableMapping(
            name=name,
            sides=(sides[0], sides[1]),
            sources=sources,
            fields=tuple(built),
            sync_only_coupled=model.sync_only_coupled,
            depends_on=tuple(dict.fromkeys([*model.depends_on, *(f.lookup for f in built if f.lookup)])),
            conflict=self.conflict(model.conflict, names, (*where, "conflict")),
            deletion=DeletionPolicy(model.deletion),
            skip_after=model.skip_after,
        )

    def side(self, system: str, model: SideModel, where: Loc) -> TableSide:
        templates = tuple(Template(dict(t.values), self.filter(t.when), t.priority) for t in model.defaults)
        return TableSide(
            system=system,
            table=model.table,
            key=model.key,
            version=model.version,
            filter=self.filter(model.filter),
            templates=templates,
            new_keys=NewKeys(model.new_keys),
            key_prefix=model.key_prefix,
        )

    @staticmethod
    def filter(conditions: list[ConditionModel]) -> Filter:
        return Filter(
            tuple(
                Condition(c.field, c.op, tuple(c.value) if isinstance(c.value, list) else c.value)
                for c in conditions
            )
        )

    def direction(self, text: str, systems: tuple[str, str], where: Loc) -> frozenset[str] | None:
        if text == "both":
            return frozenset(systems)
        found = _ARROW.match(text)
        if (
            found is None
            or found.group(1) not in systems
            or found.group(2) not in systems
            or found.group(1) == found.group(2)
        ):
            self.fail(
                f"direction must be `both` or `<system>-><system>` with {systems[0]} and {systems[1]}", *where
            )
            return None
        return frozenset({found.group(1)})

    def conflict(self, text: str, systems: tuple[str, str], where: Loc) -> ConflictPolicy:
        words = text.split()
        if words == ["fail"]:
            return ConflictPolicy(ConflictKind.FAIL)
        if words == ["latest"]:
            return ConflictPolicy(ConflictKind.LATEST)
        preferred = " ".join(words[1:])  # a system's name may hold spaces
        if len(words) >= 2 and words[0] == "prefer" and preferred in systems:
            return ConflictPolicy(ConflictKind.PREFER, preferred)
        self.fail(
            f"conflict must be `fail`, `latest` or `prefer <system>` ({systems[0]} or {systems[1]})", *where
        )
        return ConflictPolicy()

    def field(
        self, model: FieldModel, index: int, systems: tuple[str, str], allowed: frozenset[str], where: Loc
    ) -> FieldMapping | None:
        columns: dict[str, str] = {}
        for system, column in model.columns.items():
            if system not in systems:
                self.fail(
                    f"unknown key: not a field setting nor a system here ({', '.join(systems)})",
                    *where,
                    system,
                )
            elif not isinstance(column, str) or not _COLUMN.fullmatch(column):
                self.fail(
                    "a column name (1 to 200 characters, no control characters) is expected", *where, system
                )
            else:
                columns[system] = column
        constant = "constant" in model.model_fields_set
        if not columns or (not constant and len(columns) != 2):
            need = (
                "one system's column with `constant`"
                if constant
                else f"a column for {systems[0]} and {systems[1]}"
            )
            self.fail(f"a field mapping names {need}", *where)
            return None
        if constant and len(columns) != 1:
            self.fail("a constant goes into one system's column: name only that one", *where)
            return None
        name = model.name or " ↔ ".join(f"{s}.{c}" for s, c in columns.items())
        sources = (
            allowed
            if model.direction is None
            else self.direction(model.direction, systems, (*where, "direction"))
        )
        if sources is None:
            return None
        if constant:
            (target,) = columns
            sources = frozenset({systems[0] if target == systems[1] else systems[1]}) & allowed
            if not sources:
                self.fail(
                    f"a constant into {target} needs the mapping to flow into {target}", *where, "constant"
                )
                return None
        elif not sources <= allowed:
            self.fail("the field flows in a direction that its mapping does not allow", *where, "direction")
            return None
        chains = self.chains(model, columns, sources, where)
        if model.lookup is not None and chains:
            self.fail("a lookup field takes no transforms (the value is a key)", *where, "transforms")
        if constant and chains:
            self.fail("a constant takes no transforms: write the value you want", *where, "transforms")
        match = None
        if model.match is True:
            match = MatchRule()
        elif isinstance(model.match, MatchModel):
            match = MatchRule(model.match.priority, model.match.case_sensitive)
        if match is not None and constant:
            self.fail("a constant cannot be a match field", *where, "match")
        return FieldMapping(
            name=name,
            columns=columns,
            sources=sources,
            enabled=model.enabled,
            constant=model.constant if constant else UNSET,
            transforms=chains,
            lookup=model.lookup,
            blank_if_uncoupled=model.if_uncoupled == "blank",
            match=match,
        )

    def chains(
        self, model: FieldModel, columns: Mapping[str, str], sources: frozenset[str], where: Loc
    ) -> dict[str, tf.Chain]:
        chains = {}
        for target, steps in model.transforms.items():
            flows_in = any(s != target for s in sources) and target in columns
            if target not in columns:
                self.fail(
                    f"transforms are keyed by the system they write into; {target!r} is not one here",
                    *where,
                    "transforms",
                    target,
                )
                continue
            if not flows_in:
                self.fail(
                    f"this field never flows into {target}, so it has nothing to transform",
                    *where,
                    "transforms",
                    target,
                )
                continue
            built = []
            for i, step in enumerate(steps):
                try:
                    built.append(_transform(step))
                except ValueError as exc:
                    self.fail(str(exc), *where, "transforms", target, i)
            chains[target] = tf.Chain(tuple(built))
        return chains

    def check_targets(self, fields: list[FieldMapping], where: Loc) -> None:
        written: dict[tuple[str, str], str] = {}
        for index, fmap in enumerate(fields):
            if not fmap.enabled:
                continue  # a disabled field writes nothing
            for target, column in fmap.columns.items():
                if not any(fmap.flows(s, target) for s in fmap.sources):
                    continue
                if (target, column) in written:
                    self.fail(
                        f"{target}.{column} is written by two field mappings ({written[target, column]})",
                        *where,
                        "fields",
                        index,
                    )
                written[target, column] = fmap.name

    def check_references(self, mappings: dict[str, TableMapping]) -> None:
        for name, mapping in mappings.items():
            where = ("mappings", name)
            for index, fmap in enumerate(mapping.fields):
                if fmap.lookup is None:
                    continue
                target = mappings.get(fmap.lookup)
                if target is None:
                    self.fail(
                        f"lookup through unknown mapping {fmap.lookup!r}", *where, "fields", index, "lookup"
                    )
                elif set(target.systems) != set(mapping.systems):
                    self.fail(
                        f"lookup mapping {fmap.lookup} pairs other systems", *where, "fields", index, "lookup"
                    )
            for parent in mapping.depends_on:
                if parent not in mappings and parent not in {f.lookup for f in mapping.fields}:
                    self.fail(f"depends on unknown mapping {parent!r}", *where, "depends_on")
        cycle = _cycle({n: [p for p in m.depends_on if p in mappings] for n, m in mappings.items()})
        if cycle:
            self.fail(f"depends_on has a cycle: {' → '.join(cycle)}", "mappings", cycle[0], "depends_on")


def _cycle(graph: Mapping[str, list[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for parent in graph.get(node, []):
            if state.get(parent) == 1:
                return [*stack[stack.index(parent) :], parent]
            if parent not in state and (found := visit(parent)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in graph:
        if node not in state and (found := visit(node)):
            return found
    return None


def _transform(step: TransformModel) -> tf.Transform:
    kind = step.kind
    simple: dict[str, tf.Transform] = {
        "upper": tf.Upper(),
        "lower": tf.Lower(),
        "title": tf.Title(),
        "trim": tf.Trim(),
        "to_text": tf.ToText(),
        "to_number": tf.ToNumber(),
    }
    if kind in simple:
        return simple[kind]
    if kind == "prefix" and step.prefix is not None:
        return tf.Prefix(step.prefix)
    if kind == "suffix" and step.suffix is not None:
        return tf.Suffix(step.suffix)
    if kind == "replace" and step.replace is not None:
        return tf.Replace(step.replace.old, step.replace.new)
    if kind == "regex_replace" and step.regex_replace is not None:
        try:
            pattern = re.compile(step.regex_replace.pattern)
            pattern.sub(step.regex_replace.replacement, "")  # checks the replacement's group references
        except (re.error, IndexError) as exc:
            raise ValueError(f"invalid regular expression or replacement: {exc}") from None
        return tf.RegexReplace(pattern, step.regex_replace.replacement)
    if kind == "substring" and step.substring is not None:
        return tf.Substring(step.substring.start, step.substring.length)
    if kind == "round" and step.round is not None:
        return tf.Round(step.round)
    if kind == "date_format" and step.date_format is not None:
        return tf.DateFormat(step.date_format.to, step.date_format.from_)
    if kind == "value_map" and step.value_map is not None:
        pairs = tuple(step.value_map.values.items())
        return tf.ValueMap(pairs, step.value_map.unmapped)
    if kind == "if_blank":
        return tf.IfBlank(step.if_blank)
    raise ValueError(f"transform {kind} needs an argument")
