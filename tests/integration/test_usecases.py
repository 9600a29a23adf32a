"""The use cases (couple, create, sync, uncouple, fix, verify) on real databases: SQLite and PostgreSQL.

Every test gets its own store and its own two systems (see tests/factories.py).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.connectors.base import SystemUnavailable
from adapters.connectors.sql import SqlConnector
from adapters.runtime import Runtime
from domain.coupling import CouplingStatus
from domain.jobs import Counts
from domain.plan import Outcome
from domain.planner import Request
from tests.factories import MakeWorld, World, build_world, databases, later
from workers.usecases import fix
from workers.usecases.couple import CouplingRefused, couple, create_and_couple
from workers.usecases.sync import SyncReport, recommend_for, sync
from workers.usecases.uncouple import uncouple
from workers.usecases.verify import verify


def pair(w: World, no: str = "C1", **values: Any) -> str:
    """An ERP customer created in the CRM and coupled; returns the account's key."""
    w.insert_customer(no, **{"phone": "+45 1111", "city": "Aarhus", "credit": 5000, **values})
    report = create_and_couple(w.rt, "CUSTOMER", "erp", [no])
    assert report.counts.inserted == 1, report.plans
    key = w.counterpart("CUSTOMER", "erp", no)
    assert key is not None
    return key


def outcomes(report: SyncReport) -> dict[str, Outcome]:
    return {p.origin_key: p.outcome for p in report.plans}


def reasons(report: SyncReport) -> dict[str, str]:
    return {p.origin_key: p.reason for p in report.plans}


def unreachable(backend: str, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'no' / 'such' / 'folder' / 'crm.sqlite'}"
    return "postgresql+psycopg://postgres@127.0.0.1:1/nowhere?connect_timeout=2"


# --- couple ----------------------------------------------------------------------------------------


def test_couple_links_two_existing_records_without_changing_them(world: World) -> None:
    world.insert_customer("C1", name="Contoso", phone="1")
    account = world.insert_account(name="Contoso Ltd", telephone="2")
    before = (world.customer("C1"), world.account(account))

    report = couple(world.rt, "CUSTOMER", {"erp": "C1", "crm": account})

    assert report.counts == Counts(coupled=1)
    assert world.counterpart("CUSTOMER", "erp", "C1") == account
    coupling = world.rt.store.couplings(world.rt.mappings["CUSTOMER"], "crm", [account])[account]
    assert coupling.status is CouplingStatus.COUPLED
    assert coupling.base is None
    assert (world.customer("C1"), world.account(account)) == before


def test_couple_refuses_a_record_coupled_to_a_live_counterpart(world: World) -> None:
    world.insert_customer("C1")
    world.insert_customer("C2")
    first = world.insert_account()
    second = world.insert_account()
    couple(world.rt, "CUSTOMER", {"erp": "C1", "crm": first})

    with pytest.raises(CouplingRefused, match=r"coupled to the crm record .* already; uncouple it first"):
        couple(world.rt, "CUSTOMER", {"erp": "C1", "crm": second})
    with pytest.raises(CouplingRefused, match=r"the crm record .* is coupled to the erp record 'C1'"):
        couple(world.rt, "CUSTOMER", {"erp": "C2", "crm": first})

    assert world.counterpart("CUSTOMER", "erp", "C1") == first
    assert world.counterpart("CUSTOMER", "erp", "C2") is None
    assert world.rt.store.count_couplings("CUSTOMER") == 1
    assert world.rt.store.jobs("CUSTOMER", limit=1)[0].status == "failed"


def test_couple_is_allowed_when_the_old_counterpart_was_deleted(world: World) -> None:
    world.insert_customer("C1")
    old = world.insert_account()
    new = world.insert_account()
    couple(world.rt, "CUSTOMER", {"erp": "C1", "crm": old})
    world.delete("crm", "account", old)

    report = couple(world.rt, "CUSTOMER", {"erp": "C1", "crm": new})

    assert report.counts.coupled == 1
    assert world.counterpart("CUSTOMER", "erp", "C1") == new
    assert world.counterpart("CUSTOMER", "crm", old) is None
    assert world.rt.store.count_couplings("CUSTOMER") == 1


def test_coupling_the_same_pair_twice_is_skipped(world: World) -> None:
    world.insert_customer("C1")
    account = world.insert_account()
    couple(world.rt, "CUSTOMER", {"erp": "C1", "crm": account})
    again = couple(world.rt, "CUSTOMER", {"erp": "C1", "crm": account})
    assert again.counts == Counts(skipped=1)
    assert world.rt.store.count_couplings("CUSTOMER") == 1


@pytest.mark.parametrize(
    "keys, message",
    [
        ({"erp": "NOPE", "crm": "x"}, "there is no erp record 'NOPE' in customer"),
        ({"erp": "C1"}, "name one record of each system of CUSTOMER"),
        ({"erp": "C1", "crm": "x", "sap": "y"}, "name one record of each system"),
    ],
)
def test_couple_refuses_missing_records_and_wrong_systems(
    world: World, keys: dict[str, str], message: str
) -> None:
    world.insert_customer("C1")
    with pytest.raises(CouplingRefused, match=message):
        couple(world.rt, "CUSTOMER", keys)
    assert world.rt.store.count_couplings() == 0


@pytest.mark.parametrize("then", ["erp", "crm"])
def test_couple_then_sync_from_a_system(world: World, then: str) -> None:
    world.insert_customer("C1", name="ERP name", phone="erp-phone", city="Odense")
    account = world.insert_account(name="CRM name", telephone="crm-phone", city=None)

    report = couple(world.rt, "CUSTOMER", {"erp": "C1", "crm": account}, then=then)

    assert report.counts.coupled == 1
    assert report.counts.modified == 1
    customer, crm = world.customer("C1"), world.account(account)
    expected = ("ERP name", "erp-phone", "Odense") if then == "erp" else ("CRM name", "crm-phone", None)
    assert (customer["name"], customer["phone"], customer["city"]) == expected
    assert (crm["name"], crm["telephone"], crm["city"]) == expected
    assert crm["accountnumber"] == ("C1" if then == "erp" else None)
    coupling = world.rt.store.couplings(world.rt.mappings["CUSTOMER"], "erp", ["C1"])["C1"]
    assert coupling.status is CouplingStatus.SYNCED
    assert verify(world.rt, ["CUSTOMER"]).converged is (then == "erp")


