"""Configuration errors that name the file, the line and the key that is wrong."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    message: str
    path: tuple[str | int, ...] = ()
    line: int | None = None

    def describe(self, source: str) -> str:
        where = source if self.line is None else f"{source}:{self.line}"
        key = ".".join(str(p) for p in self.path)
        return f"{where}: {key}: {self.message}" if key else f"{where}: {self.message}"


class ConfigError(Exception):
    """The configuration cannot be used; fix the file (each problem names where)."""

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__("\n".join(p.describe(source) for p in self.problems))
