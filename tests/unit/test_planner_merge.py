"""The planner on a coupled pair, merging both ways: the three-way compare of each side against its base."""

from __future__ import annotations

from dataclasses import replace

import pytest

from domain.coupling import Coupling
from domain.filters import Condition, Filter, Op
from domain.mapping import ConflictPolicy, FieldMapping
from domain.plan import Change, ErrorKind, Outcome, RecordPlan
from domain.planner import Request
from domain.transforms import Lower, Upper
from domain.values import Record, Value
from tests.unit.builders import (
    BOTH,
    CITY,
    CREDIT,
    CRM,
    CRM_TO_ERP,
    ERP,
    ERP_TO_CRM,
    FAIL,
    LATEST,
    NAME,
    PREFER_CRM,
    PREFER_ERP,
    constant,
    coupling,
    crm_record,
    erp_record,
    fld,
    sync,
    table_mapping,
)

BASE_ERP: Record = {"name": "Ann", "city": "Oslo", "credit_limit": 100}
BASE_CRM: Record = {"name": "Ann", "address1_city": "Oslo", "creditlimit": 100}


def synced() -> Coupling:
    return coupling(BASE_ERP, BASE_CRM)


def erp_now(**changes: Value) -> Record:
    return erp_record("C1", **{**BASE_ERP, **changes})


def crm_now(**changes: Value) -> Record:
    return crm_record("A1", **{**BASE_CRM, **changes})


# --- changed on one side, on both, or on neither -----------------------------------------------------


@pytest.mark.parametrize(
    ("erp_changes", "crm_changes", "expected_updates"),
    [
        pytest.param({"name": "Ann Ltd"}, {}, {CRM: {"name": "Ann Ltd"}}, id="erp-name-copied-to-crm"),
        pytest.param({}, {"address1_city": "Bergen"}, {ERP: {"city": "Bergen"}}, id="crm-city-copied-to-erp"),
        pytest.param({"credit_limit": 0}, {}, {CRM: {"creditlimit": 0}}, id="zero-is-a-value"),
        pytest.param({"city": None}, {}, {CRM: {"address1_city": None}}, id="cleared-field-copied"),
        pytest.param(
            {"name": "Ann Ltd"},
            {"address1_city": "Bergen"},
            {CRM: {"name": "Ann Ltd"}, ERP: {"city": "Bergen"}},
            id="different-fields-on-each-side-both-merge",
        ),
        pytest.param({"name": "Ann Ltd"}, {"name": "Ann Ltd"}, {}, id="same-change-on-both-sides-no-write"),
        pytest.param({"credit_limit": 100.0}, {}, {}, id="int-and-float-are-the-same-value"),
    ],
)
def test_merge_copies_what_changed_on_one_side_only(
    erp_changes: Record, crm_changes: Record, expected_updates: dict[str, Record]
) -> None:
    result = sync(table_mapping(), erp_now(**erp_changes), crm_now(**crm_changes), synced())
    assert result.updates == expected_updates
    assert result.outcome is (Outcome.MODIFIED if expected_updates else Outcome.UNCHANGED)
    assert not result.conflicts
    assert result.error_kind is None


def test_merge_records_each_change_with_its_before_and_after() -> None:
    result = sync(table_mapping(), erp_now(name="Ann Ltd"), crm_now(), synced())
    assert result.changes == (Change(CRM, "name", "Ann", "Ann Ltd"),)


@pytest.mark.parametrize("origin", [ERP, CRM])
def test_nothing_changed_is_unchanged_so_our_own_echo_is_dropped(origin: str) -> None:
    result = sync(table_mapping(), erp_now(), crm_now(), synced(), origin=origin)
    assert result.outcome is Outcome.UNCHANGED
    assert not result.writes
    assert result.updates == {}


def test_an_unmapped_column_changing_is_not_a_change() -> None:
    result = sync(table_mapping(), erp_now(phone="555"), crm_now(telephone1="999"), synced())
    assert result.outcome is Outcome.UNCHANGED