def test_couple_then_merge_settles_by_the_conflict_policy(make_world: MakeWorld) -> None:
    world = make_world(conflict="prefer crm")
    world.insert_customer("C1", name="Same", phone="erp-phone")
    account = world.insert_account(name="Same", telephone="crm-phone", accountnumber="C1")
    report = couple(world.rt, "CUSTOMER", {"erp": "C1", "crm": account}, then="merge")
    assert report.counts.modified == 1
    assert world.customer("C1")["phone"] == "crm-phone"
    assert world.account(account)["telephone"] == "crm-phone"


# --- create and couple -----------------------------------------------------------------------------


def test_create_and_couple_creates_counterparts_and_counts_coupled_ones_as_skipped(world: World) -> None:
    world.insert_customer("C1", name="Contoso", phone="+1 555", city="Seattle", credit=2500)
    world.insert_customer("C2", name="Fabrikam", credit=1234.5)

    first = create_and_couple(world.rt, "CUSTOMER", "erp", ["C1", "C2"])

    assert first.counts == Counts(inserted=2)
    account = world.account(world.counterpart("CUSTOMER", "erp", "C1") or "")
    assert {k: account[k] for k in ("name", "telephone", "city", "creditlimit", "accountnumber")} == {
        "name": "Contoso",
        "telephone": "+1 555",
        "city": "Seattle",
        "creditlimit": 2500,
        "accountnumber": "C1",
    }
    assert world.account(world.counterpart("CUSTOMER", "erp", "C2") or "")["creditlimit"] == 1234.5

    world.insert_customer("C3")
    second = create_and_couple(world.rt, "CUSTOMER", "erp", ["C1", "C2", "C3", "C3"])

    assert second.counts == Counts(inserted=1, skipped=2)
    assert reasons(second)["C1"] == "coupled already"
    assert world.count("crm", "account") == 3
    job = world.rt.store.jobs("CUSTOMER", limit=1)[0]
    assert (job.kind, job.status, job.counts) == ("coupling", "finished", Counts(inserted=1, skipped=2))
    assert verify(world.rt, ["CUSTOMER"]).converged


def test_create_and_couple_dry_run_writes_nothing(world: World) -> None:
    world.insert_customer("C1", name="Contoso")
    world.insert_customer("C2", name="Fabrikam")
    pair(world, "C3")
    before = world.snapshot()

    report = create_and_couple(world.rt, "CUSTOMER", "erp", ["C1", "C2", "C3"], dry_run=True)

    assert report.counts == Counts(inserted=2, skipped=1)
    assert report.job_id is None
    planned = {p.origin_key: {c.column: c.after for c in p.changes} for p in report.plans}
    assert planned["C1"]["name"] == "Contoso"
    assert world.snapshot() == before


def test_create_from_the_crm_gets_a_generated_erp_key_that_flows_back(world: World) -> None:
    account = world.insert_account(name="Nordic Cycles", telephone="+45 33", statecode=0)

    report = create_and_couple(world.rt, "CUSTOMER", "crm", [account])

    assert report.counts == Counts(inserted=1)
    no = world.counterpart("CUSTOMER", "crm", account)
    assert no is not None and no.startswith("C-") and len(no) == 20
    assert world.customer(no)["name"] == "Nordic Cycles"
    assert world.account(account)["accountnumber"] == no
    assert verify(world.rt, ["CUSTOMER"]).converged


# --- ids that do not exist -------------------------------------------------------------------------


def test_ids_that_do_not_exist_are_skipped_with_a_reason(world: World) -> None:
    pair(world, "C1")
    created = create_and_couple(world.rt, "CUSTOMER", "erp", ["NOPE", "C1"])
    assert created.counts == Counts(skipped=2)
    assert reasons(created)["NOPE"] == "no erp record with key 'NOPE'"

    synced = sync(world.rt, "CUSTOMER", "crm", ["not-a-guid", "'; DROP TABLE account; --"])
    assert synced.counts == Counts(skipped=2)
    assert reasons(synced)["not-a-guid"] == "no crm record with key 'not-a-guid'"
    assert world.count("crm", "account") == 1

    with pytest.raises(KeyError, match="unknown mapping 'VENDOR'"):
        sync(world.rt, "VENDOR", "erp", ["C1"])
    with pytest.raises(KeyError, match="has no side 'sap'"):
        sync(world.rt, "CUSTOMER", "sap", ["C1"])


# --- sync ------------------------------------------------------------------------------------------


def test_sync_merges_edits_both_ways(world: World) -> None:
    account = pair(world)
    world.edit("erp", "customer", "C1", phone="+45 2222")
    report = sync(world.rt, "CUSTOMER", "erp", ["C1"])
    assert report.counts == Counts(modified=1)
    assert world.account(account)["telephone"] == "+45 2222"

    world.edit("crm", "account", account, city="Copenhagen")
    report = sync(world.rt, "CUSTOMER", "crm", [account])
    assert report.counts == Counts(modified=1)
    assert world.customer("C1")["city"] == "Copenhagen"

    again = sync(world.rt, "CUSTOMER", "erp", ["C1"])
    assert again.counts == Counts(unchanged=1)
    assert verify(world.rt).converged


def test_sync_merges_different_fields_changed_on_each_side(world: World) -> None:
    account = pair(world)
    world.edit("erp", "customer", "C1", phone="erp-phone")
    world.edit("crm", "account", account, city="crm-city")

    report = sync(world.rt, "CUSTOMER", "erp", ["C1"])

    assert report.counts == Counts(modified=1)
    for record in (world.customer("C1"), world.account(account)):
        assert (record.get("phone", record.get("telephone")), record["city"]) == ("erp-phone", "crm-city")
    assert world.rt.store.count_errors() == 0


def test_push_sends_every_mapped_field_from_the_source(world: World) -> None:
    account = pair(world)
    world.edit("erp", "customer", "C1", phone="pushed", credit=9000)
    report = sync(world.rt, "CUSTOMER", "erp", ["C1"], Request(source="erp"))
    assert report.counts == Counts(modified=1)
    changed = {c.column for p in report.plans for c in p.changes}
    assert changed == {"telephone", "creditlimit"}
    assert (world.account(account)["telephone"], world.account(account)["creditlimit"]) == ("pushed", 9000)


