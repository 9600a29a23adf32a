"""Match-based coupling, guided full synchronization, find-deleted, parked records and dry runs.

On real databases: the store and both systems on SQLite, then on PostgreSQL; every test gets fresh ones
(see tests/factories.py). The world has SALESPEOPLE (salesperson ↔ systemuser) and CUSTOMER
(customer ↔ account, CRM filter statecode = 0), which depends on SALESPEOPLE through a lookup.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from adapters.connectors.base import SystemUnavailable
from adapters.connectors.sql import SqlConnector
from adapters.runtime import Runtime
from domain.coupling import CouplingStatus
from domain.jobs import Counts
from domain.plan import Change, Outcome, RecordPlan
from domain.planner import Request
from tests import services
from tests.factories import MakeWorld, World, later
from workers.usecases import fix, fullsync
from workers.usecases.apply import EventJobs, apply_changes
from workers.usecases.couple import couple, create_and_couple
from workers.usecases.deleted import find_deleted
from workers.usecases.match import MatchReport, match
from workers.usecases.sync import SyncReport, sync
from workers.usecases.verify import verify


@pytest.fixture
def world(make_world: MakeWorld) -> World:
    return make_world(match=True)


# --- helpers ---------------------------------------------------------------------------------------


def couplings(world: World, mapping: str = "CUSTOMER") -> dict[str, str | None]:
    """Every coupling of a mapping as {erp key: crm key}."""
    table_mapping = world.rt.mappings[mapping]
    return {c.keys["erp"] or "": c.keys["crm"] for c in world.rt.store.list_couplings(table_mapping)}


def coupling_of(world: World, system: str, key: str, mapping: str = "CUSTOMER") -> Any:
    return world.rt.store.couplings(world.rt.mappings[mapping], system, [key]).get(key)


def outcomes(plans: list[RecordPlan]) -> dict[str, Outcome]:
    return {p.origin_key: p.outcome for p in plans}


def reasons(report: SyncReport) -> dict[str, str]:
    return {p.origin_key: p.reason for p in report.plans}


def changes(plans: list[RecordPlan], key: str) -> set[tuple[str, str, Any, Any]]:
    return {(c.system, c.column, c.before, c.after) for p in plans if p.origin_key == key for c in p.changes}


def pair(world: World, no: str, **values: Any) -> str:
    """An ERP customer created in the CRM and coupled (synchronized); returns the account's key."""
    world.insert_customer(no, **values)
    assert create_and_couple(world.rt, "CUSTOMER", "erp", [no]).counts == Counts(inserted=1)
    key = world.counterpart("CUSTOMER", "erp", no)
    assert key is not None
    return key


def unreachable_url(backend: str, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'no' / 'such' / 'folder' / 'crm.sqlite'}"
    return "postgresql+psycopg://postgres@127.0.0.1:1/nowhere?connect_timeout=2"


@contextmanager
def system_down(world: World, backend: str, tmp_path: Path, system: str = "crm") -> Iterator[Runtime]:
    """A Runtime whose `system` cannot be reached.

    PostgreSQL: the system's own database refuses connections (ALLOW_CONNECTIONS false, and the open
    ones are terminated), and is let in again afterwards. SQLite: the connector points at a file that
    cannot be opened.
    """
    if backend == "postgres":
        name = sa.make_url(world.urls[system]).database
        admin = sa.create_engine(services.POSTGRES, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                connection.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
                connection.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                )
            yield world.rt
        finally:
            with admin.connect() as connection:
                connection.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
            admin.dispose()
        return
    down = SqlConnector(system, unreachable_url(backend, tmp_path))
    try:
        yield Runtime(
            world.rt.mappings, world.rt.store, {**world.rt.connectors, system: down}, world.rt.batch_size
        )
    finally:
        down.close()


@contextmanager
def statements(rt: Runtime) -> Iterator[list[str]]:
    """Every SQL statement sent to the systems and to the store while the block runs."""
    engines: list[sa.Engine] = [rt.store.engine, rt.store.reader]
    for connector in rt.connectors.values():
        assert isinstance(connector, SqlConnector)
        engines.extend([connector.engine, connector.reader])
    unique = list({id(e): e for e in engines}.values())
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    for engine in unique:
        sa.event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        for engine in unique:
            sa.event.remove(engine, "before_cursor_execute", count)


def customers(world: World, n: int, prefix: str = "C", **values: Any) -> list[str]:
    keys = [f"{prefix}{i:05d}" for i in range(n)]
    world.insert("erp", "customer", [{"no": k, "name": f"Name {k}", **values} for k in keys])
    return keys


def accounts(world: World, names: list[str], **values: Any) -> list[str]:
    keys = [f"aaaaaaaa-0000-0000-0000-{i:012d}" for i in range(len(names))]
    world.insert(
        "crm", "account", [{"accountid": k, "name": n, **values} for k, n in zip(keys, names, strict=True)]
    )
    return keys


# === match =========================================================================================


def test_match_couples_the_one_candidate_regardless_of_case_and_reports_the_rest(world: World) -> None:
    world.insert_customer("C1", name="Contoso Ltd")
    world.insert_customer("C2", name="Twice")
    world.insert_customer("C3", name="Nobody")
    world.insert_customer("C4", name="Ærø Øst Å")
    contoso = world.insert_account(name="CONTOSO LTD")
    twice = sorted([world.insert_account(name="twice"), world.insert_account(name="TWICE")])
    aero = world.insert_account(name="ærø øst å")
    world.insert_account(name="Someone else")
    accounts_before = world.rows("crm", "account")

    report = match(world.rt, "CUSTOMER", "erp")

    assert sorted(report.matched) == [("C1", contoso), ("C4", aero)]
    assert report.unmatched == ["C3"]
    ((key, why),) = report.ambiguous
    assert key == "C2"
    assert why.startswith("2 crm records match: ") and all(k in why for k in twice)
    assert couplings(world) == {"C1": contoso, "C4": aero}
    coupling = coupling_of(world, "erp", "C1")
    assert (coupling.status, coupling.base) == (CouplingStatus.COUPLED, None)
    # matching couples; it writes nothing into either system
    assert world.rows("crm", "account") == accounts_before
    assert world.customer("C1")["name"] == "Contoso Ltd"

    assert report.counts == Counts(coupled=2, skipped=2)
    (job,) = world.rt.store.jobs("CUSTOMER")
    assert (job.id, job.kind, job.direction, job.status) == (
        report.job_id,
        "coupling",
        "match from erp",
        "finished",
    )
    assert job.counts == report.counts
    assert job.message == "2 matched, 1 unmatched, 1 ambiguous"


