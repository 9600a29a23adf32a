"""Lookups in plans: references translated through couplings, and a clear error when they are not coupled."""

from __future__ import annotations

import pytest

from domain.coupling import Coupling
from domain.lookups import LookupTable
from domain.plan import ErrorKind, Outcome
from domain.planner import Request
from domain.values import Value
from tests.unit.builders import CRM, ERP, NAME, coupling, crm_record, erp_record, fld, sync, table_mapping

OWNER = fld("salesperson", "salesperson_code", "ownerid", lookup="SALESPEOPLE")
LENIENT_OWNER = fld(
    "salesperson", "salesperson_code", "ownerid", lookup="SALESPEOPLE", blank_if_uncoupled=True
)
SALESPEOPLE = LookupTable(
    {
        ("SALESPEOPLE", ERP, "JR"): "guid-jr",
        ("SALESPEOPLE", CRM, "guid-jr"): "JR",
        ("SALESPEOPLE", ERP, "MK"): "guid-mk",
        ("SALESPEOPLE", CRM, "guid-mk"): "MK",
        ("SALESPEOPLE", ERP, "7"): "2",
    }
)


def synced() -> Coupling:
    return coupling({"name": "Ann", "salesperson_code": "JR"}, {"name": "Ann", "ownerid": "guid-jr"})


def test_a_changed_reference_is_translated_into_the_target() -> None:
    m = table_mapping([NAME, OWNER])
    result = sync(
        m,
        erp_record(name="Ann", salesperson_code="MK"),
        crm_record(name="Ann", ownerid="guid-jr"),
        synced(),
        lookups=SALESPEOPLE,
    )
    assert result.updates == {CRM: {"ownerid": "guid-mk"}}


def test_a_reference_is_translated_back_the_other_way() -> None:
    m = table_mapping([NAME, OWNER])
    result = sync(
        m,
        erp_record(name="Ann", salesperson_code="JR"),
        crm_record(name="Ann", ownerid="guid-mk"),
        synced(),
        lookups=SALESPEOPLE,
    )
    assert result.updates == {ERP: {"salesperson_code": "MK"}}


def test_an_uncoupled_reference_fails_the_record_naming_the_record_and_mapping() -> None:
    m = table_mapping([NAME, OWNER])
    result = sync(
        m,
        erp_record(name="Ann", salesperson_code="ZZ"),
        crm_record(name="Ann", ownerid="guid-jr"),
        synced(),
        lookups=SALESPEOPLE,
    )
    assert result.outcome is Outcome.FAILED
    assert result.error_kind is ErrorKind.LOOKUP
    assert "the erp record 'ZZ' of mapping SALESPEOPLE is not coupled" in result.reason
    assert not result.writes


def test_an_uncoupled_reference_fails_a_create_too() -> None:
    m = table_mapping([NAME, OWNER], sync_only_coupled=False)
    result = sync(m, erp_record(name="Ann", salesperson_code="ZZ"), None, None, lookups=SALESPEOPLE)
    assert result.outcome is Outcome.FAILED
    assert result.error_kind is ErrorKind.LOOKUP
    assert result.create_in is None


def test_blank_if_uncoupled_writes_null_for_an_uncoupled_reference() -> None:
    m = table_mapping([NAME, LENIENT_OWNER])
    result = sync(
        m,
        erp_record(name="Ann", salesperson_code="ZZ"),
        crm_record(name="Ann", ownerid="guid-jr"),
        synced(),
        lookups=SALESPEOPLE,
    )
    assert result.outcome is Outcome.MODIFIED
    assert result.updates == {CRM: {"ownerid": None}}


@pytest.mark.parametrize(
    ("crm_value", "outcome"),
    [
        pytest.param(2, Outcome.UNCHANGED, id="int-2-agrees-with-key-2"),
        pytest.param("2", Outcome.UNCHANGED, id="text-2-agrees"),
        pytest.param(2.0, Outcome.UNCHANGED, id="float-2-agrees"),
        pytest.param(3, Outcome.MODIFIED, id="3-differs"),
    ],
)
def test_lookup_values_are_compared_as_keys(crm_value: Value, outcome: Outcome) -> None:
    m = table_mapping([fld("terms", "terms", "ownerid", lookup="SALESPEOPLE", direction="erp->crm")])
    result = sync(m, erp_record(terms=7), crm_record(ownerid=crm_value), coupling(), lookups=SALESPEOPLE)
    assert result.outcome is outcome


def test_a_push_translates_references() -> None:
    m = table_mapping([NAME, OWNER])
    c = coupling({"name": "Ann", "salesperson_code": "MK"}, {"name": "Ann", "ownerid": "guid-jr"})
    result = sync(
        m,
        erp_record(name="Ann", salesperson_code="MK"),
        crm_record(name="Ann", ownerid="guid-jr"),
        c,
        request=Request(source=ERP),
        lookups=SALESPEOPLE,
    )
    assert result.updates == {CRM: {"ownerid": "guid-mk"}}


def test_a_blank_reference_clears_the_target_without_a_lookup() -> None:
    m = table_mapping([NAME, OWNER])
    result = sync(
        m, erp_record(name="Ann", salesperson_code=""), crm_record(name="Ann", ownerid="guid-jr"), synced()
    )
    assert result.updates == {CRM: {"ownerid": None}}
