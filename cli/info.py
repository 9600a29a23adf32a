"""The looking commands: jobs, couplings, mappings, verify, and the store's schema."""

from __future__ import annotations

from pathlib import Path

import click
from sqlalchemy import exc as sa_exc

from adapters.store import migrate
from adapters.store.store import Store
from cli.app import App, Failure, handled, pass_app
from cli.output import console, json_option, print_json, table
from config.mappings import load_file
from config.wiring import check_systems, connectors_for
from workers.usecases.verify import verify

COUNT_NAMES = ("inserted", "modified", "deleted", "unchanged", "skipped", "failed", "coupled", "uncoupled")


@click.command("jobs", help="The sync job log with counts, newest first (optionally of one MAPPING).")
@click.argument("mapping_name", metavar="[MAPPING]", required=False)
@click.option("--limit", default=30, show_default=True, help="How many jobs to show.")
@json_option
@pass_app
@handled
def jobs_command(app: App, mapping_name: str | None, limit: int, as_json: bool) -> None:
    rt = app.runtime()
    if mapping_name is not None:
        mapping_name = rt.mappings[mapping_name].name
    rows = rt.store.jobs(mapping_name, limit)
    if as_json:
        print_json([{**r.__dict__, "counts": r.counts.as_dict()} for r in rows])
        return
    table(
        "sync jobs",
        ["id", "mapping", "kind", "direction", "trigger", "status", "started", *COUNT_NAMES],
        (
            [r.id, r.mapping, r.kind, r.direction, r.trigger, r.status, f"{r.started_at:%Y-%m-%d %H:%M:%S}"]
            + [getattr(r.counts, n) or "" for n in COUNT_NAMES]
            for r in rows
        ),
    )


@click.command("couplings", help="The couplings of MAPPING with their status.")
@click.argument("mapping_name", metavar="MAPPING")
@click.option("--status", help="Only couplings with this status (synced, coupled, failed, skipped, pending).")
@click.option("--limit", default=100, show_default=True, help="How many couplings to show.")
@click.option("--offset", default=0, help="Skip this many first.")
@json_option
@pass_app
@handled
def couplings_command(
    app: App, mapping_name: str, status: str | None, limit: int, offset: int, as_json: bool
) -> None:
    rt = app.runtime()
    mapping = rt.mappings[mapping_name]
    rows = rt.store.list_couplings(mapping, status=status, limit=limit, offset=offset)
    first, second = mapping.systems
    if as_json:
        print_json(
            [
                {
                    "id": c.id,
                    first: c.keys[first],
                    second: c.keys[second],
                    "status": c.status.value,
                    "failures": c.failures,
                    "skipped": c.skipped,
                    "last_error": c.last_error,
                }
                for c in rows
            ]
        )
        return
    total = rt.store.count_couplings(mapping.name)
    table(
        f"{mapping.name}: {total} couplings",
        ["id", first, second, "status", "failures", "last error"],
        ([c.id, c.keys[first], c.keys[second], c.status.value, c.failures or "", c.last_error] for c in rows),
    )


@click.group("mappings", help="Inspect and check the mapping file.")
def mappings_group() -> None:
    """The mapping file's commands."""


@mappings_group.command("list", help="The table mappings, in dependency order.")
@json_option
@pass_app
@handled
def mappings_list(app: App, as_json: bool) -> None:
    configuration = app.configuration()
    mappings = configuration.mappings.ordered()
    if as_json:
        print_json(
            [
                {
                    "name": m.name,
                    "direction": m.direction,
                    "tables": {s.system: s.table for s in m.sides},
                    "fields": len(m.fields),
                    "depends_on": list(m.depends_on),
                    "sync_only_coupled": m.sync_only_coupled,
                    "conflict": str(m.conflict),
                    "deletion": m.deletion.value,
                }
                for m in mappings
            ]
        )
        return
    table(
        f"mappings in {configuration.source}",
        ["mapping", "tables", "direction", "fields", "depends on", "only coupled", "conflict", "deletion"],
        (
            [
                m.name,
                " ↔ ".join(f"{s.system}.{s.table}" for s in m.sides),
                m.direction,
                len(m.fields),
                ", ".join(m.depends_on),
                "yes" if m.sync_only_coupled else "no",
                str(m.conflict),
                m.deletion.value,
            ]
            for m in mappings
        ),
    )


@mappings_group.command("check", help="Validate a mapping FILE (default: the configured one) and its tables.")
@click.argument("path", metavar="[FILE]", required=False, type=click.Path(path_type=Path))
@click.option("--offline", is_flag=True, help="Only the file: do not connect to the systems.")
@pass_app
@handled
def mappings_check(app: App, path: Path | None, offline: bool) -> None:
    configuration = load_file(path or app.mapping_file, app.environ())
    if not offline:
        connectors = connectors_for(configuration)
        try:
            check_systems(configuration, connectors)
        finally:
            for connector in connectors.values():
                connector.close()
    where = "the file is valid" if offline else "the file and the systems' tables are valid"
    console.print(f"{configuration.source}: {len(configuration.mappings)} mappings, {where}")
    for problem in configuration.webhook_problems:
        console.print(f"warning: {problem.describe(configuration.source)} (`tandem webhook` needs it)")


@click.command("verify", help="Compare every mapped field of every coupled pair (of each MAPPING, or all).")
@click.argument("mapping_names", metavar="[MAPPING]...", nargs=-1)
@click.option("--limit", default=20, show_default=True, help="How many mismatches to print.")
@json_option
@pass_app
@handled
def verify_command(app: App, mapping_names: tuple[str, ...], limit: int, as_json: bool) -> None:
    rt = app.runtime()
    report = verify(rt, list(mapping_names) or None)
    if as_json:
        print_json(
            {
                "pairs": report.pairs,
                "open_errors": report.open_errors,
                "converged": report.converged,
                "mismatches": [m.__dict__ for m in report.mismatches],
            }
        )
    else:
        for mismatch in report.mismatches[:limit]:
            console.print(f"{mismatch.mapping} {mismatch.keys}: {'; '.join(mismatch.problems)}")
        state = "converged" if report.converged else "NOT converged"
        console.print(f"{report.pairs} couplings, {report.open_errors} open errors, {state}")
    if not report.converged:
        raise SystemExit(1)


@click.group("db", help="The coupling store's schema (migrations are applied automatically as well).")
def db_group() -> None:
    """The store's commands."""


@db_group.command("upgrade", help="Apply the store's migrations up to the newest.")
@pass_app
@handled
def db_upgrade(app: App) -> None:
    store = Store(app.store_url, upgrade=False)  # the store every other command uses (the demo's, too)
    try:
        applied = migrate.upgrade(store.engine)
        console.print(
            f"store at revision {migrate.current(store.engine)}{'' if applied else ' (nothing to do)'}"
        )
    except (sa_exc.OperationalError, sa_exc.InterfaceError):
        raise  # unreachable: `handled` says so, with exit code 3
    except Exception as exc:
        raise Failure(f"cannot upgrade the store: {exc}") from None
    finally:
        store.close()