def test_match_from_the_crm_side_honours_the_crm_filter(world: World) -> None:
    world.insert_customer("C1", name="Alpha")
    world.insert_customer("C2", name="Beta")
    alpha = world.insert_account(name="ALPHA")
    world.insert_account(name="beta", statecode=1)  # inactive: outside the CRM filter, not a source
    gamma = world.insert_account(name="Gamma")

    report = match(world.rt, "CUSTOMER", "crm")

    assert report.source == "crm"
    assert report.matched == [(alpha, "C1")]
    assert report.unmatched == [gamma]
    assert couplings(world) == {"C1": alpha}
    assert world.rt.store.jobs("CUSTOMER")[0].direction == "match from crm"

    # from the ERP side an out-of-filter account is no candidate either
    again = match(world.rt, "CUSTOMER", "erp")
    assert again.unmatched == ["C2"]
    assert again.counts == Counts(skipped=2)  # C1 coupled already, C2 unmatched


def test_priority_groups_are_tried_lowest_first_and_the_first_that_finds_anything_decides(
    make_world: MakeWorld,
) -> None:
    # name comes first in the mapping file but has the higher number: phone is tried first
    world = make_world(match_fields={"name": {"priority": 2}, "phone": {"priority": 1}})
    world.insert_customer("C1", name="Contoso", phone="111")
    world.insert_customer("C2", name="Fabrikam", phone="222")
    world.insert_customer("C3", name="Wingtip", phone="333")
    world.insert_customer("C4", name="Litware", phone=None)
    by_name = world.insert_account(name="Contoso", telephone="999")
    by_phone = world.insert_account(name="Other", telephone="111")
    fabrikam = world.insert_account(name="fabrikam", telephone="777")
    wingtips = sorted(
        [
            world.insert_account(name="Wingtip", telephone="333"),
            world.insert_account(name="X", telephone="333"),
        ]
    )
    litware = world.insert_account(name="LITWARE", telephone="444")

    report = match(world.rt, "CUSTOMER", "erp")

    matched = dict(report.matched)
    assert matched["C1"] == by_phone != by_name  # priority 1 (phone) decides over priority 2 (name)
    assert matched["C2"] == fabrikam  # no phone match: priority 2 (name) is tried
    assert matched["C4"] == litware  # a blank phone passes its group over
    # two phone matches: ambiguous, even though the name would single one out
    assert dict(report.ambiguous)["C3"] == f"2 crm records match: {', '.join(wingtips)}"
    assert "C3" not in couplings(world)


def test_several_fields_in_one_group_must_all_agree(make_world: MakeWorld) -> None:
    world = make_world(match_fields={"name": True, "city": True})
    world.insert_customer("C1", name="Contoso", city="Aarhus")
    world.insert_customer("C2", name="Contoso", city="Odense")
    world.insert_customer("C3", name="Contoso", city="Vejle")
    aarhus = world.insert_account(name="contoso", city="AARHUS")
    odense = world.insert_account(name="Contoso", city="odense")
    world.insert_account(name="Other", city="Vejle")

    report = match(world.rt, "CUSTOMER", "erp")

    assert dict(report.matched) == {"C1": aarhus, "C2": odense}
    assert report.unmatched == ["C3"]


def test_a_case_sensitive_field_matches_only_the_exact_spelling(make_world: MakeWorld) -> None:
    world = make_world(match_fields={"name": {"case_sensitive": True}})
    world.insert_customer("C1", name="Contoso")
    world.insert_customer("C2", name="Fabrikam")
    world.insert_account(name="CONTOSO")
    world.insert_account(name="contoso")
    exact = world.insert_account(name="Fabrikam")
    world.insert_account(name="FABRIKAM")  # another spelling: not a second candidate

    report = match(world.rt, "CUSTOMER", "erp")

    assert report.matched == [("C2", exact)]
    assert report.unmatched == ["C1"]
    assert report.ambiguous == []


@pytest.mark.parametrize("blank", [None, "", "   ", "\t"])
def test_blank_values_never_match(make_world: MakeWorld, blank: str | None) -> None:
    world = make_world(match_fields={"phone": True})
    world.insert_customer("C1", phone=blank)
    world.insert_customer("C2", phone="555")
    for value in (None, "", "   ", "\t"):
        world.insert_account(telephone=value)
    phone = world.insert_account(telephone="555")

    report = match(world.rt, "CUSTOMER", "erp")

    assert report.matched == [("C2", phone)]
    assert report.unmatched == ["C1"]
    assert report.ambiguous == []
    # nor from the other side: the four blank accounts match nothing
    from_crm = match(world.rt, "CUSTOMER", "crm")
    assert from_crm.matched == [] and len(from_crm.unmatched) == 4


def test_a_candidate_coupled_to_another_record_is_reported_and_not_coupled(world: World) -> None:
    world.insert_customer("C1", name="Contoso")
    world.insert_customer("C2", name="contoso")
    world.insert_customer("C3", name="Fabrikam")
    world.insert_customer("C4", name="Fabrikam")
    taken = world.insert_account(name="Contoso")
    couple(world.rt, "CUSTOMER", {"erp": "C1", "crm": taken})
    fabrikams = [world.insert_account(name="FABRIKAM"), world.insert_account(name="fabrikam")]
    couple(world.rt, "CUSTOMER", {"erp": "C3", "crm": fabrikams[0]})

    report = match(world.rt, "CUSTOMER", "erp")

    # C1 and C3 are coupled already: skipped. C2's only candidate is taken: reported, not coupled.
    assert dict(report.ambiguous) == {"C2": f"the matching crm record {taken} is coupled to another record"}
    # C4 has two candidates, one of them coupled already: the free one is its match
    assert report.matched == [("C4", fabrikams[1])]
    assert couplings(world) == {"C1": taken, "C3": fabrikams[0], "C4": fabrikams[1]}
    assert report.counts == Counts(coupled=1, skipped=3)


def test_one_candidate_wanted_by_two_records_is_given_to_one_only(world: World) -> None:
    world.insert_customer("C1", name="Contoso")
    world.insert_customer("C2", name="CONTOSO")
    account = world.insert_account(name="contoso")

    report = match(world.rt, "CUSTOMER", "erp")

    assert report.matched == [("C1", account)]
    assert dict(report.ambiguous) == {"C2": f"the matching crm record {account} is coupled to another record"}
    assert couplings(world) == {"C1": account}


def test_matching_again_skips_what_is_coupled_and_ids_limit_the_run(world: World) -> None:
    for no in ("C1", "C2", "C3"):
        world.insert_customer(no, name=f"Name {no}")
        world.insert_account(name=f"name {no}")

    first = match(world.rt, "CUSTOMER", "erp", ["C2", "C2", "NOPE"])
    assert [k for k, _ in first.matched] == ["C2"]
    assert first.counts == Counts(coupled=1, skipped=1)  # NOPE does not exist

    second = match(world.rt, "CUSTOMER", "erp")
    assert sorted(k for k, _ in second.matched) == ["C1", "C3"]
    assert second.counts == Counts(coupled=2, skipped=1)

    third = match(world.rt, "CUSTOMER", "erp")
    assert third.matched == [] and third.unmatched == []
    assert third.counts == Counts(skipped=3)
    assert len(couplings(world)) == 3
    assert [j.counts.coupled for j in world.rt.store.jobs("CUSTOMER")] == [0, 2, 1]


