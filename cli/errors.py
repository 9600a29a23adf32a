"""`tandem errors`: the coupled-data synchronization errors and the actions that fix them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import click

from adapters.runtime import Runtime
from adapters.store.store import ErrorRow
from cli.app import App, BadUsage, Failure, handled, pass_app
from cli.output import console, json_option, print_json, show_counts, table
from domain.jobs import Counts
from workers.usecases import fix
from workers.usecases.deleted import find_deleted
from workers.usecases.sync import SyncReport


class _ErrorsGroup(click.Group):
    """`tandem errors [MAPPING]` lists; a first word that names no action is the listing's MAPPING."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = ["list", *args]
        return super().parse_args(ctx, args)


@click.group(
    "errors",
    cls=_ErrorsGroup,
    help="""The synchronization errors, and the actions that fix them.

    \b
    tandem errors [MAPPING] [--skipped]  list the open errors
    tandem errors retry ID... | --all    sync the records again (parked ones too)
    tandem errors sync ID... --from S    sync in a direction, settling conflicts
    tandem errors restore ID...          re-create a deleted record from its counterpart
    tandem errors delete-record ID...    delete the record whose counterpart was deleted
    tandem errors uncouple ID...         remove the coupling; the records stay
    tandem errors dismiss ID...          close the error without doing anything
    tandem errors find-deleted [MAPPING] find coupled records deleted on either side""",
)
def errors_group() -> None:
    """The errors' commands."""


@errors_group.command("list", hidden=True, help="The open errors (optionally of one MAPPING).")
@click.argument("mapping_name", metavar="[MAPPING]", required=False)
@click.option("--skipped", is_flag=True, help="Only records parked as skipped.")
@click.option("--limit", default=200, show_default=True)
@json_option
@pass_app
@handled
def list_errors(app: App, mapping_name: str | None, skipped: bool, limit: int, as_json: bool) -> None:
    rt = app.runtime()
    if mapping_name is not None:
        mapping_name = rt.mappings[mapping_name].name
    rows = [r for r in rt.store.errors(mapping_name, limit=limit) if r.skipped or not skipped]
    if as_json:
        print_json([r.__dict__ for r in rows])
        return
    table(
        f"{len(rows)} open errors",
        ["id", "mapping", "record", "kind", "times", "skipped", "message"],
        (
            [
                r.id,
                r.mapping,
                f"{r.system} {r.record_key}",
                r.kind,
                r.occurrences,
                "yes" if r.skipped else "",
                r.message,
            ]
            for r in rows
        ),
    )


def _selected(rt: Runtime, ids: Sequence[int], everything: bool, mapping: str | None) -> list[ErrorRow]:
    if bool(ids) == everything:
        raise BadUsage("give the ids of the errors (see `tandem errors`), or --all")
    try:
        return fix.open_errors(rt, None if everything else list(ids), mapping)
    except fix.NoSuchError as exc:
        raise Failure(str(exc)) from None


def _action(name: str, help_text: str) -> Callable[[Callable[..., Any]], click.Command]:
    def decorate(function: Callable[..., Any]) -> click.Command:
        function = handled(function)
        function = pass_app(function)
        function = json_option(function)
        function = click.option("--mapping", "mapping_name", help="With --all: only this mapping's errors.")(
            function
        )
        function = click.option("--all", "everything", is_flag=True, help="Every open error.")(function)
        function = click.argument("ids", nargs=-1, type=int)(function)
        return errors_group.command(name, help=help_text)(function)

    return decorate


def _finish(reports: list[SyncReport], as_json: bool) -> None:
    total = Counts()
    for report in reports:
        total.merge(report.counts)
    if as_json:
        print_json({"counts": total.as_dict(), "jobs": [r.job_id for r in reports]})
    else:
        for report in reports:
            for p in report.plans:
                if p.outcome.value in ("failed", "skipped"):
                    console.print(
                        f"{p.outcome.value}: {report.mapping} {p.origin} {p.origin_key} — {p.reason}"
                    )
        show_counts(total)
    if total.failed:
        raise SystemExit(1)


@_action("retry", "Sync the records of these errors again, as the failed sync asked (parked ones too).")
def retry(app: App, ids: tuple[int, ...], everything: bool, mapping_name: str | None, as_json: bool) -> None:
    rt = app.runtime()
    _finish(fix.retry(rt, _selected(rt, ids, everything, mapping_name)), as_json)


@_action("sync", "Sync the records of these errors from a chosen system (or merge), settling conflicts.")
@click.option(
    "--from", "source", metavar="SYSTEM", help="Send every mapped field from SYSTEM (default: merge)."
)
def sync_errors(
    app: App,
    ids: tuple[int, ...],
    everything: bool,
    mapping_name: str | None,
    as_json: bool,
    source: str | None,
) -> None:
    rt = app.runtime()
    _finish(fix.sync_from(rt, _selected(rt, ids, everything, mapping_name), source), as_json)


@_action("restore", "Re-create the deleted record of each pair from its surviving counterpart.")
def restore(
    app: App, ids: tuple[int, ...], everything: bool, mapping_name: str | None, as_json: bool
) -> None:
    rt = app.runtime()
    _finish(fix.restore(rt, _selected(rt, ids, everything, mapping_name)), as_json)


@_action("delete-record", "Delete the surviving record of each pair whose counterpart was deleted.")
def delete_record(
    app: App, ids: tuple[int, ...], everything: bool, mapping_name: str | None, as_json: bool
) -> None:
    rt = app.runtime()
    _finish(fix.delete_survivor(rt, _selected(rt, ids, everything, mapping_name)), as_json)


@_action("uncouple", "Remove the couplings of these errors; the records stay.")
def uncouple_errors(
    app: App, ids: tuple[int, ...], everything: bool, mapping_name: str | None, as_json: bool
) -> None:
    rt = app.runtime()
    counts = fix.uncouple_errors(rt, _selected(rt, ids, everything, mapping_name))
    if as_json:
        print_json({"counts": counts.as_dict()})
    else:
        show_counts(counts)


@_action("dismiss", "Close these errors without changing any record.")
def dismiss(
    app: App, ids: tuple[int, ...], everything: bool, mapping_name: str | None, as_json: bool
) -> None:
    rt = app.runtime()
    closed = fix.dismiss(rt, _selected(rt, ids, everything, mapping_name))
    if as_json:
        print_json({"dismissed": closed})
    else:
        console.print(f"{closed} errors dismissed")


@errors_group.command(
    "find-deleted",
    help="""Find coupled records deleted in either system (one-way mappings too) and apply each mapping's
    deletion policy; with `fail` they are listed here for restore, delete-record or uncouple.""",
)
@click.argument("mapping_names", metavar="[MAPPING]...", nargs=-1)
@json_option
@pass_app
@handled
def find_deleted_command(app: App, mapping_names: tuple[str, ...], as_json: bool) -> None:
    rt = app.runtime()
    names = [rt.mappings[n].name for n in mapping_names] or None
    reports = find_deleted(rt, names)
    _finish(reports, as_json)