def test_a_column_missing_from_the_base_counts_as_changed() -> None:
    # A field added to the mapping after the last sync: both sides "changed"; they agree, so no write.
    c = coupling({"name": "Ann"}, {"name": "Ann"})
    result = sync(table_mapping(), erp_now(), crm_now(), c)
    assert result.outcome is Outcome.UNCHANGED
    # ... and when they disagree it is a conflict for the policy (here: fail).
    result = sync(table_mapping(), erp_now(), crm_now(address1_city="Bergen"), c)
    assert result.unsettled == frozenset({"city"})


def test_disabled_fields_are_left_alone() -> None:
    m = table_mapping([NAME, fld("city", "city", "address1_city", enabled=False)])
    result = sync(m, erp_now(city="Bergen"), crm_now(), synced())
    assert result.outcome is Outcome.UNCHANGED


# --- direction ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("direction", "erp_changes", "crm_changes", "expected_updates"),
    [
        pytest.param(
            ERP_TO_CRM, {"name": "New"}, {}, {CRM: {"name": "New"}}, id="one-way-source-change-flows"
        ),
        pytest.param(
            ERP_TO_CRM, {}, {"name": "Local"}, {CRM: {"name": "Ann"}}, id="one-way-target-edit-is-re-asserted"
        ),
        pytest.param(
            ERP_TO_CRM,
            {"name": "New"},
            {"name": "Local"},
            {CRM: {"name": "New"}},
            id="one-way-source-wins-without-a-conflict",
        ),
        pytest.param(
            CRM_TO_ERP, {"name": "Local"}, {}, {ERP: {"name": "Ann"}}, id="crm-to-erp-re-asserts-on-erp"
        ),
        pytest.param(CRM_TO_ERP, {}, {"name": "New"}, {ERP: {"name": "New"}}, id="crm-to-erp-flows"),
    ],
)
def test_a_one_way_mapping_makes_its_source_own_every_field(
    direction: str, erp_changes: Record, crm_changes: Record, expected_updates: dict[str, Record]
) -> None:
    m = table_mapping([NAME], direction=direction)
    result = sync(m, erp_now(**erp_changes), crm_now(**crm_changes), synced())
    assert result.updates == expected_updates
    assert result.outcome is Outcome.MODIFIED
    assert not result.conflicts


@pytest.mark.parametrize(
    ("erp_changes", "crm_changes", "expected_updates"),
    [
        pytest.param({}, {"name": "New"}, {CRM: {"name": "Ann"}}, id="target-edit-re-asserted"),
        pytest.param({"name": "New"}, {}, {CRM: {"name": "New"}}, id="source-change-flows"),
        pytest.param(
            {}, {"address1_city": "Bergen"}, {ERP: {"city": "Bergen"}}, id="other-fields-still-both-ways"
        ),
    ],
)
def test_a_one_way_field_in_a_both_ways_mapping_belongs_to_its_source(
    erp_changes: Record, crm_changes: Record, expected_updates: dict[str, Record]
) -> None:
    m = table_mapping([fld("name", "name", "name", direction=ERP_TO_CRM), CITY], direction=BOTH)
    result = sync(m, erp_now(**erp_changes), crm_now(**crm_changes), synced())
    assert result.updates == expected_updates


def test_a_one_way_field_is_never_a_conflict() -> None:
    m = table_mapping([fld("name", "name", "name", direction=ERP_TO_CRM)], conflict=FAIL)
    result = sync(m, erp_now(name="E"), crm_now(name="C"), synced())
    assert result.outcome is Outcome.MODIFIED
    assert result.updates == {CRM: {"name": "E"}}


# --- conflicts ------------------------------------------------------------------------------------


def conflicting(policy: ConflictPolicy, erp_version: Value = None, crm_version: Value = None) -> RecordPlan:
    """Name changed on both sides to different values; the city changed on crm only."""
    m = table_mapping(conflict=policy)
    erp = erp_now(name="Ann E", last_modified=erp_version)
    crm = crm_now(name="Ann C", address1_city="Bergen", modifiedon=crm_version)
    return sync(m, erp, crm, synced())