def test_push_skips_a_target_that_changed_since_the_last_sync_unless_forced(world: World) -> None:
    account = pair(world)
    world.edit("crm", "account", account, telephone="crm-edit")
    world.edit("erp", "customer", "C1", phone="erp-edit")

    skipped = sync(world.rt, "CUSTOMER", "erp", ["C1"], Request(source="erp"))

    assert skipped.counts == Counts(skipped=1)
    assert "the crm record changed since the last sync (telephone)" in reasons(skipped)["C1"]
    assert world.account(account)["telephone"] == "crm-edit"

    forced = sync(world.rt, "CUSTOMER", "erp", ["C1"], Request(source="erp", force=True))

    assert forced.counts == Counts(modified=1)
    assert world.account(account)["telephone"] == "erp-edit"


def test_push_against_the_mapping_direction_fails(make_world: MakeWorld) -> None:
    world = make_world(direction="erp->crm")
    account = pair(world)
    world.edit("crm", "account", account, telephone="crm-edit")
    report = sync(world.rt, "CUSTOMER", "crm", [account], Request(source="crm"))
    assert report.counts == Counts(failed=1)
    assert "does not flow from crm to erp" in reasons(report)[account]
    assert world.customer("C1")["phone"] == "+45 1111"
    # a merge re-asserts the one-way fields from their source
    merged = sync(world.rt, "CUSTOMER", "erp", ["C1"])
    assert merged.counts == Counts(modified=1)
    assert world.account(account)["telephone"] == "+45 1111"


# --- recommendation --------------------------------------------------------------------------------


def test_recommendation_says_which_side_changed(world: World) -> None:
    world.insert_customer("C9")
    assert recommend_for(world.rt, "CUSTOMER", "erp", "C9") is None  # not coupled
    never = world.insert_account()
    couple(world.rt, "CUSTOMER", {"erp": "C9", "crm": never})
    first = recommend_for(world.rt, "CUSTOMER", "erp", "C9")
    assert first is not None and first.source is None and "never synchronized" in first.reason

    account = pair(world)
    quiet = recommend_for(world.rt, "CUSTOMER", "erp", "C1")
    assert quiet is not None and (quiet.source, quiet.reason) == (
        None,
        "nothing changed on either side since the last sync: merge",
    )

    world.edit("erp", "customer", "C1", phone="new")
    mine = recommend_for(world.rt, "CUSTOMER", "erp", "C1")
    assert mine is not None and (mine.source, mine.reason) == (
        "erp",
        "only erp changed since the last sync (phone)",
    )
    theirs = recommend_for(world.rt, "CUSTOMER", "crm", account)
    assert theirs is not None and theirs.source == "erp"

    world.edit("crm", "account", account, city="Roskilde")
    both = recommend_for(world.rt, "CUSTOMER", "erp", "C1")
    assert both is not None and both.source is None
    assert both.reason == "both changed (erp: phone; crm: city): merge"

    sync(world.rt, "CUSTOMER", "erp", ["C1"])
    world.edit("crm", "account", account, telephone="crm only")
    crm_only = recommend_for(world.rt, "CUSTOMER", "erp", "C1")
    assert crm_only is not None and crm_only.source == "crm"
    assert crm_only.reason == "only crm changed since the last sync (telephone)"

    world.delete("crm", "account", account)
    assert recommend_for(world.rt, "CUSTOMER", "erp", "C1") is None


# --- conflicts -------------------------------------------------------------------------------------


def test_conflict_under_fail_is_listed_and_other_fields_still_merge(world: World) -> None:
    account = pair(world, name="Base")
    world.edit("erp", "customer", "C1", name="ERP name", phone="erp-phone")
    world.edit("crm", "account", account, name="CRM name")

    report = sync(world.rt, "CUSTOMER", "erp", ["C1"])

    assert report.counts == Counts(failed=1)
    assert "changed on both sides" in reasons(report)["C1"]
    assert "conflict policy: fail" in reasons(report)["C1"]
    assert (world.customer("C1")["name"], world.account(account)["name"]) == ("ERP name", "CRM name")
    assert world.account(account)["telephone"] == "erp-phone"  # changed on one side: merged
    (error,) = world.rt.store.errors("CUSTOMER")
    assert (error.kind, error.record_key, error.skipped) == ("conflict", "C1", False)
    assert error.detail["conflicts"][0]["current"] == {"erp": "ERP name", "crm": "CRM name"}

    # the merged phone is part of the base now: the conflict alone remains
    again = sync(world.rt, "CUSTOMER", "erp", ["C1"])
    assert [c.field for p in again.plans for c in p.conflicts] == ["erp.name ↔ crm.name"]
    assert not [c for p in again.plans for c in p.changes]

    # settled from a chosen side
    (settled,) = fix.sync_from(world.rt, world.rt.store.errors("CUSTOMER"), "crm")
    assert settled.counts == Counts(modified=1)
    assert world.customer("C1")["name"] == "CRM name"
    assert world.rt.store.count_errors() == 0
    assert verify(world.rt).converged


@pytest.mark.parametrize(
    "policy, erp_at, crm_at, winner",
    [
        ("prefer erp", 1, 2, "erp"),
        ("prefer crm", 2, 1, "crm"),
        ("latest", 1, 2, "crm"),
        ("latest", 2, 1, "erp"),
    ],
)
def test_conflict_policies_choose_a_winner(
    make_world: MakeWorld, policy: str, erp_at: int, crm_at: int, winner: str
) -> None:
    world = make_world(conflict=policy)
    account = pair(world, name="Base")
    world.edit("erp", "customer", "C1", name="ERP name", at=later(erp_at))
    world.edit("crm", "account", account, name="CRM name", at=later(crm_at))

    report = sync(world.rt, "CUSTOMER", "crm", [account])

    assert report.counts == Counts(modified=1)
    expected = "ERP name" if winner == "erp" else "CRM name"
    assert (world.customer("C1")["name"], world.account(account)["name"]) == (expected, expected)
    assert world.rt.store.count_errors() == 0