@pytest.mark.parametrize("source", ["erp", "crm"])
def test_create_new_creates_and_couples_the_unmatched_only(world: World, source: str) -> None:
    world.insert_customer("C1", name="Matched", phone="+45 1")
    world.insert_customer("C2", name="Only in the ERP", phone="+45 2", city="Vejle")
    world.insert_customer("C3", name="Twice")
    matched = world.insert_account(name="MATCHED")
    only_crm = world.insert_account(name="Only in the CRM", city="Köln")
    twice = sorted([world.insert_account(name="twice"), world.insert_account(name="Twice")])

    report = match(world.rt, "CUSTOMER", source, create_new=True)

    assert report.unmatched == []
    if source == "erp":
        assert report.matched == [("C1", matched)]
        assert report.created == ["C2"]
        assert [k for k, _ in report.ambiguous] == ["C3"]
        created = world.counterpart("CUSTOMER", "erp", "C2")
        assert created is not None
        account = world.account(created)
        assert (account["name"], account["telephone"], account["city"], account["accountnumber"]) == (
            "Only in the ERP",
            "+45 2",
            "Vejle",
            "C2",
        )
        assert report.counts == Counts(coupled=1, inserted=1, skipped=1)
        assert world.count("crm", "account") == 5
        assert world.rt.store.count_couplings("CUSTOMER") == 2
    else:
        # from the CRM both "twice" accounts want the one customer C3: the first (in key order) gets
        # it, the second is reported; neither is created
        assert sorted(report.matched) == sorted([(matched, "C1"), (twice[0], "C3")])
        assert report.created == [only_crm]
        new = world.counterpart("CUSTOMER", "crm", only_crm)
        assert new is not None and new.startswith("C-")
        assert (world.customer(new)["name"], world.customer(new)["city"]) == ("Only in the CRM", "Köln")
        assert world.account(only_crm)["accountnumber"] == new  # the new key flowed back
        assert dict(report.ambiguous) == {twice[1]: "the matching erp record C3 is coupled to another record"}
        assert report.counts == Counts(coupled=2, inserted=1, skipped=1)
        assert world.count("erp", "customer") == 4
        assert world.rt.store.count_couplings("CUSTOMER") == 3
    job = world.rt.store.jobs("CUSTOMER")[0]
    assert (job.id, job.kind, job.counts) == (report.job_id, "coupling", report.counts)
    assert len(world.rt.store.jobs("CUSTOMER")) == 1  # the creates count in the match's own job


@pytest.mark.parametrize("then", ["erp", "crm", "merge"])
def test_sync_after_match_synchronizes_the_new_couplings(make_world: MakeWorld, then: str) -> None:
    world = make_world(match=True, conflict="prefer crm")
    world.insert_customer("C1", name="Contoso", phone="erp-phone", city="Aarhus")
    account = world.insert_account(name="CONTOSO", telephone="crm-phone", city=None)
    coupled_before = pair(world, "C9", name="Coupled before")
    world.edit("erp", "customer", "C9", city="changed, but not part of this match")

    report = match(world.rt, "CUSTOMER", "erp", then=then)

    assert report.matched == [("C1", account)]
    assert report.counts == Counts(coupled=1, modified=1, skipped=1)
    customer, crm = world.customer("C1"), world.account(account)
    expected: tuple[str, str, str | None]
    if then == "erp":
        expected = ("Contoso", "erp-phone", "Aarhus")
    elif then == "crm":
        expected = ("CONTOSO", "crm-phone", None)
    else:  # never synchronized: every differing two-way field goes to the policy (prefer crm)
        expected = ("CONTOSO", "crm-phone", None)
    assert (customer["name"], customer["phone"], customer["city"]) == expected
    assert (crm["name"], crm["telephone"], crm["city"]) == expected
    assert crm["accountnumber"] == ("C1" if then != "crm" else None)
    assert coupling_of(world, "erp", "C1").status is CouplingStatus.SYNCED
    # the pair that was coupled before is not synchronized by the match
    assert world.account(coupled_before)["city"] is None
    assert world.rt.store.jobs("CUSTOMER")[0].counts == report.counts


def test_match_finds_candidates_with_a_handful_of_statements_per_batch(world: World, backend: str) -> None:
    n = 2000
    keys = customers(world, n)
    accounts(world, [f"name {k}" for k in keys[: n - 100]] + [f"nobody {i}" for i in range(100)])
    for system, table in (("erp", "customer"), ("crm", "account")):
        connector = world.rt.connector(system)
        assert isinstance(connector, SqlConnector)
        connector.table(table)  # reflected before counting: once per process, not per batch

    with statements(world.rt) as seen:
        report = match(world.rt, "CUSTOMER", "erp")

    assert len(report.matched) == n - 100
    assert len(report.unmatched) == 100
    assert world.rt.store.count_couplings("CUSTOMER") == n - 100
    # two pages of 1,000: a few reads and one commit each, one scan of the candidates for the whole run;
    # never a statement per record
    inserts = [s for s in seen if s.startswith("INSERT INTO tandem_coupling")]
    others = [s for s in seen if not s.startswith("INSERT INTO tandem_coupling")]
    assert len(others) <= 30, others
    assert len([s for s in seen if "FROM account" in s]) <= 3  # the scan's two pages and its empty end
    assert len([s for s in seen if "FROM customer" in s]) <= 3  # two pages, and the empty end
    if backend == "postgres":
        assert len(inserts) == 2  # one multi-row INSERT per page
    else:
        # SQLAlchemy inserts row by row on SQLite when RETURNING must keep the parameters' order
        # (in-process, inside the page's one transaction): not a round trip per record
        assert len(inserts) <= n - 100


def test_match_with_a_system_down_raises_and_couples_nothing(
    world: World, backend: str, tmp_path: Path
) -> None:
    world.insert_customer("C1", name="Contoso")
    world.insert_account(name="Contoso")

    with system_down(world, backend, tmp_path) as down, pytest.raises(SystemUnavailable):
        match(down, "CUSTOMER", "erp", create_new=True)

    assert world.rt.store.count_couplings() == 0
    assert world.rt.store.count_errors() == 0
    (job,) = world.rt.store.jobs("CUSTOMER")
    assert job.status == "failed" and "SystemUnavailable" in (job.message or "")
    assert len(match(world.rt, "CUSTOMER", "erp").matched) == 1


def test_match_refuses_unknown_mappings_and_systems(world: World) -> None:
    with pytest.raises(KeyError, match="unknown mapping 'NOPE'"):
        match(world.rt, "NOPE", "erp")
    with pytest.raises(KeyError, match="has no side 'sap'"):
        match(world.rt, "CUSTOMER", "sap")
    assert world.rt.store.jobs() == []


