"""The planner on a coupled pair with a deleted side: the deletion policy, and what the direction allows."""

from __future__ import annotations

import pytest

from domain.coupling import Coupling
from domain.mapping import DeletionPolicy, Template
from domain.plan import ErrorKind, Outcome
from domain.planner import Request
from domain.values import Record
from tests.unit.builders import (
    BOTH,
    CRM,
    CRM_TO_ERP,
    ERP,
    ERP_TO_CRM,
    coupling,
    crm_record,
    erp_record,
    sync,
    table_mapping,
)

ERP_NOW = erp_record("C1", name="Ann", city="Oslo", credit_limit=100)
CRM_NOW = crm_record("A1", name="Ann", address1_city="Oslo", creditlimit=100)


def synced() -> Coupling:
    return coupling({"name": "Ann", "city": "Oslo", "credit_limit": 100}, {"name": "Ann"})


def survivors(gone: str) -> tuple[Record | None, Record | None]:
    return (None, CRM_NOW) if gone == ERP else (ERP_NOW, None)


@pytest.mark.parametrize("gone", [ERP, CRM])
def test_fail_lists_the_deletion_with_the_ways_out(gone: str) -> None:
    erp, crm = survivors(gone)
    result = sync(table_mapping(deletion=DeletionPolicy.FAIL), erp, crm, synced(), origin=gone)
    assert result.outcome is Outcome.FAILED
    assert result.error_kind is ErrorKind.DELETED
    assert not result.writes
    assert not result.uncouple
    key = "C1" if gone == ERP else "A1"
    assert f"the {gone} record {key} was deleted" in result.reason
    assert "restore" in result.reason
    assert "uncouple" in result.reason


@pytest.mark.parametrize("gone", [ERP, CRM])
def test_uncouple_removes_the_coupling_and_keeps_the_survivor(gone: str) -> None:
    erp, crm = survivors(gone)
    result = sync(table_mapping(deletion=DeletionPolicy.UNCOUPLE), erp, crm, synced())
    assert result.outcome is Outcome.UNCOUPLED
    assert result.uncouple
    assert not result.writes


@pytest.mark.parametrize(
    ("gone", "expected"),
    [
        pytest.param(CRM, {"name": "Ann", "address1_city": "Oslo", "creditlimit": 100}, id="restore-crm"),
        pytest.param(ERP, {"name": "Ann", "city": "Oslo", "credit_limit": 100}, id="restore-erp"),
    ],
)
def test_restore_re_creates_the_deleted_record_from_the_survivor(gone: str, expected: Record) -> None:
    erp, crm = survivors(gone)
    result = sync(table_mapping(deletion=DeletionPolicy.RESTORE), erp, crm, synced())
    assert result.outcome is Outcome.INSERTED
    assert result.create_in == gone
    assert result.create_values == expected
    assert result.mirrored == expected
    assert not result.uncouple
    assert f"restored from {ERP if gone == CRM else CRM}" in result.reason


def test_restore_applies_the_templates_of_the_deleted_side() -> None:
    m = table_mapping(deletion=DeletionPolicy.RESTORE, crm_templates=[Template({"customertypecode": 3})])
    result = sync(m, ERP_NOW, None, synced())
    assert result.create_values["customertypecode"] == 3
    assert "customertypecode" not in result.mirrored


@pytest.mark.parametrize("gone", [ERP, CRM])
def test_propagate_deletes_the_survivor_and_uncouples(gone: str) -> None:
    erp, crm = survivors(gone)
    result = sync(table_mapping(deletion=DeletionPolicy.PROPAGATE), erp, crm, synced())
    assert result.outcome is Outcome.DELETED
    assert result.delete_in == (CRM if gone == ERP else ERP)
    assert result.uncouple


