"""Printing results: rich tables for people, JSON for scripts."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from domain.jobs import Counts
from domain.plan import RecordPlan

# Piped output is for scripts and logs: wide enough that tables do not fold into unreadable columns.
console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
errors = Console(stderr=True, highlight=False)

F = TypeVar("F", bound=Callable[..., Any])


def json_option(function: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(function)


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, default=_default, ensure_ascii=False, indent=2))


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    shown = Table(title=title, title_justify="left", show_lines=False)
    for column in columns:
        shown.add_column(column, overflow="fold")
    for row in rows:
        shown.add_row(*("" if v is None else str(v) for v in row))
    console.print(shown)


def plan_json(p: RecordPlan) -> dict[str, Any]:
    return {
        "system": p.origin,
        "key": p.origin_key,
        "outcome": p.outcome.value,
        "reason": p.reason,
        "error_kind": p.error_kind.value if p.error_kind else None,
        "changes": [dataclasses.asdict(c) for c in p.changes],
        "conflicts": [dataclasses.asdict(c) for c in p.conflicts],
    }


def show_plans(plans: Sequence[RecordPlan], *, diffs: bool, limit: int = 50) -> None:
    """One line per record that did something or failed; with `diffs`, every field before → after."""
    interesting = [p for p in plans if p.outcome.value != "unchanged" or diffs]
    for p in interesting[:limit]:
        style = {"failed": "red", "skipped": "yellow"}.get(p.outcome.value, "green")
        reason = f" — {p.reason}" if p.reason else ""
        console.print(f"[{style}]{p.outcome.value:>9}[/] {p.origin} {p.origin_key}{reason}", markup=True)
        if diffs:
            for change in p.changes:
                console.print(
                    f"            {change.system}.{change.column}: {change.before!r} → {change.after!r}"
                )
    if len(interesting) > limit:
        console.print(f"… and {len(interesting) - limit} more records")


def show_counts(counts: Counts, job_id: int | None = None) -> None:
    job = f" (job {job_id})" if job_id is not None else ""
    console.print(f"{counts}{job}")


class Bar:
    """A progress bar for long runs, shown only on a terminal."""

    def __init__(self, label: str) -> None:
        self.progress = Progress(
            TextColumn(label),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=errors,
            transient=True,
        )
        self.task: Any = None

    def __enter__(self) -> Bar:
        if errors.is_terminal:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if errors.is_terminal:
            self.progress.stop()

    def __call__(self, done: int, total: int) -> None:
        if not errors.is_terminal:
            return
        if self.task is None:
            self.task = self.progress.add_task("", total=total)
        self.progress.update(self.task, completed=done, total=total)