def test_a_mapping_without_match_fields_matches_nothing(world: World) -> None:
    world.insert("erp", "salesperson", [{"code": "S1", "name": "Sam"}])
    world.insert("crm", "systemuser", [{"systemuserid": "u1", "fullname": "Sam"}])
    report = match(world.rt, "SALESPEOPLE", "erp")
    assert report.matched == [] and report.unmatched == ["S1"]
    assert world.rt.store.count_couplings() == 0


# === guided full synchronization ===================================================================


def test_review_recommends_per_mapping_in_dependency_order(world: World) -> None:
    world.insert("erp", "salesperson", [{"code": f"S{i}", "name": f"Sam {i}"} for i in range(3)])
    world.insert_customer("C1", name="On both sides")
    world.insert_customer("C2", name="Only in the ERP")
    world.insert_account(name="on both sides")
    world.insert_account(name="Inactive", statecode=1)  # outside the filter: not counted

    reviews = fullsync.review(world.rt, ["CUSTOMER", "SALESPEOPLE"])

    assert [r.mapping for r in reviews] == ["SALESPEOPLE", "CUSTOMER"]
    people, customer = reviews
    assert (people.action, people.records, people.uncoupled) == (
        fullsync.FULL,
        {"erp": 3, "crm": 0},
        {"erp": 3, "crm": 0},
    )
    assert people.reason == "3 erp records have no counterpart"
    assert people.steps == [("create", "erp")]
    assert (customer.action, customer.records, customer.uncoupled) == (
        fullsync.COUPLE,
        {"erp": 2, "crm": 1},
        {"erp": 2, "crm": 1},
    )
    assert customer.steps == [("match", "crm"), ("match", "erp")]
    assert [r.mapping for r in fullsync.review(world.rt, ["CUSTOMER"])] == ["CUSTOMER"]

    fullsync.run(world.rt)
    after = fullsync.review(world.rt)
    assert [(r.mapping, r.action, r.uncoupled) for r in after] == [
        ("SALESPEOPLE", fullsync.NOTHING, {"erp": 0, "crm": 0}),
        ("CUSTOMER", fullsync.NOTHING, {"erp": 0, "crm": 0}),
    ]


def test_review_of_a_one_way_mapping_ignores_records_that_cannot_flow(make_world: MakeWorld) -> None:
    world = make_world(direction="erp->crm", match=True)
    world.insert_account(name="Only in the CRM")
    (review,) = fullsync.review(world.rt, ["CUSTOMER"])
    assert (review.action, review.uncoupled) == (fullsync.NOTHING, {"erp": 0, "crm": 1})

    world.insert_customer("C1")
    (review,) = fullsync.review(world.rt, ["CUSTOMER"])
    assert (review.action, review.steps) == (fullsync.COUPLE, [("match", "erp")])


def test_fullsync_runs_a_dependent_mapping_after_its_parent(world: World) -> None:
    world.insert("erp", "salesperson", [{"code": f"S{i}", "name": f"Sam {i}"} for i in range(3)])
    keys = customers(world, 30)
    for i, key in enumerate(keys):
        world.edit("erp", "customer", key, salesperson=f"S{i % 3}")
    assert [[m.name for m in wave] for wave in world.rt.mappings.waves()] == [["SALESPEOPLE"], ["CUSTOMER"]]

    outcomes_ = fullsync.run(world.rt)

    assert [(o.mapping, o.action) for o in outcomes_] == [
        ("SALESPEOPLE", fullsync.FULL),
        ("CUSTOMER", fullsync.FULL),
    ]
    assert outcomes_[0].counts == Counts(inserted=3)
    assert outcomes_[1].counts == Counts(inserted=30)
    # every customer's salesperson was coupled before the customer was created: the lookups held
    users = couplings(world, "SALESPEOPLE")
    for i, key in enumerate(keys):
        account = world.account(world.counterpart("CUSTOMER", "erp", key) or "")
        assert account["ownerid"] == users[f"S{i % 3}"]
    people_job, customer_job = (world.rt.store.jobs(ids=o.jobs)[0] for o in outcomes_)
    assert people_job.finished_at is not None
    assert people_job.finished_at <= customer_job.started_at
    assert world.rt.store.count_errors() == 0
    assert verify(world.rt).converged


def test_fullsync_of_a_dependent_mapping_alone_fails_its_lookups_instead_of_guessing(world: World) -> None:
    world.insert("erp", "salesperson", [{"code": "S1", "name": "Sam"}])
    world.insert_customer("C1", salesperson="S1")
    world.insert_customer("C2")

    (outcome,) = fullsync.run(world.rt, ["CUSTOMER"])

    assert outcome.counts == Counts(inserted=1, failed=1)
    (error,) = world.rt.store.errors("CUSTOMER")
    assert (error.record_key, error.kind) == ("C1", "lookup")
    assert world.rt.store.count_couplings("SALESPEOPLE") == 0


class Interrupted(Exception):
    """Stands for the process being stopped in the middle of a run."""


def test_fullsync_resumes_after_an_interruption(make_world: MakeWorld) -> None:
    world = make_world(batch_size=10)
    world.insert("erp", "salesperson", [{"code": "S1", "name": "Sam"}])
    keys = customers(world, 50, salesperson="S1")
    assert [r.action for r in fullsync.review(world.rt)] == [fullsync.FULL, fullsync.FULL]
    calls: list[tuple[str, int, int]] = []

    def stop_in_the_middle(label: str, done: int, total: int) -> None:
        calls.append((label, done, total))
        if label == "CUSTOMER: create from erp" and done >= 20:
            raise Interrupted(label)  # after the second batch of ten was committed

    with pytest.raises(Interrupted):
        fullsync.run(world.rt, progress=stop_in_the_middle)

    assert calls[0] == ("SALESPEOPLE: create from erp", 1, 1)
    assert calls[-1] == ("CUSTOMER: create from erp", 20, 50)
    assert world.rt.store.count_couplings("CUSTOMER") == 20
    assert world.count("crm", "account") == 20
    interrupted = world.rt.store.jobs("CUSTOMER", limit=1)[0]
    assert (interrupted.status, interrupted.counts) == ("failed", Counts(inserted=20))
    middle = {r.mapping: r for r in fullsync.review(world.rt)}
    assert middle["SALESPEOPLE"].action == fullsync.NOTHING
    assert (middle["CUSTOMER"].action, middle["CUSTOMER"].uncoupled) == (fullsync.FULL, {"erp": 30, "crm": 0})

    again = fullsync.run(world.rt)

    assert [(o.action, o.counts) for o in again] == [
        (fullsync.NOTHING, Counts()),
        (fullsync.FULL, Counts(inserted=30)),
    ]
    assert world.rt.store.count_couplings("CUSTOMER") == 50
    assert world.count("crm", "account") == 50  # nothing was created twice
    user = world.counterpart("SALESPEOPLE", "erp", "S1")
    assert {r["ownerid"] for r in world.rows("crm", "account")} == {user}
    assert sorted(str(r["accountnumber"]) for r in world.rows("crm", "account")) == keys
    assert [r.action for r in fullsync.review(world.rt)] == [fullsync.NOTHING, fullsync.NOTHING]
    assert verify(world.rt).converged