def test_latest_with_equal_moments_is_listed(make_world: MakeWorld) -> None:
    world = make_world(conflict="latest")
    account = pair(world, name="Base")
    moment = later(5)
    world.edit("erp", "customer", "C1", name="ERP name", at=moment)
    world.edit("crm", "account", account, name="CRM name", at=moment)
    report = sync(world.rt, "CUSTOMER", "erp", ["C1"])
    assert report.counts == Counts(failed=1)
    assert world.rt.store.errors("CUSTOMER")[0].kind == "conflict"


# --- deletions -------------------------------------------------------------------------------------


def test_deletion_policy_fail_lists_the_pair(world: World) -> None:
    account = pair(world)
    world.delete("crm", "account", account)

    report = sync(world.rt, "CUSTOMER", "erp", ["C1"])

    assert report.counts == Counts(failed=1)
    (error,) = world.rt.store.errors("CUSTOMER")
    assert error.kind == "deleted"
    assert f"the crm record {account} was deleted" in error.message
    assert world.counterpart("CUSTOMER", "erp", "C1") == account
    assert world.row("erp", "customer", "C1") is not None


def test_deletion_policy_uncouple_keeps_the_survivor(make_world: MakeWorld) -> None:
    world = make_world(deletion="uncouple")
    account = pair(world)
    world.delete("crm", "account", account)
    report = sync(world.rt, "CUSTOMER", "erp", ["C1"])
    assert report.counts == Counts(uncoupled=1)
    assert world.counterpart("CUSTOMER", "erp", "C1") is None
    assert world.row("erp", "customer", "C1") is not None


@pytest.mark.parametrize("gone, origin", [("crm", "erp"), ("erp", "crm"), ("crm", "crm"), ("erp", "erp")])
def test_deletion_policy_restore_recreates_the_deleted_record(
    make_world: MakeWorld, gone: str, origin: str
) -> None:
    """The sync may be asked by either record's key: the survivor's, or the deleted one's (an event)."""
    world = make_world(deletion="restore")
    account = pair(world, name="Restore me", phone="+45 9")
    world.delete(gone, "account" if gone == "crm" else "customer", account if gone == "crm" else "C1")

    report = sync(world.rt, "CUSTOMER", origin, [account if origin == "crm" else "C1"])

    assert report.counts == Counts(inserted=1)
    assert world.count("erp", "customer") == world.count("crm", "account") == 1
    (erp_row,) = world.rows("erp", "customer")
    (crm_row,) = world.rows("crm", "account")
    assert (
        (erp_row["name"], erp_row["phone"])
        == (crm_row["name"], crm_row["telephone"])
        == ("Restore me", "+45 9")
    )
    assert world.counterpart("CUSTOMER", "erp", str(erp_row["no"])) == crm_row["accountid"]
    assert verify(world.rt, ["CUSTOMER"]).converged


def test_deletion_policy_propagate_deletes_the_survivor(make_world: MakeWorld) -> None:
    world = make_world(deletion="propagate")
    account = pair(world)
    pair(world, "C2")
    world.delete("crm", "account", account)

    report = sync(world.rt, "CUSTOMER", "erp", ["C1", "C2"])

    assert report.counts == Counts(deleted=1, unchanged=1)
    assert world.row("erp", "customer", "C1") is None
    assert world.row("erp", "customer", "C2") is not None
    assert world.counterpart("CUSTOMER", "erp", "C1") is None
    job = world.rt.store.jobs("CUSTOMER", limit=1)[0]
    assert job.counts == Counts(deleted=1, unchanged=1)


def test_a_pair_deleted_on_both_sides_is_uncoupled(world: World) -> None:
    account = pair(world)
    world.delete("crm", "account", account)
    world.delete("erp", "customer", "C1")
    report = sync(world.rt, "CUSTOMER", "crm", [account])
    assert report.counts == Counts(uncoupled=1)
    assert world.rt.store.count_couplings("CUSTOMER") == 0


def _deleted_pair_with_error(world: World) -> str:
    account = pair(world, name="Survivor")
    world.delete("crm", "account", account)
    assert sync(world.rt, "CUSTOMER", "erp", ["C1"]).counts == Counts(failed=1)
    return account


def test_error_action_restore(world: World) -> None:
    old = _deleted_pair_with_error(world)
    (report,) = fix.restore(world.rt, world.rt.store.errors())
    assert report.counts == Counts(inserted=1)
    new = world.counterpart("CUSTOMER", "erp", "C1")
    assert new is not None and new != old
    assert world.account(new)["name"] == "Survivor"
    assert world.rt.store.count_errors() == 0
    assert verify(world.rt).converged


def test_error_action_delete_survivor(world: World) -> None:
    _deleted_pair_with_error(world)
    (report,) = fix.delete_survivor(world.rt, world.rt.store.errors())
    assert report.counts == Counts(deleted=1)
    assert world.row("erp", "customer", "C1") is None
    assert world.rt.store.count_couplings("CUSTOMER") == 0
    assert world.rt.store.count_errors() == 0


def test_error_action_uncouple(world: World) -> None:
    _deleted_pair_with_error(world)
    counts = fix.uncouple_errors(world.rt, world.rt.store.errors())
    assert counts == Counts(uncoupled=1)
    assert world.row("erp", "customer", "C1") is not None
    assert world.counterpart("CUSTOMER", "erp", "C1") is None
    assert world.rt.store.count_errors() == 0
    assert world.rt.store.errors(state="resolved")[0].record_key == "C1"


def test_error_action_dismiss_closes_the_error_only(world: World) -> None:
    account = _deleted_pair_with_error(world)
    assert fix.dismiss(world.rt, world.rt.store.errors()) == 1
    assert world.rt.store.count_errors() == 0
    assert world.rt.store.errors(state="dismissed")[0].kind == "deleted"
    assert world.counterpart("CUSTOMER", "erp", "C1") == account
    # the cause is still there: the next sync lists it again
    assert sync(world.rt, "CUSTOMER", "erp", ["C1"]).counts == Counts(failed=1)
    assert world.rt.store.count_errors() == 1


def test_error_action_retry_after_the_cause_is_fixed(world: World) -> None:
    account = _deleted_pair_with_error(world)
    world.insert_account(accountid=account, name="Survivor", telephone="+45 1111", city="Aarhus")
    (report,) = fix.retry(world.rt, world.rt.store.errors())
    assert report.counts == Counts(modified=1)  # the re-created account gets the ERP's missing values
    assert world.account(account)["accountnumber"] == "C1"
    assert world.rt.store.count_errors() == 0
    assert verify(world.rt).converged