@pytest.mark.parametrize(
    ("policy", "direction", "gone"),
    [
        pytest.param(DeletionPolicy.RESTORE, ERP_TO_CRM, ERP, id="restore-erp-from-crm-against-erp-to-crm"),
        pytest.param(DeletionPolicy.RESTORE, CRM_TO_ERP, CRM, id="restore-crm-from-erp-against-crm-to-erp"),
        pytest.param(DeletionPolicy.PROPAGATE, ERP_TO_CRM, CRM, id="propagate-crm-delete-against-erp-to-crm"),
        pytest.param(DeletionPolicy.PROPAGATE, CRM_TO_ERP, ERP, id="propagate-erp-delete-against-crm-to-erp"),
    ],
)
def test_a_deletion_policy_the_direction_does_not_allow_fails(
    policy: DeletionPolicy, direction: str, gone: str
) -> None:
    erp, crm = survivors(gone)
    result = sync(table_mapping(deletion=policy, direction=direction), erp, crm, synced())
    assert result.outcome is Outcome.FAILED
    assert result.error_kind is ErrorKind.DIRECTION
    assert not result.writes
    assert not result.uncouple
    assert "does not flow" in result.reason


@pytest.mark.parametrize(
    ("policy", "direction", "gone", "outcome"),
    [
        pytest.param(DeletionPolicy.RESTORE, ERP_TO_CRM, CRM, Outcome.INSERTED, id="restore-with-the-flow"),
        pytest.param(
            DeletionPolicy.PROPAGATE, ERP_TO_CRM, ERP, Outcome.DELETED, id="propagate-with-the-flow"
        ),
        pytest.param(DeletionPolicy.PROPAGATE, BOTH, CRM, Outcome.DELETED, id="propagate-both-ways"),
    ],
)
def test_a_deletion_policy_the_direction_allows_is_planned(
    policy: DeletionPolicy, direction: str, gone: str, outcome: Outcome
) -> None:
    erp, crm = survivors(gone)
    assert sync(table_mapping(deletion=policy, direction=direction), erp, crm, synced()).outcome is outcome


@pytest.mark.parametrize("policy", list(DeletionPolicy))
def test_deleted_on_both_sides_is_uncoupled_whatever_the_policy(policy: DeletionPolicy) -> None:
    result = sync(table_mapping(deletion=policy), None, None, synced())
    assert result.outcome is Outcome.UNCOUPLED
    assert result.uncouple
    assert not result.writes
    assert result.origin_key == "C1"


@pytest.mark.parametrize(
    ("override", "outcome"),
    [
        pytest.param(DeletionPolicy.UNCOUPLE, Outcome.UNCOUPLED, id="uncouple"),
        pytest.param(DeletionPolicy.RESTORE, Outcome.INSERTED, id="restore"),
        pytest.param(DeletionPolicy.PROPAGATE, Outcome.DELETED, id="propagate"),
    ],
)
def test_the_request_deletion_overrides_the_mapping_policy(
    override: DeletionPolicy, outcome: Outcome
) -> None:
    m = table_mapping(deletion=DeletionPolicy.FAIL)
    result = sync(m, ERP_NOW, None, synced(), request=Request(deletion=override))
    assert result.outcome is outcome


def test_the_request_deletion_fail_overrides_a_lenient_mapping_policy() -> None:
    m = table_mapping(deletion=DeletionPolicy.PROPAGATE)
    result = sync(m, ERP_NOW, None, synced(), request=Request(deletion=DeletionPolicy.FAIL))
    assert result.outcome is Outcome.FAILED
    assert result.error_kind is ErrorKind.DELETED


def test_a_deleted_side_goes_by_the_deletion_policy_even_when_pushing() -> None:
    m = table_mapping(deletion=DeletionPolicy.UNCOUPLE)
    result = sync(m, ERP_NOW, None, synced(), request=Request(source=ERP))
    assert result.outcome is Outcome.UNCOUPLED


def test_a_skipped_coupling_with_a_deleted_side_stays_skipped() -> None:
    c = coupling({"name": "Ann"}, {"name": "Ann"}, skipped=True)
    result = sync(table_mapping(deletion=DeletionPolicy.PROPAGATE), ERP_NOW, None, c)
    assert result.outcome is Outcome.SKIPPED
    assert not result.writes
