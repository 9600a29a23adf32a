"""Lookups: a reference translated through the couplings of the mapping it points to."""

from __future__ import annotations

import pytest

from domain.errors import LookupNotCoupled, TransformError
from domain.lookups import NO_LOOKUPS, LookupTable, agree, convey
from domain.transforms import Upper
from tests.unit.builders import CRM, ERP, constant, fld

OWNER = fld("salesperson", "salesperson_code", "ownerid", lookup="SALESPEOPLE")
COUPLED_SALESPEOPLE = LookupTable(
    {("SALESPEOPLE", ERP, "JR"): "guid-jr", ("SALESPEOPLE", CRM, "guid-jr"): "JR"}
)


def test_convey_translates_a_reference_through_the_lookup_mapping() -> None:
    assert convey(OWNER, ERP, CRM, "JR", COUPLED_SALESPEOPLE) == "guid-jr"
    assert convey(OWNER, CRM, ERP, "guid-jr", COUPLED_SALESPEOPLE) == "JR"


def test_convey_translates_numeric_references_as_keys() -> None:
    table = LookupTable({("TERMS", ERP, "2"): "20"})
    terms = fld("terms", "terms_id", "paymenttermscode", lookup="TERMS")
    assert convey(terms, ERP, CRM, 2, table) == "20"
    assert convey(terms, ERP, CRM, 2.0, table) == "20"


@pytest.mark.parametrize("blank", [None, "", "   "], ids=["null", "empty", "whitespace"])
def test_a_blank_reference_conveys_null_without_a_lookup(blank: str | None) -> None:
    assert convey(OWNER, ERP, CRM, blank, NO_LOOKUPS) is None


def test_an_uncoupled_reference_is_an_error_naming_the_field_record_and_mapping() -> None:
    with pytest.raises(LookupNotCoupled) as caught:
        convey(OWNER, ERP, CRM, "ZZ", COUPLED_SALESPEOPLE)
    message = str(caught.value)
    assert "salesperson" in message
    assert "erp record 'ZZ'" in message
    assert "mapping SALESPEOPLE" in message


def test_blank_if_uncoupled_conveys_null_for_an_uncoupled_reference() -> None:
    lenient = fld("salesperson", "salesperson_code", "ownerid", lookup="SALESPEOPLE", blank_if_uncoupled=True)
    assert convey(lenient, ERP, CRM, "ZZ", COUPLED_SALESPEOPLE) is None
    assert convey(lenient, ERP, CRM, "JR", COUPLED_SALESPEOPLE) == "guid-jr"


def test_a_constant_conveys_its_value_whatever_the_source_says() -> None:
    assert convey(constant("type", CRM, "customertypecode", 3), ERP, CRM, None, NO_LOOKUPS) == 3
    assert convey(constant("fax", CRM, "fax", None), ERP, CRM, "x", NO_LOOKUPS) is None


def test_convey_applies_the_chain_of_the_target_only() -> None:
    code = fld("code", "code", "code", into_crm=[Upper()])
    assert convey(code, ERP, CRM, "ab", NO_LOOKUPS) == "AB"
    assert convey(code, CRM, ERP, "ab", NO_LOOKUPS) == "ab"


def test_a_transform_error_names_the_field() -> None:
    code = fld("code", "code", "code", into_crm=[Upper()])
    with pytest.raises(TransformError, match="field code: upper expects text"):
        convey(code, ERP, CRM, 12, NO_LOOKUPS)


@pytest.mark.parametrize(
    ("current", "desired", "expected"),
    [
        pytest.param(2, "2", True, id="int-and-text-key-agree"),
        pytest.param("2", 2.0, True, id="text-and-float-key-agree"),
        pytest.param("2", "3", False, id="different-keys"),
        pytest.param(None, None, True, id="both-null"),
        pytest.param(None, "2", False, id="null-and-key"),
    ],
)
def test_lookup_values_agree_as_keys(
    current: int | str | None, desired: str | float | None, expected: bool
) -> None:
    assert agree(OWNER, current, desired) is expected


def test_plain_values_agree_canonically() -> None:
    assert not agree(fld("n", "n", "n"), 2, "2")
    assert agree(fld("n", "n", "n"), 2, 2.0)
    assert not agree(fld("n", "n", "n"), True, 1)