def test_error_actions_refuse_unknown_ids(world: World) -> None:
    _deleted_pair_with_error(world)
    with pytest.raises(fix.NoSuchError, match="no open error with id 999"):
        fix.open_errors(world.rt, [999])
    (row,) = fix.open_errors(world.rt, None)
    assert fix.open_errors(world.rt, [row.id]) == [row]


# --- parked (skipped) records ----------------------------------------------------------------------


def test_a_coupled_record_is_parked_after_skip_after_identical_failures(make_world: MakeWorld) -> None:
    world = make_world(skip_after=3)
    pair(world)
    world.insert("erp", "salesperson", [{"code": "S1", "name": "Sam"}])
    world.edit("erp", "customer", "C1", salesperson="S1")  # S1 is not coupled: the lookup fails

    for attempt in (1, 2):
        report = sync(world.rt, "CUSTOMER", "erp", ["C1"])
        assert report.counts == Counts(failed=1)
        (error,) = world.rt.store.errors("CUSTOMER")
        assert (error.kind, error.occurrences, error.skipped) == ("lookup", attempt, False)
    report = sync(world.rt, "CUSTOMER", "erp", ["C1"])
    assert report.counts == Counts(failed=1)
    (error,) = world.rt.store.errors("CUSTOMER")
    assert (error.occurrences, error.skipped) == (3, True)
    coupling = world.rt.store.couplings(world.rt.mappings["CUSTOMER"], "erp", ["C1"])["C1"]
    assert (coupling.status, coupling.skipped, coupling.failures) == (CouplingStatus.SKIPPED, True, 3)

    parked = sync(world.rt, "CUSTOMER", "erp", ["C1"])
    assert parked.counts == Counts(skipped=1)
    assert "parked after 3 identical failures" in reasons(parked)["C1"]
    assert world.rt.store.errors("CUSTOMER")[0].occurrences == 3


def test_an_uncoupled_record_is_parked_after_identical_failures(make_world: MakeWorld) -> None:
    world = make_world(sync_only_coupled=False)
    world.insert("erp", "salesperson", [{"code": "S1", "name": "Sam"}])
    world.insert_customer("C1", salesperson="S1")
    for _ in range(2):
        assert sync(world.rt, "CUSTOMER", "erp", ["C1"]).counts == Counts(failed=1)
    (error,) = world.rt.store.errors("CUSTOMER")
    assert (error.subject, error.occurrences, error.skipped) == ("record:erp:C1", 2, True)

    parked = sync(world.rt, "CUSTOMER", "erp", ["C1"])
    assert parked.counts == Counts(skipped=1)
    assert reasons(parked)["C1"] == "parked after repeated failures; retry it"
    assert world.count("crm", "account") == 0
    assert world.rt.store.count_couplings("CUSTOMER") == 0  # no pending coupling is left behind


def test_different_failures_do_not_park(world: World) -> None:
    pair(world)
    world.insert("erp", "salesperson", [{"code": f"S{i}", "name": f"Sam {i}"} for i in range(4)])
    for i in range(4):
        world.edit("erp", "customer", "C1", salesperson=f"S{i}")
        assert sync(world.rt, "CUSTOMER", "erp", ["C1"]).counts == Counts(failed=1)
        (error,) = world.rt.store.errors("CUSTOMER")
        assert f"'S{i}'" in error.message
        assert (error.occurrences, error.skipped) == (1, False)


def test_retry_unparks_and_resolves_once_the_cause_is_fixed(world: World) -> None:
    account = pair(world)
    world.insert("erp", "salesperson", [{"code": "S1", "name": "Sam"}])
    world.edit("erp", "customer", "C1", salesperson="S1")
    for _ in range(3):
        sync(world.rt, "CUSTOMER", "erp", ["C1"])
    assert world.rt.store.errors("CUSTOMER")[0].skipped

    # a retry runs the parked record again, even before the cause is fixed
    (again,) = fix.retry(world.rt, world.rt.store.errors("CUSTOMER"))
    assert again.counts == Counts(failed=1)
    (error,) = world.rt.store.errors("CUSTOMER")
    assert (error.occurrences, error.skipped) == (1, False)

    assert create_and_couple(world.rt, "SALESPEOPLE", "erp", ["S1"]).counts == Counts(inserted=1)
    user = world.counterpart("SALESPEOPLE", "erp", "S1")
    (fixed,) = fix.retry(world.rt, world.rt.store.errors("CUSTOMER"))
    assert fixed.counts == Counts(modified=1)
    assert world.account(account)["ownerid"] == user
    assert world.rt.store.count_errors() == 0
    coupling = world.rt.store.couplings(world.rt.mappings["CUSTOMER"], "erp", ["C1"])["C1"]
    assert (coupling.status, coupling.skipped, coupling.failures) == (CouplingStatus.SYNCED, False, 0)


# --- records the target refuses -------------------------------------------------------------------


def test_a_create_the_target_refuses_fails_alone_and_leaves_no_pending_coupling(
    make_world: MakeWorld,
) -> None:
    world = make_world(sync_only_coupled=False)
    good = [world.insert_account(name=f"Fine {i}") for i in range(2)]
    bad = world.insert_account(name="x" * 150)  # the CRM takes 160 characters, the ERP 100

    report = sync(world.rt, "CUSTOMER", "crm", [good[0], bad, good[1]])

    assert outcomes(report) == {good[0]: Outcome.INSERTED, bad: Outcome.FAILED, good[1]: Outcome.INSERTED}
    assert "customer.name" in reasons(report)[bad] and "longer than 100 characters" in reasons(report)[bad]
    assert world.count("erp", "customer") == 2
    assert world.rt.store.count_couplings("CUSTOMER") == 2
    (error,) = world.rt.store.errors("CUSTOMER")
    assert (error.kind, error.subject) == ("rejected", f"record:crm:{bad}")

    world.edit("crm", "account", bad, name="Short enough now")
    (retried,) = fix.retry(world.rt, [error])
    assert retried.counts == Counts(inserted=1)
    assert world.rt.store.count_errors() == 0
    assert verify(world.rt).converged


