"""`tandem match`, `tandem fullsync` and `tandem errors find-deleted` through click's CliRunner.

Each test passes --config FILE and sets TANDEM_DATABASE_URL and TANDEM_HOME, as a user would, against
a world from tests/factories.py (SQLite, then PostgreSQL). Exit codes (README): 0 done, 1 records failed
or refused, 2 usage or configuration, 3 unreachable.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from domain.jobs import Counts
from tests.factories import World, build_world, mapping_yaml
from tests.runner import Tandem
from workers.usecases.couple import create_and_couple

COUNT_KEYS = set(Counts().as_dict())
RECORD_KEYS = {"system", "key", "outcome", "reason", "error_kind", "changes", "conflicts"}


@pytest.fixture
def world(urls: dict[str, str]) -> Iterator[World]:
    made = build_world(urls, match=True)
    try:
        yield made
    finally:
        made.close()


def a_little_of_everything(world: World) -> dict[str, str]:
    """C1 matches an account, C2 matches two, C3 matches nothing; one account matches no customer."""
    world.insert_customer("C1", name="Contoso", phone="+45 1")
    world.insert_customer("C2", name="Twice")
    world.insert_customer("C3", name="Nobody", city="Vejle")
    return {
        "contoso": world.insert_account(name="CONTOSO", telephone="+45 9"),
        "twice-1": world.insert_account(name="twice"),
        "twice-2": world.insert_account(name="TWICE"),
        "crm-only": world.insert_account(name="Only in the CRM"),
    }


# --- tandem match ----------------------------------------------------------------------------------


def test_match_couples_and_reports_in_words(tandem: Tandem, world: World) -> None:
    keys = a_little_of_everything(world)

    result = tandem("match", "CUSTOMER")

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"  matched: erp C1 ↔ crm {keys['contoso']}" in out
    assert "  not coupled: erp C2 — 2 crm records match: " in out
    assert keys["twice-1"] in out and keys["twice-2"] in out
    assert "  no match (1): C3" in out
    assert "1 matched, 1 ambiguous, 1 unmatched, 0 created" in out
    assert "2 skipped, 1 coupled (job " in out
    assert world.counterpart("CUSTOMER", "erp", "C1") == keys["contoso"]
    assert world.rt.store.count_couplings("CUSTOMER") == 1


def test_match_json_from_the_crm_side(tandem: Tandem, world: World) -> None:
    keys = a_little_of_everything(world)

    data = tandem.json("match", "CUSTOMER", "--from", "crm")

    assert set(data) == {
        "mapping",
        "from",
        "job",
        "counts",
        "matched",
        "unmatched",
        "ambiguous",
        "created",
        "records",
    }
    assert (data["mapping"], data["from"]) == ("CUSTOMER", "crm")
    assert isinstance(data["job"], int)
    assert set(data["counts"]) == COUNT_KEYS
    assert sorted((m["crm"], m["erp"]) for m in data["matched"]) == sorted(
        [(keys["contoso"], "C1"), (min(keys["twice-1"], keys["twice-2"]), "C2")]
    )
    # from the CRM the two "twice" accounts want one customer: the first gets it, the other is reported
    assert [a["key"] for a in data["ambiguous"]] == [max(keys["twice-1"], keys["twice-2"])]
    assert "is coupled to another record" in data["ambiguous"][0]["candidates"]
    assert data["unmatched"] == [keys["crm-only"]]
    assert data["created"] == [] and data["records"] == []
    assert data["counts"]["coupled"] == 2
    job = world.rt.store.jobs("CUSTOMER")[0]
    assert (job.id, job.kind, job.direction) == (data["job"], "coupling", "match from crm")


def test_match_ids_create_new_and_sync(tandem: Tandem, world: World) -> None:
    keys = a_little_of_everything(world)

    data = tandem.json("match", "CUSTOMER", "--ids", "C1", "--ids", "C3", "--create-new", "--sync", "erp")

    assert data["matched"] == [{"erp": "C1", "crm": keys["contoso"]}]
    assert data["created"] == ["C3"]
    assert data["ambiguous"] == []  # C2 was not asked for
    assert {r["key"]: r["outcome"] for r in data["records"]} == {"C3": "inserted", "C1": "modified"}
    assert all(set(r) == RECORD_KEYS for r in data["records"])
    assert (data["counts"]["coupled"], data["counts"]["inserted"], data["counts"]["modified"]) == (1, 1, 1)
    assert world.account(keys["contoso"])["telephone"] == "+45 1"  # synced from the ERP
    created = world.counterpart("CUSTOMER", "erp", "C3")
    assert created is not None and world.account(created)["city"] == "Vejle"
    assert world.counterpart("CUSTOMER", "erp", "C2") is None


def test_match_dry_run_prints_the_changes_and_writes_nothing(tandem: Tandem, world: World) -> None:
    keys = a_little_of_everything(world)
    before = world.snapshot()

    result = tandem("match", "CUSTOMER", "--create-new", "--sync", "erp", "--dry-run")

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "dry run: nothing was written" in out
    assert f"  matched: erp C1 ↔ crm {keys['contoso']}" in out
    assert "crm.telephone: '+45 9' → '+45 1'" in out  # what --sync erp would write
    assert "crm.city: None → 'Vejle'" in out  # what --create-new would create for C3
    assert "(job " not in out
    assert world.snapshot() == before

    data = tandem.json("match", "CUSTOMER", "--create-new", "--dry-run")
    assert data["job"] is None and data["created"] == ["C3"]
    (record,) = [r for r in data["records"] if r["key"] == "C3"]
    assert {"system": "crm", "column": "name", "before": None, "after": "Nobody"} in record["changes"]
    assert world.snapshot() == before


@pytest.mark.parametrize(
    "args, message",
    [
        (["match", "NOPE"], "unknown mapping 'NOPE' (known: CUSTOMER, SALESPEOPLE)"),
        (["match", "SALESPEOPLE"], "mapping SALESPEOPLE has no match fields"),
        (["match", "CUSTOMER", "--from", "sap"], "--from: mapping CUSTOMER pairs crm and erp, not 'sap'"),
        (["match", "CUSTOMER", "--sync", "sap"], "--sync: mapping CUSTOMER pairs crm and erp, not 'sap'"),
        (["match", "CUSTOMER", "--frm", "crm"], "No such option '--frm'"),
        (["match"], "Missing argument 'MAPPING'"),
    ],
)
def test_match_bad_input_is_a_usage_error(
    tandem: Tandem, world: World, args: list[str], message: str
) -> None:
    a_little_of_everything(world)
    before = world.snapshot()
    result = tandem(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert world.snapshot() == before


def test_match_with_failed_creates_exits_1(tandem: Tandem, world: World) -> None:
    world.insert("erp", "salesperson", [{"code": "S1", "name": "Sam"}])
    world.insert_customer("C1", name="Has an uncoupled salesperson", salesperson="S1")
    result = tandem("match", "CUSTOMER", "--create-new")
    assert result.exit_code == 1, result.output
    assert "failed erp C1 — field erp.salesperson ↔ crm.ownerid" in result.stdout
    assert world.rt.store.errors("CUSTOMER")[0].kind == "lookup"


def test_match_with_a_system_down_exits_3(tandem: Tandem, world: World, backend: str, tmp_path: Path) -> None:
    a_little_of_everything(world)
    down = (
        f"sqlite:///{tmp_path / 'no' / 'folder' / 'crm.sqlite'}"
        if backend == "sqlite"
        else "postgresql+psycopg://postgres@127.0.0.1:1/nowhere?connect_timeout=2"
    )
    path = tmp_path / "down.yaml"
    path.write_text(mapping_yaml(world.urls["erp"], down, match=True), encoding="utf-8")

    result = tandem("match", "CUSTOMER", config=path)

    assert result.exit_code == 3, result.output
    assert "crm is unavailable" in result.output
    assert world.rt.store.count_couplings() == 0


# --- tandem fullsync -------------------------------------------------------------------------------


def two_mappings_to_do(world: World, *, new_customer_has_salesperson: bool = True) -> None:
    """SALESPEOPLE: one in the ERP only. CUSTOMER: C1 matches an account, C2 is in the ERP only."""
    world.insert("erp", "salesperson", [{"code": "S1", "name": "Sam"}])
    world.insert_customer("C1", name="Contoso", salesperson="S1")
    world.insert_customer(
        "C2", name="New", city="Vejle", salesperson="S1" if new_customer_has_salesperson else None
    )
    world.insert_account(name="contoso")


def test_fullsync_dry_run_prints_the_review_and_the_changes_and_writes_nothing(
    tandem: Tandem, world: World
) -> None:
    two_mappings_to_do(world, new_customer_has_salesperson=False)
    before = world.snapshot()

    result = tandem("fullsync", "--dry-run")

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "full synchronization review" in out
    lines = out.splitlines()
    people = next(line for line in lines if "SALESPEOPLE" in line and "│" in line)
    customer = next(line for line in lines if "CUSTOMER" in line and "│" in line)
    assert lines.index(people) < lines.index(customer)  # in dependency order
    assert "full synchronization" in people and "1 (1 uncoupled)" in people
    assert "couple records" in customer and "2 (2 uncoupled)" in customer
    assert "dry run: nothing was written" in out
    assert "crm.fullname: None → 'Sam'" in out
    assert "crm.city: None → 'Vejle'" in out
    assert "CUSTOMER: couple records: 1 inserted, 1 coupled (jobs -)" in out
    assert world.snapshot() == before


def test_fullsync_dry_run_cannot_see_the_parents_an_earlier_wave_would_couple(
    tandem: Tandem, world: World
) -> None:
    two_mappings_to_do(world)  # C2's salesperson is coupled only by the SALESPEOPLE wave
    before = world.snapshot()

    result = tandem("fullsync", "--dry-run")

    assert result.exit_code == 1, result.output
    assert "failed erp C2 — field erp.salesperson ↔ crm.ownerid: the erp record 'S1'" in result.stdout
    assert world.snapshot() == before
    assert tandem("fullsync", "--yes").exit_code == 0  # the real run couples S1 first
    assert world.rt.store.count_errors() == 0


def test_fullsync_asks_before_running(tandem: Tandem, world: World) -> None:
    two_mappings_to_do(world)
    before = world.snapshot()

    no = tandem("fullsync", input="n\n")
    assert no.exit_code == 0, no.output
    assert "run these recommendations?" in no.output
    assert world.snapshot() == before

    yes = tandem("fullsync", input="y\n")
    assert yes.exit_code == 0, yes.output
    assert "SALESPEOPLE: full synchronization: 1 inserted (jobs " in yes.stdout
    assert "CUSTOMER: couple records: 1 inserted, 1 skipped, 1 coupled (jobs " in yes.stdout
    assert world.rt.store.count_couplings() == 3


def test_fullsync_yes_json_and_then_nothing_to_do(tandem: Tandem, world: World) -> None:
    two_mappings_to_do(world)

    data = tandem.json("fullsync", "--yes")

    assert set(data) == {"review", "outcomes"}
    assert [(r["mapping"], r["action"]) for r in data["review"]] == [
        ("SALESPEOPLE", "full synchronization"),
        ("CUSTOMER", "couple records"),
    ]
    outcomes = {o["mapping"]: o for o in data["outcomes"]}
    assert set(outcomes["CUSTOMER"]) == {"mapping", "action", "counts", "jobs", "records"}
    assert outcomes["SALESPEOPLE"]["counts"]["inserted"] == 1
    assert (outcomes["CUSTOMER"]["counts"]["coupled"], outcomes["CUSTOMER"]["counts"]["inserted"]) == (1, 1)
    jobs = {j.id: j for j in world.rt.store.jobs()}
    assert all(jobs[j].kind == "coupling" for o in data["outcomes"] for j in o["jobs"])
    assert len(outcomes["CUSTOMER"]["jobs"]) == 2  # one per direction
    # the customers were created after their salesperson was coupled
    user = world.counterpart("SALESPEOPLE", "erp", "S1")
    created = world.counterpart("CUSTOMER", "erp", "C2")
    assert created is not None and world.account(created)["ownerid"] == user

    again = tandem.json("fullsync", "--yes")
    assert [r["action"] for r in again["review"]] == ["nothing to do", "nothing to do"]
    assert again["outcomes"] == []
    words = tandem("fullsync")
    assert words.exit_code == 0 and "nothing to do" in words.stdout
    assert "run these recommendations?" not in words.output


def test_fullsync_json_without_yes_does_not_run_unasked(tandem: Tandem, world: World) -> None:
    two_mappings_to_do(world)
    before = world.snapshot()
    result = tandem("fullsync", "--json")
    assert result.exit_code == 1, result.output
    assert world.snapshot() == before


def test_fullsync_of_named_mappings_and_bad_names(tandem: Tandem, world: World) -> None:
    two_mappings_to_do(world)
    bad = tandem("fullsync", "SALESPEOPLE", "NOPE", "--yes")
    assert bad.exit_code == 2
    assert "unknown mapping 'NOPE'" in bad.output
    assert world.rt.store.count_couplings() == 0

    data = tandem.json("fullsync", "SALESPEOPLE", "--yes")
    assert [o["mapping"] for o in data["outcomes"]] == ["SALESPEOPLE"]
    assert world.rt.store.count_couplings("CUSTOMER") == 0


def test_fullsync_with_failed_records_exits_1(tandem: Tandem, world: World) -> None:
    two_mappings_to_do(world)
    result = tandem("fullsync", "CUSTOMER", "--yes")  # the salesperson is not coupled first
    assert result.exit_code == 1, result.output
    assert "CUSTOMER: couple records: " in result.stdout and "1 failed" in result.stdout
    assert world.rt.store.errors("CUSTOMER")[0].kind == "lookup"


# --- tandem errors find-deleted --------------------------------------------------------------------


def test_find_deleted_lists_the_deletions_and_the_errors_actions_fix_them(
    tandem: Tandem, world: World
) -> None:
    for no in ("C1", "C2", "C3"):
        world.insert_customer(no, name=f"Customer {no}")
    assert create_and_couple(world.rt, "CUSTOMER", "erp", ["C1", "C2", "C3"]).counts.inserted == 3
    accounts = {no: world.counterpart("CUSTOMER", "erp", no) or "" for no in ("C1", "C2")}
    for account in accounts.values():
        world.delete("crm", "account", account)

    result = tandem("errors", "find-deleted")

    assert result.exit_code == 1, result.output  # records were listed as failed
    for account in accounts.values():
        assert f"the crm record {account} was deleted; restore it from erp" in result.stdout
    assert "2 failed" in result.stdout
    errors = {e.b_key: e.id for e in world.rt.store.errors("CUSTOMER")}
    assert set(errors) == {"C1", "C2"}

    restored = tandem.json("errors", "restore", str(errors["C1"]))
    assert restored["counts"]["inserted"] == 1
    new = world.counterpart("CUSTOMER", "erp", "C1")
    assert new is not None and world.account(new)["name"] == "Customer C1"

    deleted = tandem.json("errors", "delete-record", str(errors["C2"]))
    assert deleted["counts"]["deleted"] == 1
    assert world.row("erp", "customer", "C2") is None

    data = tandem.json("errors", "find-deleted", "CUSTOMER")
    assert set(data) == {"counts", "jobs"} and data["counts"] == dict.fromkeys(COUNT_KEYS, 0)
    assert len(data["jobs"]) == 1


def test_find_deleted_uncouple_and_bad_names(tandem: Tandem, world: World) -> None:
    world.insert_customer("C1")
    assert create_and_couple(world.rt, "CUSTOMER", "erp", ["C1"]).counts.inserted == 1
    world.delete("erp", "customer", "C1")
    assert tandem("errors", "find-deleted", "CUSTOMER").exit_code == 1
    (error,) = world.rt.store.errors("CUSTOMER")

    uncoupled = tandem.json("errors", "uncouple", str(error.id))
    assert uncoupled["counts"]["uncoupled"] == 1
    assert world.rt.store.count_couplings("CUSTOMER") == 0 and world.rt.store.count_errors() == 0

    bad = tandem("errors", "find-deleted", "NOPE")
    assert bad.exit_code == 2 and "unknown mapping 'NOPE'" in bad.output
