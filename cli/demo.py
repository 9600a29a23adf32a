"""`tandem demo`: the whole story on the embedded default — couple, sync, conflicts, errors, uncouple."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from adapters.demo.seed import DemoPaths, create
from adapters.events import change
from adapters.runtime import Runtime
from adapters.store.inbox import Inbox
from cli.app import App, handled, pass_app
from cli.output import console
from domain.values import Record, Value
from producers.api import Publisher
from producers.connect import publisher_for
from workers.runner import Service
from workers.usecases import fix
from workers.usecases.couple import couple, create_and_couple
from workers.usecases.sync import SyncReport, recommend_for
from workers.usecases.uncouple import uncouple
from workers.usecases.verify import verify


class Story:
    def __init__(self, rt: Runtime, publisher: Publisher, inbox: Inbox) -> None:
        self.rt = rt
        self.publisher = publisher
        self.inbox = inbox
        self.step = 0

    def event(self, system: str, table: str, key: str, *, twice: bool = False) -> None:
        """Publishes a change event (as the system would) and waits until the worker has applied it."""
        event = change(system, table, key, source="demo")
        self.publisher.publish_events([event, event] if twice else [event])
        self.say(
            f"event {system}.{table}.upsert {key}" + (" (delivered twice: applied once)" if twice else "")
        )
        deadline = time.monotonic() + 30
        while (pending := self.pending()) and time.monotonic() < deadline:
            time.sleep(0.02)
        if pending:
            raise RuntimeError(f"{pending} events still not applied after 30 s")
        mapping = self.rt.mappings.for_table(system, table)[0].name
        job = next(j for j in self.rt.store.jobs(mapping, limit=20) if j.trigger == "event")
        self.say(f"applied by the worker; its {mapping} job {job.id} so far: {job.counts}")

    def pending(self) -> int:
        counts = self.inbox.counts()
        return counts.get("received", 0) + counts.get("enqueued", 0)

    def show(self, mapping: str, system: str, key: str, *columns: str) -> None:
        record = self.read(mapping, system, key)
        shown = ", ".join(f"{c} = {record.get(c)!r}" for c in columns)
        self.say(f"{system} {mapping} {key}: {shown}")

    @contextmanager
    def chapter(self, title: str) -> Iterator[None]:
        self.step += 1
        console.print(f"\n[bold]{self.step}. {title}[/]", markup=True)
        yield

    def say(self, text: str) -> None:
        console.print(f"   {text}", markup=False)

    def keys(self, mapping: str, system: str) -> list[str]:
        side = self.rt.mappings[mapping].side(system)
        connector = self.rt.connector(system)
        return [str(r[side.key]) for page in connector.query(side, [side.key]) for r in page]

    def read(self, mapping: str, system: str, key: str) -> Record:
        m = self.rt.mappings[mapping]
        return self.rt.connector(system).read(m.side(system), [key], m.columns(system))[key]

    def edit(self, mapping: str, system: str, key: str, **values: Value) -> None:
        """An edit made by a person in that system (it stamps the record's modified-at)."""
        self.rt.connector(system).update(self.rt.mappings[mapping].side(system), {key: dict(values)})
        shown = ", ".join(f"{k} = {v!r}" for k, v in values.items())
        self.say(f"{system}: someone sets {shown} on {mapping} {key}")

    def counterpart(self, mapping: str, system: str, key: str) -> str:
        m = self.rt.mappings[mapping]
        found = self.rt.store.couplings(m, system, [key])[key]
        return found.keys[m.other(system)] or ""

    def outcome(self, report: SyncReport, *, fields: bool = True) -> None:
        for p in report.plans:
            if p.outcome.value == "unchanged":
                continue
            reason = f" — {p.reason}" if p.reason else ""
            self.say(f"{p.outcome.value}: {p.origin} {p.origin_key}{reason}")
            if fields:
                for change in p.changes[:8]:
                    self.say(f"    {change.system}.{change.column}: {change.before!r} → {change.after!r}")
        self.say(f"job {report.job_id}: {report.counts}")


def run(story: Story, paths: DemoPaths, counts: dict[str, int]) -> bool:
    """The chapters in order; True when the systems converged with no open error."""
    rt = story.rt
    with story.chapter("Two systems that do not know each other yet"):
        story.say(", ".join(f"{n} {what}" for what, n in counts.items()))
        story.say(f"ERP (Business Central-like): {paths.erp}   CRM (Dataverse-like): {paths.crm}")

    with story.chapter("Reference data first: currencies, payment terms, salespeople (create and couple)"):
        for mapping, system in (("CURRENCY", "erp"), ("PAYMENT TERMS", "erp"), ("SALESPEOPLE", "crm")):
            report = create_and_couple(rt, mapping, system, story.keys(mapping, system), trigger="demo")
            story.say(f"{mapping} from {system}: {report.counts}")

    first = "C00001"
    account = next(
        k
        for k in story.keys("CUSTOMER", "crm")
        if story.read("CUSTOMER", "crm", k)["name"] == story.read("CUSTOMER", "erp", first)["name"]
    )
    with story.chapter(f"Couple by hand: ERP customer {first} with the CRM account that already exists"):
        report = couple(rt, "CUSTOMER", {"erp": first, "crm": account}, then="erp")
        story.outcome(report)

    with story.chapter("Create and couple every ERP customer, contact and item in the CRM (in bulk)"):
        for mapping in ("CUSTOMER", "CONTACT", "ITEM"):
            started = time.perf_counter()
            report = create_and_couple(rt, mapping, "erp", story.keys(mapping, "erp"), trigger="demo")
            rate = report.counts.total / max(time.perf_counter() - started, 1e-9)
            story.say(f"{mapping}: {report.counts} ({rate:,.0f} records/s)")
        story.say("customers that match an existing account by name were coupled instead of created twice;")
        story.say("blocked customers and items, and company contacts, are outside the ERP filters: skipped")

    errors = rt.store.errors("CONTACT")
    with story.chapter("A contact whose parent customer is not coupled: the error is listed"):
        for error in errors:
            story.say(f"error {error.id}: {error.system} {error.record_key}: {error.message}")
    parent = str(story.read("CONTACT", "erp", errors[0].record_key)["customer_no"]) if errors else ""
    with story.chapter(f"Fix it: unblock customer {parent}, couple it, retry the error"):
        story.edit("CUSTOMER", "erp", parent, blocked=False)
        story.say(f"CUSTOMER: {create_and_couple(rt, 'CUSTOMER', 'erp', [parent], trigger='demo').counts}")
        for report in fix.retry(rt, errors):
            story.outcome(report, fields=False)
        story.say(f"open errors now: {rt.store.count_errors()}")

    with story.chapter("Through the pipeline: a phone number changes in the ERP, which publishes an event"):
        story.edit("CUSTOMER", "erp", "C00002", phone="+45 7000 0002")
        recommendation = recommend_for(rt, "CUSTOMER", "erp", "C00002")
        if recommendation is not None:
            way = f"from {recommendation.source}" if recommendation.source else "merge"
            story.say(f"(asked by hand, Tandem would recommend: {way} — {recommendation.reason})")
        story.event("erp", "customer", "C00002", twice=True)
        crm_key = story.counterpart("CUSTOMER", "erp", "C00002")
        story.show("CUSTOMER", "crm", crm_key, "telephone1")
        story.say("our own write to the CRM comes back as a CRM event: recognised, nothing written")
        story.event("crm", "account", crm_key)

    with story.chapter("A website changes in the CRM: the CRM's event brings it to the ERP"):
        crm_key = story.counterpart("CUSTOMER", "erp", "C00003")
        story.edit("CUSTOMER", "crm", crm_key, websiteurl="https://example.org/c3")
        story.event("crm", "account", crm_key)
        story.show("CUSTOMER", "erp", "C00003", "website")

    with story.chapter("A new account in the CRM is created in the ERP and coupled (sync_only_coupled: off)"):
        new = rt.connector("crm").create(
            rt.mappings["CUSTOMER"].side("crm"),
            [
                {
                    "name": "Nordic Cycles A/S",
                    "address1_city": "Copenhagen",
                    "address1_country": "Denmark",
                    "telephone1": "+45 3300 0000",
                    "customertypecode": 3,
                    "statecode": 0,
                }
            ],
        )[0]
        story.say(f"crm: someone creates account {new} 'Nordic Cycles A/S'")
        story.event("crm", "account", new)
        erp_key = story.counterpart("CUSTOMER", "crm", new)
        story.show("CUSTOMER", "erp", erp_key, "no", "name", "country_code")
        story.show("CUSTOMER", "crm", new, "accountnumber")

    with story.chapter("The same field edited on both sides: the conflict policy decides"):
        crm_key = story.counterpart("CUSTOMER", "erp", "C00004")
        story.edit("CUSTOMER", "erp", "C00004", name="Alpine Traders (ERP edit)")
        time.sleep(0.01)  # the CRM's edit must carry a later modified-at than the ERP's
        story.edit("CUSTOMER", "crm", crm_key, name="Alpine Traders (CRM edit, later)")
        story.say(f"CUSTOMER's conflict policy: {rt.mappings['CUSTOMER'].conflict} — the later edit wins")
        story.event("erp", "customer", "C00004")
        story.show("CUSTOMER", "erp", "C00004", "name")
        contact = story.keys("CONTACT", "erp")[1]
        crm_contact = story.counterpart("CONTACT", "erp", contact)
        story.edit("CONTACT", "erp", contact, job_title="Head of Purchasing")
        story.edit("CONTACT", "crm", crm_contact, jobtitle="Chief Buyer")
        story.say(
            f"CONTACT's conflict policy: {rt.mappings['CONTACT'].conflict} — listed for a person to settle"
        )
        story.event("crm", "contact", crm_contact)
        listed = rt.store.errors("CONTACT")
        for error in listed:
            story.say(f"error {error.id}: {error.message}")
        story.say(f"settled with `tandem errors sync {' '.join(str(e.id) for e in listed)} --from erp`:")
        for report in fix.sync_from(rt, listed, "erp"):
            story.outcome(report)

    with story.chapter("Different fields edited on both sides: merged field by field"):
        crm_key = story.counterpart("CUSTOMER", "erp", "C00005")
        story.edit("CUSTOMER", "erp", "C00005", phone="+1 555 0105")
        story.edit("CUSTOMER", "crm", crm_key, emailaddress1="purchasing@c5.example")
        story.event("erp", "customer", "C00005")
        story.show("CUSTOMER", "crm", crm_key, "telephone1", "emailaddress1")
        story.show("CUSTOMER", "erp", "C00005", "phone", "email")

    with story.chapter("Uncouple: the link goes, both records stay"):
        item = story.keys("ITEM", "erp")[0]
        story.say(f"ITEM {item}: {uncouple(rt, 'ITEM', 'erp', [item])}")

    final = verify(rt)
    with story.chapter("Every mapped field of every coupled pair, compared"):
        for mismatch in final.mismatches[:10]:
            story.say(f"{mismatch.mapping} {mismatch.keys}: {'; '.join(mismatch.problems)}")
    state = "systems converged" if final.converged else "NOT converged"
    console.print(f"\ndemo: {final.pairs} couplings, {final.open_errors} open errors, {state}")
    return final.converged


@click.command("demo", help="Run the whole story on two demo systems (SQLite, no servers), step by step.")
@pass_app
@handled
def demo_command(app: App) -> None:
    paths = DemoPaths(Path(app.settings.home) / "demo")
    app.close()
    counts = create(paths)  # a fresh pair of systems and an empty store, before anything opens them
    # the demo is the embedded default whatever the environment says: in-process broker, inbox as the bus
    settings = app.settings.model_copy(
        update={
            "database_url": app.store_url,
            "bus_url": None,
            "broker_url": None,
            "config": app.mapping_file,
        }
    )
    rt = app.runtime()
    service = Service(settings, app.mapping_file, threads=2)
    service.start()
    publisher = publisher_for(settings, app.configuration(), app.store_url, "demo")
    try:
        converged = run(Story(rt, publisher, service.process.inbox), paths, counts)
    finally:
        publisher.close()
        service.stop()
    if not converged:
        raise SystemExit(1)