def test_an_update_the_target_refuses_keeps_both_records_as_they_are(world: World) -> None:
    account = pair(world, name="Short")
    pair(world, "C2")
    world.edit("crm", "account", account, name="y" * 150)
    world.edit("crm", "account", world.counterpart("CUSTOMER", "erp", "C2") or "", city="Fine")

    report = sync(world.rt, "CUSTOMER", "erp", ["C1", "C2"])

    assert outcomes(report) == {"C1": Outcome.FAILED, "C2": Outcome.MODIFIED}
    assert world.customer("C1")["name"] == "Short"
    assert world.account(account)["name"] == "y" * 150
    assert world.customer("C2")["city"] == "Fine"
    (error,) = world.rt.store.errors("CUSTOMER")
    assert error.kind == "rejected" and "longer than 100 characters" in error.message

    world.edit("crm", "account", account, name="Renamed")
    assert sync(world.rt, "CUSTOMER", "erp", ["C1"]).counts == Counts(modified=1)
    assert world.customer("C1")["name"] == "Renamed"
    assert world.rt.store.count_errors() == 0


# --- an unreachable system -------------------------------------------------------------------------


def test_an_unreachable_system_raises_parks_nothing_and_loses_nothing(
    world: World, backend: str, tmp_path: Path
) -> None:
    account = pair(world)
    world.insert_customer("C2", name="New")
    world.edit("erp", "customer", "C1", phone="while the crm is down")
    coupling_before = world.rt.store.couplings(world.rt.mappings["CUSTOMER"], "erp", ["C1"])["C1"]
    down = SqlConnector("crm", unreachable(backend, tmp_path))
    broken = Runtime(world.rt.mappings, world.rt.store, {**world.rt.connectors, "crm": down})
    try:
        for attempt in range(3):
            with pytest.raises(SystemUnavailable, match="crm is unavailable"):
                sync(broken, "CUSTOMER", "erp", ["C1"])
            with pytest.raises(SystemUnavailable):
                create_and_couple(broken, "CUSTOMER", "erp", ["C2"])
            assert world.rt.store.count_errors() == 0, attempt
    finally:
        down.close()

    assert world.rt.store.couplings(world.rt.mappings["CUSTOMER"], "erp", ["C1"])["C1"] == coupling_before
    assert world.rt.store.count_couplings("CUSTOMER") == 1  # no pending coupling for C2
    failed = world.rt.store.jobs("CUSTOMER", limit=1)[0]
    assert failed.status == "failed" and "SystemUnavailable" in (failed.message or "")

    # back again: the change is applied as if nothing happened
    assert sync(world.rt, "CUSTOMER", "erp", ["C1"]).counts == Counts(modified=1)
    assert world.account(account)["telephone"] == "while the crm is down"
    assert create_and_couple(world.rt, "CUSTOMER", "erp", ["C2"]).counts == Counts(inserted=1)
    assert verify(world.rt).converged


# --- lookups ---------------------------------------------------------------------------------------


def test_a_lookup_to_an_uncoupled_parent_is_an_error_until_it_is_coupled(world: World) -> None:
    world.insert("erp", "salesperson", [{"code": "S1", "name": "Sam"}])
    world.insert_customer("C1", salesperson="S1")

    report = create_and_couple(world.rt, "CUSTOMER", "erp", ["C1"])

    assert report.counts == Counts(failed=1)
    (error,) = world.rt.store.errors("CUSTOMER")
    assert error.kind == "lookup"
    assert "the erp record 'S1' of mapping SALESPEOPLE is not coupled" in error.message
    assert world.count("crm", "account") == 0
    assert world.rt.store.count_couplings("CUSTOMER") == 0

    assert create_and_couple(world.rt, "SALESPEOPLE", "erp", ["S1"]).counts == Counts(inserted=1)
    user = world.counterpart("SALESPEOPLE", "erp", "S1")
    (retried,) = fix.retry(world.rt, [error])
    assert retried.counts == Counts(inserted=1)
    account = world.counterpart("CUSTOMER", "erp", "C1")
    assert account is not None
    assert world.account(account)["ownerid"] == user
    assert world.rt.store.count_errors() == 0

    # and back: the CRM reassigns the account to another coupled user
    world.insert("crm", "systemuser", [{"systemuserid": "u-2", "fullname": "Uma"}])
    assert create_and_couple(world.rt, "SALESPEOPLE", "crm", ["u-2"]).counts == Counts(inserted=1)
    code = world.counterpart("SALESPEOPLE", "crm", "u-2")
    world.edit("crm", "account", account, ownerid="u-2")
    assert sync(world.rt, "CUSTOMER", "crm", [account]).counts == Counts(modified=1)
    assert world.customer("C1")["salesperson"] == code
    assert verify(world.rt).converged


def test_a_lookup_with_if_uncoupled_blank_writes_nothing(make_world: MakeWorld) -> None:
    world = make_world(if_uncoupled="blank")
    world.insert("erp", "salesperson", [{"code": "S1", "name": "Sam"}])
    world.insert_customer("C1", salesperson="S1")
    report = create_and_couple(world.rt, "CUSTOMER", "erp", ["C1"])
    assert report.counts == Counts(inserted=1)
    account = world.account(world.counterpart("CUSTOMER", "erp", "C1") or "")
    assert account["ownerid"] is None
    assert world.customer("C1")["salesperson"] == "S1"  # a blank never flows back over the reference
    assert world.rt.store.count_errors() == 0


# --- sync_only_coupled off, and matching -----------------------------------------------------------


def test_sync_only_coupled_on_skips_uncoupled_records(world: World) -> None:
    world.insert_customer("C1")
    report = sync(world.rt, "CUSTOMER", "erp", ["C1"])
    assert report.counts == Counts(skipped=1)
    assert "not coupled" in reasons(report)["C1"]
    assert world.count("crm", "account") == 0


