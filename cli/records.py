"""The record commands: couple, sync and uncouple."""

from __future__ import annotations

from collections.abc import Iterable

import click

from adapters.runtime import Runtime
from cli.app import App, BadUsage, Failure, handled, pass_app
from cli.output import Bar, console, json_option, plan_json, print_json, show_counts, show_plans, table
from domain.mapping import TableMapping
from domain.planner import Request
from workers.usecases import fullsync
from workers.usecases.couple import CouplingRefused, couple, create_and_couple
from workers.usecases.match import match
from workers.usecases.sync import SyncReport, recommend_for, sync
from workers.usecases.uncouple import uncouple


def _report(report: SyncReport, as_json: bool, *, diffs: bool = False) -> None:
    if as_json:
        data: dict[str, object] = {
            "mapping": report.mapping,
            "job": report.job_id,
            "counts": report.counts.as_dict(),
            "records": [plan_json(p) for p in report.plans],
        }
        if report.recommendation is not None:
            data["recommendation"] = {
                "source": report.recommendation.source,
                "reason": report.recommendation.reason,
            }
        print_json(data)
    else:
        show_plans(report.plans, diffs=diffs)
        show_counts(report.counts, report.job_id)
    if report.counts.failed:
        raise SystemExit(1)


def _system(mapping: TableMapping, name: str | None, option: str, order: Iterable[str] = ()) -> str:
    if name is None:
        # the mapping's first system in the file's order (`order`): the mapping itself keeps them sorted
        return next((s for s in order if s in mapping.systems), mapping.systems[0])
    if name not in mapping.systems:
        raise BadUsage(
            f"{option}: mapping {mapping.name} pairs {' and '.join(mapping.systems)}, not {name!r}"
        )
    return name