@pytest.mark.parametrize(
    ("policy", "erp_version", "crm_version", "name_update"),
    [
        pytest.param(PREFER_ERP, None, None, {CRM: {"name": "Ann E"}}, id="prefer-erp"),
        pytest.param(PREFER_CRM, None, None, {ERP: {"name": "Ann C"}}, id="prefer-crm"),
        pytest.param(
            LATEST,
            "2024-05-02T10:00:00",
            "2024-05-01T10:00:00",
            {CRM: {"name": "Ann E"}},
            id="latest-erp-later",
        ),
        pytest.param(
            LATEST,
            "2024-05-01T10:00:00",
            "2024-05-02T10:00:00",
            {ERP: {"name": "Ann C"}},
            id="latest-crm-later",
        ),
        pytest.param(
            LATEST,
            "2024-05-01T10:00:00+02:00",
            "2024-05-01T09:00:00Z",
            {ERP: {"name": "Ann C"}},
            id="latest-compares-instants-across-time-zones",
        ),
        pytest.param(
            LATEST,
            "2024-05-01T09:30:00",
            "2024-05-01T09:00:00+00:00",
            {CRM: {"name": "Ann E"}},
            id="latest-naive-timestamps-are-utc",
        ),
    ],
)
def test_a_conflict_resolved_by_the_policy(
    policy: ConflictPolicy, erp_version: Value, crm_version: Value, name_update: dict[str, Record]
) -> None:
    result = conflicting(policy, erp_version, crm_version)
    expected: dict[str, Record] = {ERP: {"city": "Bergen"}}
    for system, values in name_update.items():
        expected.setdefault(system, {}).update(values)
    assert result.updates == expected
    assert result.outcome is Outcome.MODIFIED
    assert not result.conflicts
    assert result.unsettled == frozenset()


@pytest.mark.parametrize(
    ("policy", "erp_version", "crm_version"),
    [
        pytest.param(FAIL, "2024-05-02T10:00:00", "2024-05-01T10:00:00", id="fail"),
        pytest.param(LATEST, "2024-05-01T10:00:00", "2024-05-01T10:00:00", id="latest-equal-timestamps"),
        pytest.param(LATEST, "2024-05-01T10:00:00", None, id="latest-missing-crm-timestamp"),
        pytest.param(LATEST, None, "2024-05-01T10:00:00", id="latest-missing-erp-timestamp"),
        pytest.param(LATEST, "yesterday", "2024-05-01T10:00:00", id="latest-unreadable-timestamp"),
        pytest.param(LATEST, 17, 18, id="latest-row-versions-are-not-moments"),
    ],
)
def test_a_conflict_the_policy_cannot_settle_is_listed_and_the_rest_still_merges(
    policy: ConflictPolicy, erp_version: Value, crm_version: Value
) -> None:
    result = conflicting(policy, erp_version, crm_version)
    assert result.outcome is Outcome.FAILED
    assert result.error_kind is ErrorKind.CONFLICT
    assert result.unsettled == frozenset({"name"})
    assert [c.field for c in result.conflicts] == ["name"]
    (conflict,) = result.conflicts
    assert conflict.current == {ERP: "Ann E", CRM: "Ann C"}
    assert conflict.base == {ERP: "Ann", CRM: "Ann"}
    assert result.updates == {ERP: {"city": "Bergen"}}  # the field changed on one side only still merges
    assert "name changed on both sides (erp: 'Ann' → 'Ann E', crm: 'Ann' → 'Ann C')" in result.reason
    assert f"(conflict policy: {policy})" in result.reason


def test_a_latest_conflict_without_version_columns_is_listed() -> None:
    m = table_mapping(conflict=LATEST)
    no_versions = replace(m, sides=(replace(m.sides[0], version=None), replace(m.sides[1], version=None)))
    result = sync(no_versions, erp_now(name="E", last_modified="2030-01-01"), crm_now(name="C"), synced())
    assert result.unsettled == frozenset({"name"})


def test_several_conflicts_are_all_listed() -> None:
    result = sync(
        table_mapping(), erp_now(name="E", credit_limit=1), crm_now(name="C", creditlimit=2), synced()
    )
    assert result.unsettled == frozenset({"name", "credit"})
    assert {c.field for c in result.conflicts} == {"name", "credit"}
    assert result.updates == {}