def test_sync_only_coupled_off_creates_couples_and_the_new_key_flows_back(make_world: MakeWorld) -> None:
    world = make_world(sync_only_coupled=False)
    active = world.insert_account(name="Active", telephone="+45 1")
    inactive = world.insert_account(name="Inactive", statecode=1)

    report = sync(world.rt, "CUSTOMER", "crm", [active, inactive])

    assert outcomes(report) == {active: Outcome.INSERTED, inactive: Outcome.SKIPPED}
    assert reasons(report)[inactive] == "outside the crm filter"
    no = world.counterpart("CUSTOMER", "crm", active)
    assert no is not None and no.startswith("C-")
    assert world.customer(no)["phone"] == "+45 1"
    assert world.account(active)["accountnumber"] == no  # the ERP's new key flowed back
    assert world.count("erp", "customer") == 1
    assert sync(world.rt, "CUSTOMER", "crm", [active]).counts == Counts(unchanged=1)

    world.insert_customer("C7", name="From the ERP")
    assert sync(world.rt, "CUSTOMER", "erp", ["C7"]).counts == Counts(inserted=1)
    assert world.account(world.counterpart("CUSTOMER", "erp", "C7") or "")["name"] == "From the ERP"
    assert verify(world.rt).converged


def test_matching_couples_an_existing_record_instead_of_creating_a_duplicate(make_world: MakeWorld) -> None:
    world = make_world(sync_only_coupled=False, match=True)
    existing = world.insert_account(name="contoso", telephone="old")
    world.insert_customer("C1", name="Contoso", phone="new")
    world.insert_customer("C2", name="Twice")
    world.insert_account(name="Twice")
    world.insert_account(name="twice")

    report = sync(world.rt, "CUSTOMER", "erp", ["C1", "C2"])

    assert outcomes(report) == {"C1": Outcome.COUPLED, "C2": Outcome.FAILED}
    assert f"matched the crm record {existing}" in reasons(report)["C1"]
    assert "2 crm records match" in reasons(report)["C2"]
    assert world.count("crm", "account") == 3
    assert world.counterpart("CUSTOMER", "erp", "C1") == existing
    assert (world.account(existing)["name"], world.account(existing)["telephone"]) == ("Contoso", "new")
    assert world.rt.store.errors("CUSTOMER")[0].kind == "ambiguous"


# --- pending couplings (a crash between create and coupling) ---------------------------------------


def test_a_pending_coupling_adopts_the_orphan_instead_of_creating_a_duplicate(world: World) -> None:
    world.insert_customer("C1", name="Orphaned", phone="+45 5", city="Vejle", credit=100)
    # what a create that crashed before its coupling was stored leaves behind
    orphan = world.insert_account(
        name="Orphaned", telephone="+45 5", city="Vejle", creditlimit=100, accountnumber="C1"
    )
    mapping = world.rt.mappings["CUSTOMER"]
    world.rt.store.insert_pending(mapping, "erp", ["C1"], None)

    report = create_and_couple(world.rt, "CUSTOMER", "erp", ["C1"])

    assert report.counts == Counts(inserted=1)
    assert world.count("crm", "account") == 1
    assert world.counterpart("CUSTOMER", "erp", "C1") == orphan
    coupling = world.rt.store.couplings(mapping, "erp", ["C1"])["C1"]
    assert coupling.status is CouplingStatus.SYNCED
    assert world.rt.store.count_couplings("CUSTOMER") == 1


def test_a_pending_coupling_without_an_orphan_creates_the_counterpart_once(world: World) -> None:
    world.insert_customer("C1", name="Crashed before the create")
    world.insert_customer("C2", name="Crashed after the create")
    orphan = world.insert_account(name="Crashed after the create", accountnumber="C2")
    world.insert_account(name="Crashed after the create", accountnumber="C2-other")  # not what C2 wrote
    mapping = world.rt.mappings["CUSTOMER"]
    world.rt.store.insert_pending(mapping, "erp", ["C1", "C2"], None)

    report = sync(world.rt, "CUSTOMER", "erp", ["C1", "C2"], Request(source="erp", create=True))

    assert report.counts == Counts(inserted=2)
    assert world.count("crm", "account") == 3
    assert world.counterpart("CUSTOMER", "erp", "C2") == orphan
    created = world.counterpart("CUSTOMER", "erp", "C1")
    assert created is not None and world.account(created)["name"] == "Crashed before the create"
    assert {c.status for c in world.rt.store.list_couplings(mapping)} == {CouplingStatus.SYNCED}
    assert verify(world.rt, ["CUSTOMER"]).converged


# --- uncouple --------------------------------------------------------------------------------------


def test_uncouple_one_record_keeps_both_records(world: World) -> None:
    first = pair(world, "C1")
    pair(world, "C2")
    counts = uncouple(world.rt, "CUSTOMER", "erp", ["C1", "NOPE"])
    assert counts == Counts(uncoupled=1, skipped=1)
    assert world.counterpart("CUSTOMER", "erp", "C1") is None
    assert world.counterpart("CUSTOMER", "erp", "C2") is not None
    assert world.row("erp", "customer", "C1") is not None
    assert world.row("crm", "account", first) is not None
    job = world.rt.store.jobs("CUSTOMER", limit=1)[0]
    assert (job.kind, job.counts) == ("uncouple", Counts(uncoupled=1, skipped=1))


def test_uncouple_all_of_a_mapping_keeps_every_record(world: World) -> None:
    for i in range(5):
        pair(world, f"C{i}")
    world.insert("erp", "salesperson", [{"code": "S1", "name": "Sam"}])
    create_and_couple(world.rt, "SALESPEOPLE", "erp", ["S1"])

    counts = uncouple(world.rt, "CUSTOMER", everything=True)

    assert counts == Counts(uncoupled=5)
    assert world.rt.store.count_couplings("CUSTOMER") == 0
    assert world.rt.store.count_couplings("SALESPEOPLE") == 1
    assert world.count("erp", "customer") == world.count("crm", "account") == 5


# --- verify and jobs -------------------------------------------------------------------------------


def test_verify_reports_a_mismatch_made_by_hand_and_none_after_a_sync(world: World) -> None:
    account = pair(world)
    pair(world, "C2")
    assert verify(world.rt).converged

    world.edit("crm", "account", account, telephone="changed by hand")
    report = verify(world.rt, ["CUSTOMER"])
    assert report.pairs == 2
    (mismatch,) = report.mismatches
    assert mismatch.keys == {"erp": "C1", "crm": account}
    (problem,) = mismatch.problems
    assert problem.startswith("erp.phone ↔ crm.telephone: ")
    assert "'changed by hand'" in problem and "'+45 1111'" in problem

    sync(world.rt, "CUSTOMER", "crm", [account])
    assert verify(world.rt).mismatches == []

    world.delete("crm", "account", account)
    gone = verify(world.rt)
    assert [m.problems for m in gone.mismatches] == [[f"no crm record {account!r}"]]


