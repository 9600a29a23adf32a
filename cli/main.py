"""The `tandem` command: one group, its global options, and every subcommand."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from cli.app import App
from cli.demo import demo_command
from cli.errors import errors_group
from cli.info import couplings_command, db_group, jobs_command, mappings_group, verify_command
from cli.pipeline import (
    events_group,
    poll_command,
    publish_command,
    replay_command,
    webhook_command,
    worker_command,
)
from cli.records import couple_command, fullsync_command, match_command, sync_command, uncouple_command
from config.settings import Settings


@click.group(
    help="""Tandem couples records of two systems and keeps each coupled pair synchronized.

    \b
    Start with `tandem demo`. Settings come from the environment:
      TANDEM_CONFIG        the mapping file (default: the demo's)
      TANDEM_DATABASE_URL  the coupling store (default: SQLite under TANDEM_HOME)
      TANDEM_HOME          folder for the embedded default's files (default: .tandem)
      TANDEM_BUS_URL       the change-event bus, amqp:// or redis:// (default: the embedded inbox)
      TANDEM_BROKER_URL    the dramatiq broker, amqp:// or redis:// (default: in-process)

    \b
    Exit codes: 0 done; 1 records failed or the request was refused;
    2 bad arguments or configuration; 3 a system or the store is unreachable.""",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    metavar="FILE",
    help="The mapping file (overrides TANDEM_CONFIG).",
)
@click.option("-v", "--verbose", count=True, help="Log more (-vv for debug).")
@click.version_option(package_name="tandem")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, verbose: int) -> None:
    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)])
    app = App(Settings(), config_path)
    ctx.obj = app
    ctx.call_on_close(app.close)


for command in (
    couple_command,
    sync_command,
    uncouple_command,
    match_command,
    fullsync_command,
    errors_group,
    jobs_command,
    couplings_command,
    mappings_group,
    verify_command,
    db_group,
    demo_command,
    publish_command,
    worker_command,
    events_group,
    replay_command,
    webhook_command,
    poll_command,
):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="tandem")