# --- never synchronized (no base) -----------------------------------------------------------------


def test_a_never_synced_pair_that_agrees_is_unchanged() -> None:
    result = sync(table_mapping(), erp_now(), crm_now(), coupling())
    assert result.outcome is Outcome.UNCHANGED
    assert not result.writes


@pytest.mark.parametrize(
    ("policy", "outcome", "updates"),
    [
        pytest.param(FAIL, Outcome.FAILED, {}, id="fail-lists-it"),
        pytest.param(PREFER_ERP, Outcome.MODIFIED, {CRM: {"name": "Ann E"}}, id="prefer-erp"),
        pytest.param(PREFER_CRM, Outcome.MODIFIED, {ERP: {"name": "Ann C"}}, id="prefer-crm"),
    ],
)
def test_a_never_synced_pair_that_disagrees_goes_by_the_conflict_policy(
    policy: ConflictPolicy, outcome: Outcome, updates: dict[str, Record]
) -> None:
    result = sync(table_mapping(conflict=policy), erp_now(name="Ann E"), crm_now(name="Ann C"), coupling())
    assert result.outcome is outcome
    assert result.updates == updates
    if outcome is Outcome.FAILED:
        assert result.unsettled == frozenset({"name"})
        assert result.conflicts[0].base == {ERP: None, CRM: None}


# --- constants, transforms, keys ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "expected_updates"),
    [
        pytest.param(1, {CRM: {"customertypecode": 3}}, id="wrong-value-is-corrected"),
        pytest.param(None, {CRM: {"customertypecode": 3}}, id="missing-value-is-set"),
        pytest.param(3, {}, id="right-value-is-left"),
    ],
)
def test_a_constant_is_asserted_on_its_target(current: Value, expected_updates: dict[str, Record]) -> None:
    m = table_mapping([NAME, constant("type", CRM, "customertypecode", 3)])
    result = sync(m, erp_now(), crm_now(customertypecode=current), synced())
    assert result.updates == expected_updates


def test_a_constant_into_a_system_the_mapping_does_not_flow_into_is_never_written() -> None:
    m = table_mapping([NAME, constant("type", CRM, "customertypecode", 3)], direction=CRM_TO_ERP)
    result = sync(m, erp_now(), crm_now(customertypecode=1), synced())
    assert result.updates == {}


def test_a_constant_null_writes_null() -> None:
    m = table_mapping([NAME, constant("fax", CRM, "fax", None)])
    result = sync(m, erp_now(), crm_now(fax="123"), synced())
    assert result.updates == {CRM: {"fax": None}}


def test_transforms_apply_on_the_way_into_the_target() -> None:
    m = table_mapping([fld("name", "name", "name", into_crm=[Upper()], into_erp=[Lower()])])
    into_crm = sync(m, erp_now(name="ann ltd"), crm_now(), synced())
    assert into_crm.updates == {CRM: {"name": "ANN LTD"}}
    into_erp = sync(m, erp_now(), crm_now(name="BOB AS"), synced())
    assert into_erp.updates == {ERP: {"name": "bob as"}}


def test_values_that_agree_through_a_transform_are_not_a_conflict() -> None:
    m = table_mapping([fld("name", "name", "name", into_crm=[Upper()])])
    result = sync(m, erp_now(name="ann e"), crm_now(name="ANN E"), synced())
    assert result.outcome is Outcome.UNCHANGED


def test_a_transform_error_fails_the_record_with_the_field_named() -> None:
    m = table_mapping([fld("credit", "credit_limit", "creditlimit", into_crm=[Upper()])])
    result = sync(m, erp_now(credit_limit=5), crm_now(), synced())
    assert result.outcome is Outcome.FAILED
    assert result.error_kind is ErrorKind.TRANSFORM
    assert "field credit: upper expects text" in result.reason


def key_field_mapping(direction: str | None = None) -> tuple[FieldMapping, ...]:
    return (NAME, fld("number", "no", "accountnumber", direction=direction))