def test_jobs_record_their_counts(world: World) -> None:
    world.insert_customer("C1")
    world.insert_customer("C2")
    created = create_and_couple(world.rt, "CUSTOMER", "erp", ["C1", "C2", "C3"])
    world.edit("erp", "customer", "C1", phone="x")
    synced = sync(world.rt, "CUSTOMER", "erp", ["C1", "C2"])
    pushed = sync(
        world.rt, "CUSTOMER", "crm", [world.counterpart("CUSTOMER", "erp", "C2") or ""], Request("crm")
    )

    jobs = {j.id: j for j in world.rt.store.jobs("CUSTOMER")}
    assert len(jobs) == 3
    first, second, third = (jobs[r.job_id or -1] for r in (created, synced, pushed))
    assert (first.kind, first.direction, first.status) == ("coupling", "erp->crm", "finished")
    assert first.counts == Counts(inserted=2, skipped=1)
    assert (second.kind, second.direction, second.counts) == (
        "sync",
        "merge",
        Counts(modified=1, unchanged=1),
    )
    assert (third.direction, third.counts) == ("crm->erp", Counts(unchanged=1))
    assert all(j.finished_at is not None and j.trigger == "cli" for j in jobs.values())
    assert world.rt.store.jobs("SALESPEOPLE") == []


# --- hostile values --------------------------------------------------------------------------------

HOSTILE = [
    'O\'Brien "the" Builder',
    "Robert'); DROP TABLE account;--",
    "semi;colon; --comment /* block */",
    "Zürich Straße ŁÓDŹ 東京 Ωμέγα",
    "🚲🎉 Emoji 👩‍👩‍👧 ✓",
    "back\\slash %s %(name)s ${HOME} {0}",
    "tab\tand\nnewline",
]


def test_hostile_values_round_trip_unchanged(world: World) -> None:
    for i, name in enumerate(HOSTILE):
        world.insert_customer(f"H{i}", name=name, city=name[:50])
    world.insert_customer("Q'1;--", name="a key with quotes")

    report = create_and_couple(
        world.rt, "CUSTOMER", "erp", [*(f"H{i}" for i in range(len(HOSTILE))), "Q'1;--"]
    )

    assert report.counts == Counts(inserted=len(HOSTILE) + 1)
    for i, name in enumerate(HOSTILE):
        account = world.account(world.counterpart("CUSTOMER", "erp", f"H{i}") or "")
        assert (account["name"], account["city"], account["accountnumber"]) == (name, name[:50], f"H{i}")
    quoted = world.counterpart("CUSTOMER", "erp", "Q'1;--")
    assert quoted is not None and world.account(quoted)["accountnumber"] == "Q'1;--"

    keys = [world.counterpart("CUSTOMER", "erp", f"H{i}") or "" for i in range(len(HOSTILE))]
    for key, name in zip(keys, reversed(HOSTILE), strict=True):
        world.edit("crm", "account", key, telephone=name[:30])
    back = sync(world.rt, "CUSTOMER", "crm", keys)
    assert back.counts == Counts(modified=len(HOSTILE))
    assert [world.customer(f"H{i}")["phone"] for i in range(len(HOSTILE))] == [
        n[:30] for n in reversed(HOSTILE)
    ]
    assert world.count("erp", "customer") == len(HOSTILE) + 1
    assert verify(world.rt).converged


# --- concurrency -----------------------------------------------------------------------------------


def test_two_threads_creating_the_same_new_records_make_one_counterpart_each(
    world: World, urls: dict[str, str]
) -> None:
    keys = [f"N{i}" for i in range(20)]
    world.insert("erp", "customer", [{"no": k, "name": f"New {k}"} for k in keys])
    racers = [build_world(urls, create=False) for _ in range(2)]
    barrier = threading.Barrier(len(racers))
    results: list[Counts] = []
    failures: list[BaseException] = []

    def race(racer: World) -> None:
        try:
            barrier.wait(timeout=30)
            report = sync(racer.rt, "CUSTOMER", "erp", keys, Request(source="erp", create=True))
            results.append(report.counts)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=race, args=(r,)) for r in racers]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        for racer in racers:
            racer.close()

    assert not failures, failures
    assert sum(c.inserted for c in results) == len(keys)
    assert sum(c.total for c in results) == 2 * len(keys)
    assert world.count("crm", "account") == len(keys)
    assert world.rt.store.count_couplings("CUSTOMER") == len(keys)
    assert verify(world.rt).converged


def _race_in_a_process(urls: dict[str, str], keys: list[str], barrier: Any, results: Any) -> None:
    racer = build_world(urls, create=False)
    try:
        barrier.wait(timeout=60)
        report = sync(racer.rt, "CUSTOMER", "erp", keys, Request(source="erp", create=True))
        results.put(dataclasses.asdict(report.counts))
    except BaseException as exc:
        results.put({"error": repr(exc)})
    finally:
        racer.close()


@pytest.fixture
def postgres_world(tmp_path: Path) -> Iterator[tuple[World, dict[str, str]]]:
    with databases("postgres", tmp_path) as found:
        world = build_world(found)
        try:
            yield world, found
        finally:
            world.close()


@pytest.mark.postgres
def test_two_processes_creating_the_same_new_records_make_one_counterpart_each(
    postgres_world: tuple[World, dict[str, str]],
) -> None:
    world, urls = postgres_world
    keys = [f"P{i}" for i in range(20)]
    world.insert("erp", "customer", [{"no": k, "name": f"New {k}"} for k in keys])
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    results = context.Queue()
    processes = [
        context.Process(target=_race_in_a_process, args=(urls, keys, barrier, results)) for _ in range(2)
    ]
    for process in processes:
        process.start()
    answers = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)

    assert all("error" not in a for a in answers), answers
    assert sum(a["inserted"] for a in answers) == len(keys)
    assert world.count("crm", "account") == len(keys)
    assert world.rt.store.count_couplings("CUSTOMER") == len(keys)
