"""Verifying a pair (compare.disagreements) and recommending a sync direction (recommend.recommend)."""

from __future__ import annotations

import pytest

from domain.compare import disagreements
from domain.lookups import NO_LOOKUPS, LookupTable
from domain.recommend import recommend
from domain.transforms import Upper
from domain.values import Record
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
    table_mapping,
)


def records(erp: Record, crm: Record) -> dict[str, Record]:
    return {ERP: erp_record("C1", **erp), CRM: crm_record("A1", **crm)}


def test_an_agreeing_pair_has_no_disagreements() -> None:
    m = table_mapping([NAME, CITY])
    assert (
        disagreements(
            m, records({"name": "Ann", "city": "Oslo"}, {"name": "Ann", "address1_city": "Oslo"}), NO_LOOKUPS
        )
        == []
    )


def test_each_disagreeing_field_is_described() -> None:
    m = table_mapping([NAME, CITY])
    found = disagreements(
        m, records({"name": "Ann", "city": "Oslo"}, {"name": "Bo", "address1_city": "Oslo"}), NO_LOOKUPS
    )
    assert found == ["name: crm has 'Bo', erp says 'Ann'"]


def test_agreement_goes_through_transforms() -> None:
    m = table_mapping([fld("name", "name", "name", into_crm=[Upper()])])
    assert disagreements(m, records({"name": "ann"}, {"name": "ANN"}), NO_LOOKUPS) == []


def test_a_constant_that_does_not_hold_is_a_disagreement() -> None:
    m = table_mapping([NAME, constant("type", CRM, "customertypecode", 3)])
    found = disagreements(m, records({"name": "A"}, {"name": "A", "customertypecode": 1}), NO_LOOKUPS)
    assert found == ["type: crm has 1, erp says 3"]


def test_a_field_onto_a_key_column_is_checked_only_the_way_it_can_flow() -> None:
    m = table_mapping([fld("id", "no", "accountid", direction=ERP_TO_CRM)])
    assert disagreements(m, records({}, {}), NO_LOOKUPS) == []


def test_an_uncoupled_lookup_is_reported_not_raised() -> None:
    m = table_mapping(
        [fld("owner", "salesperson_code", "ownerid", lookup="SALESPEOPLE", direction=ERP_TO_CRM)]
    )
    found = disagreements(m, records({"salesperson_code": "ZZ"}, {"ownerid": "g"}), LookupTable())
    assert len(found) == 1
    assert found[0].startswith("owner: ")
    assert "not coupled" in found[0]


def test_lookups_agree_as_keys() -> None:
    m = table_mapping(
        [fld("owner", "salesperson_code", "ownerid", lookup="SALESPEOPLE", direction=ERP_TO_CRM)]
    )
    table = LookupTable({("SALESPEOPLE", ERP, "JR"): "5"})
    assert disagreements(m, records({"salesperson_code": "JR"}, {"ownerid": 5}), table) == []


BASE_ERP: Record = {"name": "Ann", "city": "Oslo"}
BASE_CRM: Record = {"name": "Ann", "address1_city": "Oslo"}


@pytest.mark.parametrize(
    ("erp_changes", "crm_changes", "this", "source", "reason"),
    [
        pytest.param(
            {"name": "E"},
            {},
            ERP,
            ERP,
            "only erp changed since the last sync (name)",
            id="send-when-only-this-changed",
        ),
        pytest.param({"name": "E"}, {}, CRM, ERP, "only erp changed", id="get-when-only-the-other-changed"),
        pytest.param(
            {},
            {"address1_city": "B"},
            ERP,
            CRM,
            "only crm changed since the last sync (address1_city)",
            id="get-from-crm",
        ),
        pytest.param(
            {"name": "E"},
            {"address1_city": "B"},
            ERP,
            None,
            "both changed (erp: name; crm: address1_city): merge",
            id="merge-when-both",
        ),
        pytest.param(
            {},
            {},
            ERP,
            None,
            "nothing changed on either side since the last sync: merge",
            id="merge-when-neither",
        ),
    ],
)
def test_recommend(
    erp_changes: Record, crm_changes: Record, this: str, source: str | None, reason: str
) -> None:
    m = table_mapping([NAME, CITY])
    c = coupling(BASE_ERP, BASE_CRM)
    advice = recommend(m, c, records({**BASE_ERP, **erp_changes}, {**BASE_CRM, **crm_changes}), this)
    assert advice.source == source
    assert reason in advice.reason


def test_recommend_merges_a_pair_that_was_never_synced() -> None:
    advice = recommend(table_mapping([NAME]), coupling(), records({"name": "E"}, {"name": "C"}), ERP)
    assert advice.source is None
    assert "never synchronized" in advice.reason


def test_recommend_never_sends_against_the_mapping_direction() -> None:
    m = table_mapping([NAME, CITY], direction=CRM_TO_ERP)
    advice = recommend(m, coupling(BASE_ERP, BASE_CRM), records({**BASE_ERP, "name": "E"}, BASE_CRM), ERP)
    assert advice.source is None
    assert advice.reason == (
        "only erp changed since the last sync (name), "
        "but mapping CUSTOMER does not flow from erp to crm: merge"
    )