def test_fullsync_completes_matching_started_by_hand(world: World) -> None:
    keys = customers(world, 12)
    matched = accounts(world, [f"NAME {k}" for k in keys[:4]] + ["Only in the CRM 1", "Only in the CRM 2"])
    (review,) = fullsync.review(world.rt, ["CUSTOMER"])
    assert (review.action, review.uncoupled) == (fullsync.COUPLE, {"erp": 12, "crm": 6})
    # part of the work done before an interruption: two matched, three created
    assert len(match(world.rt, "CUSTOMER", "erp", keys[:2]).matched) == 2
    assert create_and_couple(world.rt, "CUSTOMER", "erp", keys[4:7]).counts == Counts(inserted=3)
    (review,) = fullsync.review(world.rt, ["CUSTOMER"])
    assert (review.action, review.uncoupled) == (fullsync.COUPLE, {"erp": 7, "crm": 4})

    (outcome,) = fullsync.run(world.rt, ["CUSTOMER"])

    # from the CRM: 2 matched, 2 created in the ERP, 5 coupled already; from the ERP: 5 created
    assert (outcome.action, outcome.counts) == (fullsync.COUPLE, Counts(coupled=2, inserted=7, skipped=5 + 9))
    assert [world.counterpart("CUSTOMER", "crm", k) for k in matched[:4]] == keys[:4]
    assert world.count("crm", "account") == 6 + 3 + 5
    assert world.count("erp", "customer") == 12 + 2
    assert world.rt.store.count_couplings("CUSTOMER") == 14
    (review,) = fullsync.review(world.rt, ["CUSTOMER"])
    assert (review.action, review.uncoupled) == (fullsync.NOTHING, {"erp": 0, "crm": 0})
    (nothing,) = fullsync.run(world.rt, ["CUSTOMER"])
    assert (nothing.action, nothing.counts, nothing.jobs) == (fullsync.NOTHING, Counts(), [])


def test_fullsync_keeps_a_job_per_mapping_per_direction(world: World) -> None:
    world.insert("erp", "salesperson", [{"code": "S1", "name": "In the ERP"}])
    world.insert("crm", "systemuser", [{"systemuserid": "u-1", "fullname": "In the CRM"}])
    world.insert_customer("C1", name="Both")
    world.insert_customer("C2", name="ERP only")
    both = world.insert_account(name="both")
    crm_only = world.insert_account(name="CRM only")

    outcomes_ = {o.mapping: o for o in fullsync.run(world.rt)}

    people_jobs = world.rt.store.jobs(ids=outcomes_["SALESPEOPLE"].jobs)
    assert sorted((j.kind, j.direction, j.trigger, j.counts.inserted) for j in people_jobs) == [
        ("coupling", "crm->erp", "fullsync", 1),
        ("coupling", "erp->crm", "fullsync", 1),
    ]
    customer_jobs = {j.direction: j for j in world.rt.store.jobs(ids=outcomes_["CUSTOMER"].jobs)}
    assert set(customer_jobs) == {"match from crm", "match from erp"}
    assert {j.kind for j in customer_jobs.values()} == {"coupling"}
    assert {j.status for j in customer_jobs.values()} == {"finished"}
    assert customer_jobs["match from crm"].counts == Counts(coupled=1, inserted=1)
    # from the ERP: C1 and the customer just created from the CRM are coupled already
    assert customer_jobs["match from erp"].counts == Counts(inserted=1, skipped=2)
    assert {j.trigger for j in customer_jobs.values()} == {"fullsync"}
    total = Counts()
    for job in customer_jobs.values():
        total.merge(job.counts)
    assert outcomes_["CUSTOMER"].counts == total
    assert couplings(world)["C1"] == both
    assert world.counterpart("CUSTOMER", "crm", crm_only) is not None
    assert world.count("erp", "customer") == 3 and world.count("crm", "account") == 3


def test_fullsync_refuses_an_unknown_mapping(world: World) -> None:
    with pytest.raises(KeyError, match="unknown mapping 'NOPE'"):
        fullsync.review(world.rt, ["NOPE"])
    with pytest.raises(KeyError, match="unknown mapping 'NOPE'"):
        fullsync.run(world.rt, ["CUSTOMER", "NOPE"])
    assert world.rt.store.jobs() == []


# === deletions: find-deleted, the policies, and the errors actions =================================

# (direction, policy, deleted side) → what find-deleted does
DELETIONS = [
    ("both", "fail", "crm", "failed"),
    ("both", "fail", "erp", "failed"),
    ("both", "uncouple", "crm", "uncoupled"),
    ("both", "uncouple", "erp", "uncoupled"),
    ("both", "restore", "crm", "inserted"),
    ("both", "restore", "erp", "inserted"),
    ("both", "propagate", "crm", "deleted"),
    ("both", "propagate", "erp", "deleted"),
    ("erp->crm", "fail", "crm", "failed"),
    ("erp->crm", "uncouple", "crm", "uncoupled"),
    ("erp->crm", "restore", "crm", "inserted"),
    ("erp->crm", "restore", "erp", "refused"),  # the CRM may not write into the ERP
    ("erp->crm", "propagate", "erp", "deleted"),
    ("erp->crm", "propagate", "crm", "refused"),
]