def test_a_field_onto_the_key_column_never_writes_the_key() -> None:
    m = table_mapping(key_field_mapping())
    c = coupling({**BASE_ERP, "no": "C1"}, {**BASE_CRM, "accountnumber": "C1"})
    result = sync(m, erp_now(), crm_now(accountnumber="K-99"), c)
    assert ERP not in result.updates
    assert not any(change.system == ERP for change in result.changes)


def test_a_both_ways_field_onto_a_key_column_belongs_to_the_key_side() -> None:
    # The account number cannot flow into the erp key, so the key's value is re-asserted, as for a
    # one-way field, and the pair is never listed as a conflict it could not settle.
    m = table_mapping(key_field_mapping(), conflict=FAIL)
    c = coupling({**BASE_ERP, "no": "C1"}, {**BASE_CRM, "accountnumber": "C1"})
    result = sync(m, erp_now(), crm_now(accountnumber="K-99"), c)
    assert result.updates == {CRM: {"accountnumber": "C1"}}
    assert result.outcome is Outcome.MODIFIED


def test_a_both_ways_field_onto_a_key_column_is_not_a_conflict_once_the_edit_is_in_the_base() -> None:
    m = table_mapping(key_field_mapping(), conflict=FAIL)
    c = coupling({**BASE_ERP, "no": "C1"}, {**BASE_CRM, "accountnumber": "K-99"})
    result = sync(m, erp_now(), crm_now(accountnumber="K-99"), c)
    assert not result.conflicts
    assert result.outcome is not Outcome.FAILED


def test_a_one_way_field_onto_the_target_key_is_never_written() -> None:
    m = table_mapping((NAME, fld("number", "code", "accountid", direction=ERP_TO_CRM)))
    result = sync(m, erp_now(code="X-1"), crm_now(), synced())
    assert result.updates == {}
    assert result.outcome is Outcome.UNCHANGED


# --- skipped and filtered pairs -----------------------------------------------------------------------


def test_a_skipped_coupling_is_skipped_with_how_to_retry() -> None:
    c = coupling(BASE_ERP, BASE_CRM, skipped=True)
    result = sync(table_mapping(), erp_now(name="New"), crm_now(), c)
    assert result.outcome is Outcome.SKIPPED
    assert not result.writes
    assert "tandem errors retry" in result.reason
    assert "boom" in result.reason


def test_force_syncs_a_skipped_coupling() -> None:
    c = coupling(BASE_ERP, BASE_CRM, skipped=True)
    result = sync(table_mapping(), erp_now(name="New"), crm_now(), c, request=Request(force=True))
    assert result.outcome is Outcome.MODIFIED
    assert result.updates == {CRM: {"name": "New"}}


@pytest.mark.parametrize(
    ("erp_extra", "crm_extra", "outside"),
    [
        pytest.param({"blocked": True}, {"statecode": 0}, ERP, id="erp-outside"),
        pytest.param({"blocked": False}, {"statecode": 1}, CRM, id="crm-outside"),
        pytest.param({"blocked": None}, {"statecode": 0}, ERP, id="null-is-not-false"),
    ],
)
def test_a_pair_with_a_record_outside_its_side_filter_is_skipped(
    erp_extra: Record, crm_extra: Record, outside: str
) -> None:
    m = table_mapping(
        erp_filter=Filter((Condition("blocked", Op.EQ, False),)),
        crm_filter=Filter((Condition("statecode", Op.EQ, 0),)),
    )
    result = sync(m, erp_now(name="New", **erp_extra), crm_now(**crm_extra), synced())
    assert result.outcome is Outcome.SKIPPED
    assert not result.writes
    assert f"outside the {outside} filter" in result.reason


def test_a_pair_inside_both_filters_syncs() -> None:
    m = table_mapping(erp_filter=Filter((Condition("blocked", Op.EQ, False),)))
    result = sync(m, erp_now(name="New", blocked=False), crm_now(), synced())
    assert result.outcome is Outcome.MODIFIED


def test_the_plan_carries_the_coupling_and_origin() -> None:
    c = synced()
    result = sync(table_mapping([NAME, CITY, CREDIT]), erp_now(), crm_now(), c, origin=CRM)
    assert result.coupling is c
    assert result.origin == CRM
    assert result.origin_key == "A1"