def _all_keys(rt: Runtime, mapping: TableMapping, system: str) -> list[str]:
    side = mapping.side(system)
    connector = rt.connector(system)
    return [str(r[side.key]) for page in connector.query(side, [side.key], side.filter) for r in page]


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    help="""Couple records of MAPPING (BC: Set Up Coupling / Create New).

    \b
    Link two existing records, naming one of each system:
      tandem couple CUSTOMER --erp C00001 --crm 0b7c...e2 [--sync erp|crm|merge]
    Create the counterparts of records and couple them:
      tandem couple CUSTOMER --create-from erp C00001 C00002 ...

    A record that is coupled already is refused, unless its old counterpart no longer exists.""",
)
@click.argument("mapping_name", metavar="MAPPING")
@click.option(
    "--create-from", "create_from", metavar="SYSTEM", help="Create counterparts of these records of SYSTEM."
)
@click.option("--sync", "then", metavar="SYSTEM|merge", help="After coupling, sync from SYSTEM (or merge).")
@click.option(
    "--dry-run", is_flag=True, help="With --create-from: show what would be created; write nothing."
)
@json_option
@click.pass_context
@pass_app
@handled
def couple_command(
    app: App,
    ctx: click.Context,
    mapping_name: str,
    create_from: str | None,
    then: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    rt = app.runtime()
    mapping = rt.mappings[mapping_name]
    if create_from is not None:
        system = _system(mapping, create_from, "--create-from")
        keys = [a for a in ctx.args if not a.startswith("--")]
        if not keys or len(keys) != len(ctx.args):
            raise BadUsage(
                "--create-from SYSTEM takes the ids of the records to create from, and no other options"
            )
        with Bar(f"create {mapping.name}") as bar:
            report = create_and_couple(rt, mapping.name, system, keys, dry_run=dry_run, progress=bar)
        _report(report, as_json, diffs=dry_run)
        return
    pair = _system_keys(mapping, ctx.args)
    if then is not None and then != "merge":
        _system(mapping, then, "--sync")
    try:
        report = couple(rt, mapping.name, pair, then)
    except CouplingRefused as exc:
        raise Failure(str(exc)) from None
    _report(report, as_json)


def _system_keys(mapping: TableMapping, args: list[str]) -> dict[str, str]:
    """Parses `--<system> ID` pairs for the mapping's two systems."""
    keys: dict[str, str] = {}
    rest = list(args)
    while rest:
        option = rest.pop(0)
        name, _, value = option.partition("=")
        system = name[2:] if name.startswith("--") else None
        if system not in mapping.systems:
            raise BadUsage(f"unexpected {option!r}: give --{' ID --'.join(mapping.systems)} ID")
        if not value:
            if not rest:
                raise BadUsage(f"{name} needs a record id")
            value = rest.pop(0)
        keys[system] = value
    if set(keys) != set(mapping.systems):
        raise BadUsage(f"name one record of each system: --{' ID --'.join(mapping.systems)} ID")
    return keys


@click.command(
    "sync",
    help="""Synchronize Now: sync records of MAPPING by id.

    The ids are of --system (default: the mapping's first system in the mapping file). Without a
    direction, the records are merged field by field against the last sync; for a single coupled record
    Tandem recommends a direction as BC does and says why. With --from SYSTEM every mapped field is sent
    from SYSTEM; records whose target changed since the last sync are skipped unless --force.""",
)
@click.argument("mapping_name", metavar="MAPPING")
@click.argument("ids", nargs=-1)
@click.option("--system", "system_name", metavar="SYSTEM", help="The system the ids belong to.")
@click.option("--from", "source", metavar="SYSTEM", help="Send every mapped field from SYSTEM.")
@click.option("--merge", is_flag=True, help="Merge field by field (the default for many records).")
@click.option("--all", "everything", is_flag=True, help="Every record of --system that passes its filter.")
@click.option("--force", is_flag=True, help="Also sync skipped records and records whose target changed.")
@click.option(
    "--create",
    is_flag=True,
    help="Create counterparts of uncoupled records (as if sync_only_coupled were off).",
)
@click.option(
    "--dry-run", is_flag=True, help="Print the plan with every field before → after; write nothing."
)
@json_option
@pass_app
@handled
def sync_command(
    app: App,
    mapping_name: str,
    ids: tuple[str, ...],
    system_name: str | None,
    source: str | None,
    merge: bool,
    everything: bool,
    force: bool,
    create: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    rt = app.runtime()
    mapping = rt.mappings[mapping_name]
    if source is not None and merge:
        raise BadUsage("choose --from SYSTEM or --merge, not both")
    if bool(ids) == everything:
        raise BadUsage("give the ids of the records to sync, or --all")
    system = _system(mapping, system_name or source, "--system", app.configuration().systems)
    if source is not None:
        _system(mapping, source, "--from")
    keys = _all_keys(rt, mapping, system) if everything else list(ids)
    recommendation = None
    if source is None and not merge and len(keys) == 1 and mapping.both_ways:
        recommendation = recommend_for(rt, mapping.name, system, keys[0])
        if recommendation is not None:
            source = recommendation.source
            if not as_json:
                way = f"from {source}" if source else "merge"
                console.print(f"recommended: {way} — {recommendation.reason}")
    request = Request(source=source, force=force, create=create)
    with Bar(f"sync {mapping.name}") as bar:
        report = sync(rt, mapping.name, system, keys, request, dry_run=dry_run, progress=bar)
    report.recommendation = recommendation
    if dry_run and not as_json:
        console.print("dry run: nothing was written")
    _report(report, as_json, diffs=dry_run)


@click.command(
    "uncouple",
    help="""Delete Coupling: remove the coupling of records of MAPPING (ids of --system), or --all of them.
    The records themselves stay as they are.""",
)
@click.argument("mapping_name", metavar="MAPPING")
@click.argument("ids", nargs=-1)
@click.option("--system", "system_name", metavar="SYSTEM", help="The system the ids belong to.")
@click.option("--all", "everything", is_flag=True, help="Remove every coupling of the mapping.")
@json_option
@pass_app
@handled
def uncouple_command(
    app: App,
    mapping_name: str,
    ids: tuple[str, ...],
    system_name: str | None,
    everything: bool,
    as_json: bool,
) -> None:
    rt = app.runtime()
    mapping = rt.mappings[mapping_name]
    if bool(ids) == everything:
        raise BadUsage("give the ids of the records to uncouple, or --all")
    system = _system(mapping, system_name, "--system", app.configuration().systems)
    with Bar(f"uncouple {mapping.name}") as bar:
        counts = uncouple(rt, mapping.name, system, list(ids), everything=everything, progress=bar)
    if as_json:
        print_json({"mapping": mapping.name, "counts": counts.as_dict()})
    else:
        show_counts(counts)
    if counts.skipped and not everything:
        console.print(f"{counts.skipped} of the ids were not coupled")


@click.command(
    "match",
    help="""Match-based coupling: couple uncoupled records of MAPPING whose match fields agree.

    The field mappings marked `match` are tried in priority groups (lowest first); text compares
    without regard to case unless the field says otherwise; blank values never match. Exactly one
    uncoupled candidate couples; none or several are reported, with the candidates. Works from either
    side (--from, default: the mapping's first system). With --create-new the unmatched are created
    and coupled; with --sync each new coupling is synchronized (from a system, or merge).""",
)
@click.argument("mapping_name", metavar="MAPPING")
@click.option("--from", "source", metavar="SYSTEM", help="Match records of this system (default: the first).")
@click.option(
    "--ids", "ids", multiple=True, metavar="ID", help="Only these records (repeatable); default all in scope."
)
@click.option("--create-new", is_flag=True, help="Create and couple the records that match nothing.")
@click.option(
    "--sync", "then", metavar="SYSTEM|merge", help="Then sync each new coupling from SYSTEM (or merge)."
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Show what would be coupled, created and synced (before → after); write nothing.",
)
@json_option
@pass_app
@handled
def match_command(
    app: App,
    mapping_name: str,
    source: str | None,
    ids: tuple[str, ...],
    create_new: bool,
    then: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    rt = app.runtime()
    mapping = rt.mappings[mapping_name]
    system = _system(mapping, source, "--from", app.configuration().systems)
    if then is not None and then != "merge":
        _system(mapping, then, "--sync")
    if not mapping.match_fields:
        raise BadUsage(f"mapping {mapping.name} has no match fields: mark field mappings with `match: true`")
    with Bar(f"match {mapping.name}") as bar:
        report = match(
            rt,
            mapping.name,
            system,
            list(ids) or None,
            create_new=create_new,
            then=then,
            dry_run=dry_run,
            progress=bar,
        )
    if as_json:
        print_json(
            {
                "mapping": report.mapping,
                "from": report.source,
                "job": report.job_id,
                "counts": report.counts.as_dict(),
                "matched": [{system: s, mapping.other(system): t} for s, t in report.matched],
                "unmatched": report.unmatched,
                "ambiguous": [{"key": k, "candidates": why} for k, why in report.ambiguous],
                "created": report.created,
                "records": [plan_json(p) for p in report.plans],
            }
        )
    else:
        if dry_run:
            console.print("dry run: nothing was written")
        for key, counterpart in report.matched[:50]:
            console.print(f"  matched: {system} {key} ↔ {mapping.other(system)} {counterpart}")
        for key, why in report.ambiguous[:50]:
            console.print(f"[yellow]  not coupled:[/] {system} {key} — {why}", markup=True)
        if report.unmatched:
            shown = ", ".join(report.unmatched[:20]) + (" …" if len(report.unmatched) > 20 else "")
            console.print(f"  no match ({len(report.unmatched)}): {shown}")
        show_plans(report.plans, diffs=dry_run)  # the creates and syncs: what failed, what changes
        found = len(report.matched), len(report.ambiguous), len(report.unmatched), len(report.created)
        console.print("{} matched, {} ambiguous, {} unmatched, {} created".format(*found))
        show_counts(report.counts, report.job_id)
    if report.counts.failed:
        raise SystemExit(1)


@click.command(
    "fullsync",
    help="""Guided full synchronization of the MAPPINGs (default: all), in dependency order.

    For each mapping Tandem recommends: full synchronization (records on one side only: create and
    couple them), couple records (records on both sides: match first, then create the rest), or
    nothing to do — and runs them in waves, each wave after the mappings it depends on. Every step
    skips what is coupled already: after an interruption, run it again to resume.""",
)
@click.argument("mapping_names", metavar="[MAPPING]...", nargs=-1)
@click.option(
    "--dry-run", is_flag=True, help="Show the recommendations (and what would be written); write nothing."
)
@click.option("--yes", is_flag=True, help="Do not ask before running (for scripts).")
@json_option
@pass_app
@handled
def fullsync_command(
    app: App, mapping_names: tuple[str, ...], dry_run: bool, yes: bool, as_json: bool
) -> None:
    rt = app.runtime()
    names = [rt.mappings[n].name for n in mapping_names] or None
    reviews = fullsync.review(rt, names)
    if not as_json:
        table(
            "full synchronization review",
            ["mapping", *rt.mappings.ordered()[0].systems, "recommendation", "why"],
            (
                [
                    r.mapping,
                    *(
                        f"{r.records.get(s, 0)} ({r.uncoupled.get(s, 0)} uncoupled)"
                        for s in rt.mappings[r.mapping].systems
                    ),
                    r.action,
                    r.reason,
                ]
                for r in reviews
            ),
        )
    outcomes: list[fullsync.Outcome] = []
    if all(r.action == fullsync.NOTHING for r in reviews):
        pass
    elif dry_run or yes or click.confirm("run these recommendations?", default=True, err=as_json):
        # with --json the question goes to stderr; a script that cannot answer it passes --yes
        with Bar("full sync") as bar:
            outcomes = fullsync.run(
                rt, names, dry_run=dry_run, progress=lambda label, done, total: bar(done, total)
            )
    if as_json:
        print_json(
            {
                "review": [r.__dict__ for r in reviews],
                "outcomes": [
                    {
                        "mapping": o.mapping,
                        "action": o.action,
                        "counts": o.counts.as_dict(),
                        "jobs": o.jobs,
                        "records": [plan_json(p) for p in o.plans],
                    }
                    for o in outcomes
                ],
            }
        )
    else:
        if dry_run and outcomes:
            console.print("dry run: nothing was written")
        for outcome in outcomes:
            show_plans(outcome.plans, diffs=dry_run)
            jobs = ", ".join(map(str, outcome.jobs)) or "-"
            console.print(f"{outcome.mapping}: {outcome.action}: {outcome.counts} (jobs {jobs})")
    if any(o.counts.failed for o in outcomes):
        raise SystemExit(1)