@pytest.mark.parametrize(("direction", "policy", "deleted", "result"), DELETIONS)
def test_find_deleted_applies_the_deletion_policy(
    make_world: MakeWorld, direction: str, policy: str, deleted: str, result: str
) -> None:
    world = make_world(direction=direction, deletion=policy)
    accounts_ = {no: pair(world, no, name=f"Customer {no}", city="Aarhus") for no in ("C1", "C2", "C3")}
    gone = "C2" if deleted == "erp" else accounts_["C2"]
    survivor_system = "crm" if deleted == "erp" else "erp"
    survivor = accounts_["C2"] if deleted == "erp" else "C2"
    world.delete(deleted, "customer" if deleted == "erp" else "account", gone)

    (people, report) = find_deleted(world.rt)

    assert (people.mapping, people.counts) == ("SALESPEOPLE", Counts())
    assert report.mapping == "CUSTOMER"
    assert [p.origin_key for p in report.plans] == [accounts_["C2"]]  # synced by the pair's crm key
    table = {"erp": "customer", "crm": "account"}
    job = world.rt.store.jobs("CUSTOMER", limit=1)[0]
    assert (job.id, job.kind, job.direction, job.trigger) == (
        report.job_id,
        "sync",
        "find deleted",
        "find-deleted",
    )
    assert job.counts == report.counts
    untouched = {no: a for no, a in accounts_.items() if no != "C2"}
    assert all(world.counterpart("CUSTOMER", "erp", no) == a for no, a in untouched.items())
    if result == "failed":
        assert report.counts == Counts(failed=1)
        (error,) = world.rt.store.errors("CUSTOMER")
        assert error.kind == "deleted"
        assert f"the {deleted} record {gone} was deleted" in error.message
        assert world.counterpart("CUSTOMER", survivor_system, survivor) is not None
        assert world.row(survivor_system, table[survivor_system], survivor) is not None
    elif result == "uncoupled":
        assert report.counts == Counts(uncoupled=1)
        assert world.counterpart("CUSTOMER", survivor_system, survivor) is None
        assert world.row(survivor_system, table[survivor_system], survivor) is not None
        assert world.rt.store.count_couplings("CUSTOMER") == 2
    elif result == "inserted":
        assert report.counts == Counts(inserted=1)
        restored = world.counterpart("CUSTOMER", survivor_system, survivor)
        assert restored is not None and restored != gone
        row = world.row(deleted, table[deleted], restored)
        assert row is not None and row["name"] == "Customer C2" and row["city"] == "Aarhus"
        assert world.rt.store.count_errors() == 0
    elif result == "deleted":
        assert report.counts == Counts(deleted=1)
        assert world.row(survivor_system, table[survivor_system], survivor) is None
        assert world.rt.store.count_couplings("CUSTOMER") == 2
    else:
        assert report.counts == Counts(failed=1)
        (error,) = world.rt.store.errors("CUSTOMER")
        assert error.kind == "direction"
        assert "does not flow from" in error.message
        assert world.row(survivor_system, table[survivor_system], survivor) is not None
    # a second look finds nothing new to do (the listed ones are listed again, no more)
    (_, second) = find_deleted(world.rt, ["CUSTOMER", "SALESPEOPLE"])
    expected_again = Counts(failed=1) if result in ("failed", "refused") else Counts()
    assert second.counts == expected_again
    assert world.rt.store.count_errors() == (1 if result in ("failed", "refused") else 0)


@pytest.mark.parametrize(
    ("policy", "outcome"),
    [
        ("fail", Outcome.FAILED),
        ("uncouple", Outcome.UNCOUPLED),
        ("restore", Outcome.INSERTED),
        ("propagate", Outcome.DELETED),
    ],
)
def test_a_delete_event_applies_the_deletion_policy_and_find_deleted_agrees(
    make_world: MakeWorld, policy: str, outcome: Outcome
) -> None:
    world = make_world(deletion=policy)
    account = pair(world, "C1", city="Aarhus")
    world.delete("crm", "account", account)
    jobs = EventJobs()

    report = apply_changes(world.rt, jobs, "CUSTOMER", "crm", [(account, [])])  # "crm account deleted"
    jobs.close(world.rt)

    assert outcomes(report.plans) == {account: outcome}
    if policy == "restore":
        restored = world.counterpart("CUSTOMER", "erp", "C1")
        assert restored is not None and world.account(restored)["city"] == "Aarhus"
    elif policy == "propagate":
        assert world.row("erp", "customer", "C1") is None
    # what the event settled, find-deleted does not find again; what it listed, it lists once
    (again,) = find_deleted(world.rt, ["CUSTOMER"])
    assert again.counts == (Counts(failed=1) if policy == "fail" else Counts())
    assert world.rt.store.count_errors() == (1 if policy == "fail" else 0)


def test_find_deleted_pages_through_many_couplings_and_removes_pairs_gone_on_both_sides(
    world: World,
) -> None:
    keys = customers(world, 520)
    assert create_and_couple(world.rt, "CUSTOMER", "erp", keys).counts == Counts(inserted=520)
    late = world.counterpart("CUSTOMER", "erp", keys[510]) or ""  # in the second page of couplings
    world.delete("crm", "account", late)
    both = world.counterpart("CUSTOMER", "erp", keys[3]) or ""
    world.delete("crm", "account", both)
    world.delete("erp", "customer", keys[3])
    seen: list[tuple[int, int]] = []

    (report,) = find_deleted(world.rt, ["CUSTOMER"], progress=lambda done, total: seen.append((done, total)))

    assert outcomes(report.plans) == {late: Outcome.FAILED, both: Outcome.UNCOUPLED}
    assert report.counts == Counts(failed=1, uncoupled=1)
    assert seen == [(500, 520), (520, 520)]
    assert world.rt.store.count_couplings("CUSTOMER") == 519
    (error,) = world.rt.store.errors("CUSTOMER")
    assert (error.kind, error.a_key, error.b_key) == ("deleted", late, keys[510])


def test_a_deletion_is_found_from_the_survivor_by_a_sync_as_well(world: World) -> None:
    account = pair(world, "C1")
    world.delete("crm", "account", account)
    report = sync(world.rt, "CUSTOMER", "erp", ["C1"])
    assert report.counts == Counts(failed=1)
    assert world.rt.store.errors("CUSTOMER")[0].kind == "deleted"
    # find-deleted then lists the same error once, not twice
    find_deleted(world.rt, ["CUSTOMER"])
    (error,) = world.rt.store.errors("CUSTOMER")
    assert error.kind == "deleted"


def test_find_deleted_with_a_system_down_raises_and_changes_nothing(
    world: World, backend: str, tmp_path: Path
) -> None:
    account = pair(world, "C1")
    world.delete("crm", "account", account)
    before = world.rt.store.list_couplings(world.rt.mappings["CUSTOMER"])

    with system_down(world, backend, tmp_path) as down, pytest.raises(SystemUnavailable):
        find_deleted(down, ["CUSTOMER"])

    assert world.rt.store.list_couplings(world.rt.mappings["CUSTOMER"]) == before
    assert world.rt.store.count_errors() == 0
    (job,) = world.rt.store.jobs("CUSTOMER", limit=1)
    assert (job.direction, job.status) == ("find deleted", "failed")  # not left "running"
    assert "SystemUnavailable" in (job.message or "")
    (report,) = find_deleted(world.rt, ["CUSTOMER"])
    assert report.counts == Counts(failed=1)


