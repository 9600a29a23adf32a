"""The pipeline commands: publish, worker, events (inbox and parked events) and replay (dead letters)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import IO

import click
from kombu.exceptions import KombuError

from adapters.events import Event, InvalidEvent, change, parse
from adapters.intake import accept
from adapters.store.inbox import Inbox
from adapters.store.store import Store
from cli.app import App, BadUsage, Failure, Unavailable, handled, pass_app
from cli.output import console, json_option, print_json, table
from config.errors import ConfigError
from producers.api import InboxBus
from producers.connect import publisher_for
from workers.deadletters import dead_letters, replay
from workers.runner import WorkerOptions, run
from workers.usecases.replay import replay_events


def _inbox(app: App) -> Inbox:
    return Inbox(Store(app.store_url).engine)


@click.command(
    "publish",
    help="""Publish change events: "record KEY of TABLE in SYSTEM changed".

    \b
      tandem publish erp customer C00001 C00002
      tandem publish crm account 0b7c...e2 --op delete
      tandem publish --file events.jsonl      (one JSON event per line; - reads standard input)

    With TANDEM_BUS_URL the events go to the bus; without it, into the embedded inbox, where a
    running `tandem worker` picks them up. Bad lines are reported and skipped; the others are published.""",
)
@click.argument("system", required=False)
@click.argument("table_name", metavar="TABLE", required=False)
@click.argument("keys", metavar="KEY...", nargs=-1)
@click.option("--op", type=click.Choice(["upsert", "delete"]), default="upsert", show_default=True)
@click.option(
    "--file", "file", type=click.File("r", encoding="utf-8"), help="JSON lines of events (- for stdin)."
)
@json_option
@pass_app
@handled
def publish_command(
    app: App,
    system: str | None,
    table_name: str | None,
    keys: tuple[str, ...],
    op: str,
    file: IO[str] | None,
    as_json: bool,
) -> None:
    if file is not None and (system or keys):
        raise BadUsage("give either SYSTEM TABLE KEY... or --file, not both")
    bad: list[str] = []
    if file is not None:
        events = list(_read_lines(file, bad))
    else:
        if not (system and table_name and keys):
            raise BadUsage("give SYSTEM TABLE KEY... (or --file events.jsonl)")
        try:
            events = [change(system, table_name, key, op, source="cli") for key in keys]  # type: ignore[arg-type]
        except InvalidEvent as exc:
            raise BadUsage(f"invalid event: {exc}") from None
    publisher = publisher_for(app.settings, app.configuration(), app.store_url, "cli")
    try:
        published = publisher.publish_events(events)
    except KombuError as exc:  # the bus is away after the bounded retries: exit 3, not a traceback
        raise Unavailable(
            f"the bus is unavailable: {exc} (run it again; events sent already are harmless duplicates)"
        ) from None
    finally:
        publisher.close()
    intake = publisher.bus.last if isinstance(publisher.bus, InboxBus) else None
    if as_json:
        print_json(
            {
                "published": published,
                "rejected": bad,
                "ids": [e.id for e in events],
                "accepted": intake.accepted if intake else None,
                "duplicates": intake.duplicates if intake else None,
                "unmapped": intake.unmapped if intake else None,
                "parked": intake.parked if intake else None,
            }
        )
    else:
        where = "the bus" if app.settings.bus_url else "the embedded inbox"
        console.print(f"{published} events published to {where}")
        if intake is not None and (intake.unmapped or intake.parked or intake.duplicates):
            console.print(
                f"{intake.duplicates} duplicates, {intake.unmapped} for tables no mapping uses, "
                f"{len(intake.parked)} parked (see `tandem events invalid`)"
            )
        for line in bad:
            console.print(f"rejected: {line}")
    if bad:
        raise SystemExit(1)


def _read_lines(file: IO[str], bad: list[str]) -> Iterator[Event]:
    for number, line in enumerate(file, start=1):
        if not line.strip():
            continue
        try:
            yield parse(line)
        except InvalidEvent as exc:
            bad.append(f"line {number}: {exc}")


@click.command(
    "worker",
    help="""Run the router, the dispatcher and the sync workers until stopped (Ctrl-C or SIGTERM).

    Embedded (no TANDEM_BUS_URL / TANDEM_BROKER_URL): one process picks up events from the inbox.
    Scaled: the router consumes the bus, and --processes worker processes with --threads threads each
    consume the dramatiq broker; run as many `tandem worker` as you like on as many machines.""",
)
@click.option("--processes", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1, 256))
@pass_app
@handled
def worker_command(app: App, processes: int, threads: int) -> None:
    app.configuration()  # a bad mapping file stops start-up here, with its line
    settings = app.settings.model_copy(update={"database_url": app.store_url, "config": app.mapping_file})
    try:
        run(settings, app.mapping_file, WorkerOptions(threads=threads, processes=processes))
    except ValueError as exc:
        raise BadUsage(str(exc)) from None


@click.group("events", help="The event inbox: its state, and parked invalid events.")
def events_group() -> None:
    """Inbox commands."""


@events_group.command("status", help="How many inbox events are received, enqueued, applied and dead.")
@json_option
@pass_app
@handled
def events_status(app: App, as_json: bool) -> None:
    inbox = _inbox(app)
    counts = inbox.counts()
    parked = len(inbox.invalid())
    if as_json:
        print_json({"inbox": counts, "parked": parked})
        return
    table("inbox", ["state", "events"], [*sorted(counts.items()), ("parked invalid", parked)])


@events_group.command("invalid", help="Parked events that could not be applied, with the reason.")
@click.option("--all", "everything", is_flag=True, help="Also those replayed or dismissed.")
@json_option
@pass_app
@handled
def events_invalid(app: App, everything: bool, as_json: bool) -> None:
    rows = _inbox(app).invalid(None if everything else "parked")
    if as_json:
        print_json([r.__dict__ for r in rows])
        return
    table(
        f"{len(rows)} parked events",
        ["id", "received", "source", "state", "reason", "body"],
        (
            [r.id, f"{r.received_at:%Y-%m-%d %H:%M:%S}", r.source, r.state, r.reason, r.body[:80]]
            for r in rows
        ),
    )


@events_group.command("replay", help="Try parked events again (after fixing the mapping file or the sender).")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "everything", is_flag=True, help="Every parked event.")
@pass_app
@handled
def events_replay(app: App, ids: tuple[int, ...], everything: bool) -> None:
    if bool(ids) == everything:
        raise BadUsage("give the ids of parked events (see `tandem events invalid`), or --all")
    inbox = _inbox(app)
    rows = inbox.invalid("parked", None if everything else list(ids))
    unknown = sorted(set(ids) - {row.id for row in rows})
    if unknown:  # as for dismiss: a mistyped (or replayed already) id must not read as done
        raise Failure(f"no parked event with id {', '.join(map(str, unknown))}; nothing was replayed")
    configuration = app.configuration()
    ok, still = 0, 0
    for row in rows:
        try:
            event = parse(row.body)
        except InvalidEvent as exc:
            still += 1
            console.print(f"event {row.id} is still invalid: {exc}")
            continue
        intake = accept(
            inbox, configuration.mappings, set(configuration.systems), [event], f"replay:{row.source}"
        )
        if intake.parked:
            inbox.set_invalid_state(intake.parked, "dismissed")  # parked again under a new id: keep one
            still += 1
            console.print(f"event {row.id} is still invalid (unknown system)")
            continue
        inbox.set_invalid_state([row.id], "replayed")
        ok += 1
    console.print(f"{ok} replayed, {still} still invalid")
    if still:
        raise SystemExit(1)


@events_group.command("dismiss", help="Close parked events without applying them.")
@click.argument("ids", nargs=-1, type=int, required=True)
@pass_app
@handled
def events_dismiss(app: App, ids: tuple[int, ...]) -> None:
    inbox = _inbox(app)
    unknown = sorted(set(ids) - {row.id for row in inbox.invalid(None, list(ids))})
    if unknown:  # a mistyped id must not read as done while the event it meant stays parked
        raise Failure(f"no parked event with id {', '.join(map(str, unknown))}; nothing was dismissed")
    inbox.set_invalid_state(list(ids), "dismissed")
    console.print(f"{len(set(ids))} dismissed")


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$")


def _duration(text: str) -> dt.timedelta:
    found = _DURATION.match(text.strip())
    if found is None:
        raise BadUsage(f"{text!r} is not a duration like 30s, 15m, 2h or 7d")
    unit = {"ms": "milliseconds", "s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[found.group(2)]
    return dt.timedelta(**{unit: float(found.group(1))})


def _moment(text: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return dt.datetime.now(dt.UTC) - _duration(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@click.command(
    "replay",
    help="""Dead letters: list the sync messages that failed every retry, and replay them.

    \b
      tandem replay                       list them (mapping, keys, error, age)
      tandem replay --all [--mapping M] [--older-than 1h] [--dry-run]
      tandem replay ID...                 replay chosen ones
      tandem replay --events --since 2h [--until T] [--mapping M]
                                          sync again every record that events named in a window

    A replay re-reads the present state of both systems: it never writes old values.""",
)
@click.argument("ids", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Replay every dead letter (after the filters).")
@click.option("--mapping", "mapping_name", help="Only dead letters (or events) of this mapping.")
@click.option("--older-than", "older_than", help="Only dead letters older than this (30s, 15m, 2h, 7d).")
@click.option("--dry-run", is_flag=True, help="Show what would be replayed; change nothing.")
@click.option(
    "--events", "past_events", is_flag=True, help="Replay past inbox events instead of dead letters."
)
@click.option("--since", help="With --events: from this moment (ISO 8601) or this long ago (2h).")
@click.option("--until", help="With --events: up to this moment (ISO 8601) or this long ago.")
@json_option
@pass_app
@handled
def replay_command(
    app: App,
    ids: tuple[str, ...],
    everything: bool,
    mapping_name: str | None,
    older_than: str | None,
    dry_run: bool,
    past_events: bool,
    since: str | None,
    until: str | None,
    as_json: bool,
) -> None:
    inbox = _inbox(app)
    if mapping_name is not None:
        mapping_name = app.configuration().mappings[mapping_name].name
    if past_events:
        if since is None:
            raise BadUsage("--events needs --since")
        if dry_run:
            rows = inbox.rows(
                since=_moment(since), until=_moment(until) if until else None, mapping=mapping_name
            )
            # as replay_events counts them: each record once, rescans left out
            records = len({(r.mapping, r.system, r.record_key) for r in rows if r.op != "rescan"})
            if as_json:
                print_json({"records": records})
            else:
                console.print(f"{records} records would be synced again")
            return
        added = replay_events(inbox, _moment(since), _moment(until) if until else None, mapping_name)
        if as_json:
            print_json({"queued": added})
        else:
            console.print(f"{added} records queued to sync again (a running `tandem worker` applies them)")
        return
    queue = dead_letters(app.settings, inbox)
    letters = queue.list()
    if mapping_name is not None:
        letters = [letter for letter in letters if letter.mapping == mapping_name]
    if older_than is not None:
        limit = _duration(older_than)
        letters = [letter for letter in letters if letter.age is not None and letter.age >= limit]
    if ids:
        unknown = set(ids) - {letter.id for letter in letters}
        if unknown:
            raise Failure(f"no dead letter with id {', '.join(sorted(unknown))}")
        letters = [letter for letter in letters if letter.id in set(ids)]
    chosen = letters if (everything or ids) else []
    if as_json:
        print_json(
            [
                {
                    "id": letter.id,
                    "mapping": letter.mapping,
                    "system": letter.system,
                    "keys": letter.keys,
                    "error": letter.error,
                    "age_s": letter.age.total_seconds() if letter.age else None,
                }
                for letter in letters
            ]
        )
    else:
        table(
            f"{len(letters)} dead letters",
            ["id", "mapping", "system", "keys", "error", "age"],
            (
                [
                    letter.id,
                    letter.mapping,
                    letter.system,
                    ", ".join(letter.keys[:5]),
                    letter.error,
                    _age(letter.age),
                ]
                for letter in letters
            ),
        )
    if not chosen or dry_run:
        if dry_run and chosen:
            console.print(f"dry run: {len(chosen)} dead letters would be replayed")
        return
    replayed = replay(queue, inbox, chosen)
    console.print(
        f"{replayed} events of {len(chosen)} dead letters replayed (a running `tandem worker` applies them)"
    )


def _age(age: dt.timedelta | None) -> str:
    if age is None:
        return ""
    seconds = int(age.total_seconds())
    return (
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
        if seconds >= 3600
        else f"{seconds // 60}m{seconds % 60:02d}s"
    )


@click.command(
    "webhook",
    help="""Receive change notifications over HTTP and publish them (POST /hooks/<source>).

    The sources are the `webhooks:` of the mapping file: our envelope (kind tandem), Dataverse
    webhooks (kind dataverse) and Business Central API subscriptions (kind business_central, with
    the validationToken handshake). Each request is authenticated (HMAC of the body, a shared key in
    a header or query parameter, or BC's clientState) in constant time; anything else is refused and
    nothing is published. GET /health answers when it runs.""",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@pass_app
@handled
def webhook_command(app: App, host: str, port: int) -> None:
    import uvicorn

    from config.wiring import connectors_for
    from producers.webhook import KeyResolver, create_app

    configuration = app.configuration()
    if configuration.webhook_problems:
        raise ConfigError(configuration.source, configuration.webhook_problems)
    if not configuration.webhooks:
        raise BadUsage(f"{configuration.source} has no `webhooks:` section: nothing would be received")
    publisher = publisher_for(app.settings, configuration, app.store_url, "webhook")
    resolver = KeyResolver(configuration.mappings, connectors_for(configuration))
    console.print(
        f"tandem webhook on http://{host}:{port}/hooks/{{{','.join(sorted(configuration.webhooks))}}}"
    )
    try:
        uvicorn.run(
            create_app(dict(configuration.webhooks), publisher, resolver),
            host=host,
            port=port,
            log_level="warning",
        )
    finally:
        publisher.close()


@click.command(
    "poll",
    help="""Detect changed rows of the SQL systems by their version (modified-at) column and publish events.

    A watermark per table is kept in the store; each poll re-reads --overlap before it, so rows
    committed late with an older timestamp are not missed (a row seen twice is published with the
    same event id, and the inbox drops the second). The first poll starts now, or with --from-start
    at the beginning. Deleted rows leave no trace to poll: `tandem errors find-deleted` finds them.""",
)
@click.option("--system", "systems", multiple=True, help="Only this system (repeatable).")
@click.option("--interval", default="1s", show_default=True, help="Time between polls (500ms, 2s, 1m).")
@click.option(
    "--overlap", default="5s", show_default=True, help="How far before the watermark each poll looks."
)
@click.option("--once", is_flag=True, help="Poll once and exit.")
@click.option("--from-start", is_flag=True, help="Tables polled for the first time: publish every row.")
@pass_app
@handled
def poll_command(
    app: App, systems: tuple[str, ...], interval: str, overlap: str, once: bool, from_start: bool
) -> None:
    import signal
    import threading

    from config.wiring import connectors_for
    from producers.poller import Poller, targets

    configuration = app.configuration()
    unknown = set(systems) - set(configuration.systems)
    if unknown:
        raise BadUsage(
            f"unknown system {', '.join(sorted(unknown))} (systems: {', '.join(configuration.systems)})"
        )
    watched = targets(configuration.mappings, list(systems) or None)
    if not watched:
        raise BadUsage("no mapped table has a version column to poll")
    publisher = publisher_for(app.settings, configuration, app.store_url, "poller")
    poller = Poller(_inbox(app), connectors_for(configuration), publisher, watched, _duration(overlap))
    poller.start(from_start)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    pause = _duration(interval).total_seconds()
    tables = ", ".join(f"{t.system}.{t.side.table}" for t in watched)
    if not once:
        console.print(f"tandem poll: {tables} every {interval}")
    try:
        while True:
            published = poller.poll()
            if once:
                console.print(f"{published} events published")
                return
            if stop.wait(pause):
                return
    finally:
        publisher.close()
