"""YAML loading that keeps line numbers, rejects duplicate keys and expands ${VARIABLES}."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from config.errors import ConfigError, Problem

Path_ = tuple[str | int, ...]


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of silently keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor` merges a mapping; the keys written here override its keys
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                continue  # an unhashable key (a list, a mapping): SafeLoader refuses it below
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {first + 1})", key_node.start_mark
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


@dataclass(frozen=True)
class Document:
    """A parsed YAML document and the line of every key in it."""

    data: Any
    lines: Mapping[Path_, int]

    def line(self, path: Path_) -> int | None:
        """The line of the longest prefix of `path` that the document has."""
        for end in range(len(path), -1, -1):
            found = self.lines.get(tuple(path[:end]))
            if found is not None:
                return found
        return None


def parse(text: str, source: str) -> Document:
    try:
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(source, [Problem(f"invalid YAML: {exc.problem or exc}", (), line)]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, [Problem(f"invalid YAML: {exc}")]) from None
    except RecursionError:
        raise ConfigError(source, [Problem("invalid YAML: nested too deeply")]) from None
    lines: dict[Path_, int] = {}
    if node is not None:
        _index(node, (), lines, set())
    return Document(data, lines)


def _index(node: yaml.Node, path: Path_, lines: dict[Path_, int], seen: set[int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if id(node) in seen:
        return  # an alias of a node indexed already, perhaps of one that contains it
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*path, _key(key_node))
            lines[child] = key_node.start_mark.line + 1
            _index(value_node, child, lines, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index(item, (*path, index), lines, seen)


def _key(node: yaml.Node) -> str | int:
    """A key as the loaded data (and so pydantic's error locations) has it: an int for `1:`."""
    if node.tag == "tag:yaml.org,2002:int":
        try:
            return int(str(node.value).replace("_", ""), 0)
        except ValueError:
            pass
    return str(node.value)


_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand(value: str, environ: Mapping[str, str] | None = None) -> str:
    """Replaces ${NAME} and ${NAME:-default}; an unset NAME without a default is an error."""
    env = os.environ if environ is None else environ

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise KeyError(f"environment variable {name} is not set (write ${{{name}:-default}} for a default)")

    return _VARIABLE.sub(substitute, value)