@pytest.mark.parametrize("direction", ["both", "erp->crm"])
def test_the_errors_actions_on_deletions_found(make_world: MakeWorld, direction: str) -> None:
    world = make_world(direction=direction)
    restore_me = pair(world, "C1", name="Restore me", city="Vejle")
    pair(world, "C2", name="Delete my survivor")
    pair(world, "C3", name="Uncouple me")
    pair(world, "C4", name="Stays")
    survivor_of = {world.counterpart("CUSTOMER", "erp", no): no for no in ("C1", "C2", "C3")}
    for account in survivor_of:
        world.delete("crm", "account", account or "")
    find_deleted(world.rt)
    errors = {survivor_of[e.record_key]: e for e in world.rt.store.errors("CUSTOMER")}
    assert set(errors) == {"C1", "C2", "C3"}
    assert {e.kind for e in errors.values()} == {"deleted"}

    (restored,) = fix.restore(world.rt, [errors["C1"]])
    assert restored.counts == Counts(inserted=1)
    new = world.counterpart("CUSTOMER", "erp", "C1")
    assert new is not None and new != restore_me
    assert (world.account(new)["name"], world.account(new)["city"]) == ("Restore me", "Vejle")

    (deleted,) = fix.delete_survivor(world.rt, [errors["C2"]])
    if direction == "both":
        assert deleted.counts == Counts(deleted=1)
        assert world.row("erp", "customer", "C2") is None
        assert world.counterpart("CUSTOMER", "erp", "C2") is None
    else:  # the deletion cannot flow from the CRM into the ERP
        assert deleted.counts == Counts(failed=1)
        assert world.row("erp", "customer", "C2") is not None
        assert world.rt.store.errors("CUSTOMER", ids=[errors["C2"].id])[0].kind == "direction"

    assert fix.uncouple_errors(world.rt, [errors["C3"]]) == Counts(uncoupled=1)
    assert world.counterpart("CUSTOMER", "erp", "C3") is None
    assert world.row("erp", "customer", "C3") is not None

    open_ = {survivor_of[e.record_key] for e in world.rt.store.errors("CUSTOMER")}
    assert open_ == (set() if direction == "both" else {"C2"})
    assert world.counterpart("CUSTOMER", "erp", "C4") is not None


def test_restore_is_refused_where_the_mapping_does_not_flow(make_world: MakeWorld) -> None:
    world = make_world(direction="erp->crm")
    account = pair(world, "C1")
    world.delete("erp", "customer", "C1")
    find_deleted(world.rt)
    (error,) = world.rt.store.errors("CUSTOMER")

    (report,) = fix.restore(world.rt, [error])

    assert report.counts == Counts(failed=1)
    assert reasons(report) == {
        account: "the erp record C1 was deleted and cannot be restored: "
        "mapping CUSTOMER does not flow from crm to erp"
    }
    assert world.row("erp", "customer", "C1") is None
    assert world.row("crm", "account", account) is not None


# === parked (skipped) records ======================================================================


def failing_lookup(world: World, no: str = "C1", code: str = "S1") -> str:
    """A coupled customer whose salesperson is not coupled: every sync of it fails the same way."""
    account = pair(world, no)
    world.insert("erp", "salesperson", [{"code": code, "name": f"Sam {code}"}])
    world.edit("erp", "customer", no, salesperson=code)
    return account


def test_identical_failures_park_the_record_after_skip_after(make_world: MakeWorld) -> None:
    world = make_world(skip_after=3)
    failing_lookup(world)
    pair(world, "C2")

    for attempt in (1, 2, 3):
        report = sync(world.rt, "CUSTOMER", "erp", ["C1", "C2"])
        assert report.counts == Counts(failed=1, unchanged=1)
        (error,) = world.rt.store.errors("CUSTOMER")
        assert (error.occurrences, error.skipped) == (attempt, attempt == 3)
    coupling = coupling_of(world, "erp", "C1")
    assert (coupling.status, coupling.skipped, coupling.failures) == (CouplingStatus.SKIPPED, True, 3)

    parked = sync(world.rt, "CUSTOMER", "erp", ["C1"])
    assert parked.counts == Counts(skipped=1)
    assert "parked after 3 identical failures" in reasons(parked)["C1"]
    assert [e.record_key for e in world.rt.store.errors("CUSTOMER") if e.skipped] == ["C1"]
    assert world.rt.store.errors("CUSTOMER")[0].occurrences == 3  # skipping is not failing again


def test_an_uncoupled_record_that_fails_to_be_created_is_parked_and_fullsync_skips_it(
    make_world: MakeWorld,
) -> None:
    world = make_world(skip_after=2)
    world.insert("erp", "salesperson", [{"code": "S1", "name": "Sam"}])
    world.insert_customer("C1", salesperson="S1")  # S1 will not be coupled: CUSTOMER alone is run
    world.insert_customer("C2")
    fullsync.run(world.rt, ["CUSTOMER"])
    (second,) = fullsync.run(world.rt, ["CUSTOMER"])
    assert second.counts == Counts(failed=1)
    (error,) = world.rt.store.errors("CUSTOMER")
    assert (error.subject, error.occurrences, error.skipped) == ("record:erp:C1", 2, True)

    (third,) = fullsync.run(world.rt, ["CUSTOMER"])
    assert third.counts == Counts(skipped=1)
    assert world.count("crm", "account") == 1
    assert world.rt.store.count_couplings("CUSTOMER") == 1  # no pending coupling left behind


def test_different_failures_do_not_park(make_world: MakeWorld) -> None:
    world = make_world(skip_after=2)
    pair(world, "C1")
    world.insert("erp", "salesperson", [{"code": f"S{i}", "name": f"Sam {i}"} for i in range(4)])
    for i in range(4):
        world.edit("erp", "customer", "C1", salesperson=f"S{i}")
        assert sync(world.rt, "CUSTOMER", "erp", ["C1"]).counts == Counts(failed=1)
        (error,) = world.rt.store.errors("CUSTOMER")
        assert (error.occurrences, error.skipped) == (1, False)
    assert coupling_of(world, "erp", "C1").status is CouplingStatus.FAILED


def test_a_system_that_cannot_be_reached_parks_nothing(
    make_world: MakeWorld, backend: str, tmp_path: Path
) -> None:
    world = make_world(skip_after=2)
    failing_lookup(world)
    world.insert_customer("C2", name="Not coupled yet")
    assert sync(world.rt, "CUSTOMER", "erp", ["C1"]).counts == Counts(failed=1)  # one failure so far
    error_before = world.rt.store.errors("CUSTOMER")[0]
    coupling_before = coupling_of(world, "erp", "C1")

    with system_down(world, backend, tmp_path) as down:
        for _ in range(3):
            with pytest.raises(SystemUnavailable, match="crm is unavailable"):
                sync(down, "CUSTOMER", "erp", ["C1"])
            with pytest.raises(SystemUnavailable):
                create_and_couple(down, "CUSTOMER", "erp", ["C2"])
            with pytest.raises(SystemUnavailable):
                match(down, "CUSTOMER", "erp", create_new=True)

    (error,) = world.rt.store.errors("CUSTOMER")
    assert (error.occurrences, error.skipped, error.message) == (1, False, error_before.message)
    assert coupling_of(world, "erp", "C1") == coupling_before
    assert world.rt.store.count_couplings("CUSTOMER") == 1  # no pending coupling for C2
    failed = [j for j in world.rt.store.jobs("CUSTOMER") if j.status == "failed"]
    assert len(failed) == 9 and all("SystemUnavailable" in (j.message or "") for j in failed)

    # back again: the next identical failure is the second one, and parks the record
    assert sync(world.rt, "CUSTOMER", "erp", ["C1"]).counts == Counts(failed=1)
    (error,) = world.rt.store.errors("CUSTOMER")
    assert (error.occurrences, error.skipped) == (2, True)
    # a retry while the system is down unparks the record (as asked) and does not park it again
    with system_down(world, backend, tmp_path) as down, pytest.raises(SystemUnavailable):
        fix.retry(down, [error])
    (error,) = world.rt.store.errors("CUSTOMER")
    assert (error.occurrences, error.skipped) == (0, False)
    assert coupling_of(world, "erp", "C1").status is CouplingStatus.FAILED
    assert create_and_couple(world.rt, "CUSTOMER", "erp", ["C2"]).counts == Counts(inserted=1)


