"""The planner pushing one coupled pair from a chosen system (Synchronize Now in one direction)."""

from __future__ import annotations

import pytest

from domain.coupling import Coupling
from domain.plan import ErrorKind, Outcome
from domain.planner import Request
from domain.values import Record, Value
from tests.unit.builders import (
    CITY,
    CRM,
    CRM_TO_ERP,
    ERP,
    ERP_TO_CRM,
    NAME,
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
FROM_ERP = Request(source=ERP)
FROM_CRM = Request(source=CRM)


def synced() -> Coupling:
    return coupling(BASE_ERP, BASE_CRM)


def erp_now(**changes: Value) -> Record:
    return erp_record("C1", **{**BASE_ERP, **changes})


def crm_now(**changes: Value) -> Record:
    return crm_record("A1", **{**BASE_CRM, **changes})


def test_a_push_sends_every_allowed_field_the_target_disagrees_on_changed_or_not() -> None:
    # Neither side changed since the last sync, yet they disagree: a push sends the source's values.
    erp_base = {**BASE_ERP, "name": "Ann E", "city": "Bergen"}
    c = coupling(erp_base, BASE_CRM)
    result = sync(table_mapping(), erp_now(name="Ann E", city="Bergen"), crm_now(), c, request=FROM_ERP)
    assert result.outcome is Outcome.MODIFIED
    assert result.updates == {CRM: {"name": "Ann E", "address1_city": "Bergen"}}


def test_a_push_into_erp_sends_the_crm_values() -> None:
    result = sync(table_mapping(), erp_now(), crm_now(address1_city="Bergen"), synced(), request=FROM_CRM)
    assert result.updates == {ERP: {"city": "Bergen"}}


def test_a_push_of_agreeing_records_is_unchanged() -> None:
    result = sync(table_mapping(), erp_now(), crm_now(), synced(), request=FROM_ERP)
    assert result.outcome is Outcome.UNCHANGED
    assert not result.writes


def test_a_push_sends_a_source_change_into_an_unchanged_target() -> None:
    result = sync(table_mapping(), erp_now(name="E"), crm_now(), synced(), request=FROM_ERP)
    assert result.updates == {CRM: {"name": "E"}}
    assert not result.conflicts


def test_a_push_sends_only_fields_that_flow_that_way_and_constants() -> None:
    m = table_mapping(
        [
            fld("name", "name", "name", direction=CRM_TO_ERP),
            CITY,
            constant("type", CRM, "customertypecode", 3),
        ]
    )
    c = coupling(BASE_ERP, {**BASE_CRM, "customertypecode": 1})
    result = sync(m, erp_now(name="E", city="Bergen"), crm_now(customertypecode=1), c, request=FROM_ERP)
    assert result.updates == {CRM: {"address1_city": "Bergen", "customertypecode": 3}}


@pytest.mark.parametrize(
    ("force", "outcome"),
    [pytest.param(False, Outcome.SKIPPED, id="skipped"), pytest.param(True, Outcome.MODIFIED, id="forced")],
)
def test_a_push_into_a_target_changed_since_the_last_sync_is_skipped_unless_forced(
    force: bool, outcome: Outcome
) -> None:
    request = Request(source=ERP, force=force)
    result = sync(table_mapping(), erp_now(name="E"), crm_now(name="C"), synced(), request=request)
    assert result.outcome is outcome
    if force:
        assert result.updates == {CRM: {"name": "E"}}
    else:
        assert not result.writes
        assert "the crm record changed since the last sync (name)" in result.reason
        assert "--force" in result.reason


def test_a_push_into_a_never_synced_pair_needs_no_force() -> None:
    result = sync(table_mapping(), erp_now(name="E"), crm_now(name="C"), coupling(), request=FROM_ERP)
    assert result.outcome is Outcome.MODIFIED
    assert result.updates == {CRM: {"name": "E"}}


@pytest.mark.parametrize(
    ("direction", "request_"),
    [
        pytest.param(ERP_TO_CRM, FROM_CRM, id="erp-to-crm-pushed-from-crm"),
        pytest.param(CRM_TO_ERP, FROM_ERP, id="crm-to-erp-pushed-from-erp"),
    ],
)
def test_a_push_against_the_mapping_direction_fails_with_direction(direction: str, request_: Request) -> None:
    result = sync(
        table_mapping(direction=direction), erp_now(name="E"), crm_now(name="C"), synced(), request=request_
    )
    assert result.outcome is Outcome.FAILED
    assert result.error_kind is ErrorKind.DIRECTION
    assert f"does not flow from {request_.source}" in result.reason
    assert not result.writes


def test_a_push_never_writes_the_target_key() -> None:
    m = table_mapping([NAME, fld("number", "code", "accountid", direction=ERP_TO_CRM)])
    result = sync(m, erp_now(name="E", code="X"), crm_now(), coupling(), request=FROM_ERP)
    assert result.updates == {CRM: {"name": "E"}}


def test_a_push_of_a_skipped_coupling_is_skipped_unless_forced() -> None:
    c = coupling(BASE_ERP, BASE_CRM, skipped=True)
    assert sync(table_mapping(), erp_now(name="E"), crm_now(), c, request=FROM_ERP).outcome is Outcome.SKIPPED
    forced = sync(table_mapping(), erp_now(name="E"), crm_now(), c, request=Request(source=ERP, force=True))
    assert forced.updates == {CRM: {"name": "E"}}