@pytest.mark.parametrize("action", ["retry", "sync"])
def test_retry_and_errors_sync_bring_a_parked_record_back(make_world: MakeWorld, action: str) -> None:
    world = make_world(skip_after=2)
    account = failing_lookup(world)
    for _ in range(2):
        sync(world.rt, "CUSTOMER", "erp", ["C1"])
    (error,) = world.rt.store.errors("CUSTOMER")
    assert error.skipped
    assert sync(world.rt, "CUSTOMER", "erp", ["C1"]).counts == Counts(skipped=1)
    assert create_and_couple(world.rt, "SALESPEOPLE", "erp", ["S1"]).counts == Counts(inserted=1)
    assert sync(world.rt, "CUSTOMER", "erp", ["C1"]).counts == Counts(skipped=1)  # still parked

    if action == "retry":
        (report,) = fix.retry(world.rt, [error])
    else:
        (report,) = fix.sync_from(world.rt, [error], "erp")

    assert report.counts == Counts(modified=1)
    assert world.account(account)["ownerid"] == world.counterpart("SALESPEOPLE", "erp", "S1")
    assert world.rt.store.count_errors() == 0
    coupling = coupling_of(world, "erp", "C1")
    assert (coupling.status, coupling.skipped, coupling.failures) == (CouplingStatus.SYNCED, False, 0)
    world.edit("erp", "customer", "C1", city="Back in business")
    assert sync(world.rt, "CUSTOMER", "erp", ["C1"]).counts == Counts(modified=1)


def test_retry_all_brings_back_every_parked_record(make_world: MakeWorld) -> None:
    world = make_world(skip_after=2)
    for no in ("C1", "C2"):
        failing_lookup(world, no, code=f"S-{no}")
    for _ in range(2):
        sync(world.rt, "CUSTOMER", "erp", ["C1", "C2"])
    assert [e.skipped for e in world.rt.store.errors("CUSTOMER")] == [True, True]

    reports = fix.retry(world.rt, fix.open_errors(world.rt, None))

    # tried again (and failing again, once each: the count starts over)
    assert sum(r.counts.failed for r in reports) == 2
    assert [(e.occurrences, e.skipped) for e in world.rt.store.errors("CUSTOMER")] == [(1, False), (1, False)]


# === dry runs write nothing ========================================================================


def test_a_dry_run_sync_writes_nothing_and_shows_each_change(world: World) -> None:
    account = pair(world, "C1", phone="+45 1", city="Aarhus")
    world.edit("erp", "customer", "C1", city="Odense")
    world.edit("crm", "account", account, telephone="+45 2", at=later(1))
    world.insert_customer("C2", name="New", phone="+45 3")
    before = world.snapshot()

    merged = sync(world.rt, "CUSTOMER", "erp", ["C1"], dry_run=True)
    created = sync(world.rt, "CUSTOMER", "erp", ["C2"], Request(source="erp", create=True), dry_run=True)

    assert world.snapshot() == before
    assert (merged.job_id, created.job_id) == (None, None)
    assert merged.counts == Counts(modified=1)
    assert changes(merged.plans, "C1") == {
        ("crm", "city", "Aarhus", "Odense"),
        ("erp", "phone", "+45 1", "+45 2"),
    }
    assert created.counts == Counts(inserted=1)
    assert {("crm", "name", None, "New"), ("crm", "telephone", None, "+45 3")} <= changes(created.plans, "C2")


def test_a_dry_run_match_writes_nothing_and_shows_what_it_would_write(world: World) -> None:
    world.insert_customer("C1", name="Contoso", phone="+45 1")
    world.insert_customer("C2", name="New in the ERP", city="Vejle")
    account = world.insert_account(name="CONTOSO", telephone="+45 9")
    before = world.snapshot()

    report: MatchReport = match(world.rt, "CUSTOMER", "erp", create_new=True, then="erp", dry_run=True)

    assert world.snapshot() == before
    assert report.job_id is None
    assert report.matched == [("C1", account)]
    assert report.created == ["C2"]
    assert report.counts.coupled == 1 and report.counts.inserted == 1
    # the plans carry every field before → after, per side
    assert {("crm", "name", "CONTOSO", "Contoso"), ("crm", "telephone", "+45 9", "+45 1")} <= changes(
        report.plans, "C1"
    )
    assert {("crm", "name", None, "New in the ERP"), ("crm", "city", None, "Vejle")} <= changes(
        report.plans, "C2"
    )
    # and the real run does what the dry run said
    done = match(world.rt, "CUSTOMER", "erp", create_new=True, then="erp")
    assert (done.matched, done.created) == (report.matched, report.created)
    assert world.account(account)["telephone"] == "+45 1"


def test_a_dry_run_fullsync_writes_nothing_and_shows_what_it_would_write(world: World) -> None:
    world.insert("erp", "salesperson", [{"code": "S1", "name": "Sam"}])
    world.insert_customer("C1", name="Contoso", phone="+45 1")
    world.insert_customer("C2", name="New", city="Vejle")
    world.insert_account(name="contoso")
    before = world.snapshot()

    outcomes_ = fullsync.run(world.rt, dry_run=True)

    assert world.snapshot() == before
    assert [(o.mapping, o.action, o.jobs) for o in outcomes_] == [
        ("SALESPEOPLE", fullsync.FULL, []),
        ("CUSTOMER", fullsync.COUPLE, []),
    ]
    people, customer = outcomes_
    assert people.counts == Counts(inserted=1)
    assert ("crm", "fullname", None, "Sam") in changes(people.plans, "S1")
    assert customer.counts.coupled == 1 and customer.counts.inserted == 1
    assert ("crm", "city", None, "Vejle") in changes(customer.plans, "C2")
    assert isinstance(next(c for p in customer.plans for c in p.changes), Change)
