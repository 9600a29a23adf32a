"""Table and field mappings: sides, directions, columns, templates, and the dependency order of a set."""

from __future__ import annotations

import pytest

from domain.filters import Condition, Filter, Op
from domain.mapping import ConflictKind, ConflictPolicy, MappingSet, MatchRule, TableMapping, Template
from domain.transforms import IDENTITY, Chain, Upper
from tests.unit.builders import (
    BOTH,
    CRM,
    CRM_TO_ERP,
    ERP,
    ERP_TO_CRM,
    NAME,
    constant,
    fld,
    table_mapping,
)


def test_side_and_other_name_the_systems() -> None:
    m = table_mapping()
    assert m.systems == (ERP, CRM)
    assert m.side(CRM).table == "account"
    assert m.other(ERP) == CRM
    assert m.other(CRM) == ERP


@pytest.mark.parametrize("call", ["side", "other"])
def test_an_unknown_side_is_a_key_error_naming_the_known_ones(call: str) -> None:
    m = table_mapping()
    with pytest.raises(KeyError, match="erp, crm"):
        getattr(m, call)("sap")


@pytest.mark.parametrize(
    ("direction", "erp_to_crm", "crm_to_erp", "shown"),
    [
        pytest.param(BOTH, True, True, "both", id="both"),
        pytest.param(ERP_TO_CRM, True, False, "erp->crm", id="erp-to-crm"),
        pytest.param(CRM_TO_ERP, False, True, "crm->erp", id="crm-to-erp"),
    ],
)
def test_may_flow_follows_the_mapping_direction(
    direction: str, erp_to_crm: bool, crm_to_erp: bool, shown: str
) -> None:
    m = table_mapping(direction=direction)
    assert m.may_flow(ERP, CRM) is erp_to_crm
    assert m.may_flow(CRM, ERP) is crm_to_erp
    assert not m.may_flow(ERP, ERP)
    assert m.direction == shown
    assert m.both_ways is (direction == BOTH)


def test_a_field_flows_only_from_its_sources_into_a_mapped_column() -> None:
    one_way = fld("name", "name", "name", direction=ERP_TO_CRM)
    assert one_way.flows(ERP, CRM)
    assert not one_way.flows(CRM, ERP)
    assert not one_way.flows(ERP, ERP)


def test_a_constant_flows_into_its_one_column_from_the_other_system() -> None:
    m = table_mapping([NAME, constant("type", CRM, "customertypecode", 3)])
    fmap = m.fields[1]
    assert fmap.is_constant
    assert fmap.flows(ERP, CRM)
    assert not fmap.flows(CRM, ERP)


def test_none_is_a_constant_but_unset_is_not() -> None:
    assert constant("blank", CRM, "fax", None).is_constant
    assert not NAME.is_constant


def test_chain_is_the_transform_into_the_target_or_identity() -> None:
    upper = Upper()
    fmap = fld("code", "code", "code", into_crm=[upper])
    assert fmap.chain(CRM) == Chain((upper,))
    assert fmap.chain(ERP) is IDENTITY


def test_columns_read_key_version_mapped_and_filtered_fields_once_each() -> None:
    m = table_mapping(
        [NAME, fld("city", "city", "address1_city"), fld("again", "name", "fullname")],
        crm_filter=Filter((Condition("statecode", Op.EQ, 0), Condition("name", Op.NOT_NULL))),
    )
    assert m.columns(ERP) == ("no", "last_modified", "name", "city")
    assert m.columns(CRM) == ("accountid", "modifiedon", "name", "address1_city", "fullname", "statecode")


def test_mapped_columns_leave_out_constants_and_disabled_fields() -> None:
    m = table_mapping(
        [
            NAME,
            fld("city", "city", "address1_city", enabled=False),
            constant("type", CRM, "customertypecode", 3),
        ]
    )
    assert m.mapped_columns(ERP) == ("name",)
    assert m.mapped_columns(CRM) == ("name",)
    assert [f.name for f in m.active_fields()] == ["name", "type"]


def test_conflict_policy_reads_as_its_rule() -> None:
    assert str(ConflictPolicy()) == "fail"
    assert str(ConflictPolicy(ConflictKind.LATEST)) == "latest"
    assert str(ConflictPolicy(ConflictKind.PREFER, CRM)) == "prefer crm"


GERMANY = Filter((Condition("country", Op.EQ, "DE"),))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param({"country": "DE"}, {"currency": "EUR"}, id="specific-template-wins-by-priority"),
        pytest.param({"country": "US"}, {"currency": "USD"}, id="falls-back-to-the-general-template"),
    ],
)
def test_template_for_picks_the_lowest_priority_number_that_matches(
    source: dict[str, str], expected: dict[str, str]
) -> None:
    m = table_mapping(
        erp_templates=[
            Template({"currency": "USD"}),
            Template({"currency": "EUR"}, when=GERMANY, priority=-1),
        ]
    )
    assert m.side(ERP).template_for(source) == expected


def test_template_for_is_empty_without_a_matching_template_and_returns_a_copy() -> None:
    template = Template({"currency": "EUR"}, when=GERMANY)
    side = table_mapping(erp_templates=[template]).side(ERP)
    assert side.template_for({"country": "US"}) == {}
    side.template_for({"country": "DE"})["currency"] = "changed"
    assert template.values == {"currency": "EUR"}


def test_match_fields_are_the_active_fields_with_a_match_rule() -> None:
    m = table_mapping(
        [
            fld("name", "name", "name", match=MatchRule()),
            fld("email", "email", "email", match=MatchRule(2), enabled=False),
            fld("city", "city", "city"),
        ]
    )
    assert [f.name for f in m.match_fields] == ["name"]


def named(name: str, depends_on: tuple[str, ...] = ()) -> TableMapping:
    return table_mapping(name=name, depends_on=depends_on)


# contact → customer → (currency, salesperson); item stands alone. Configuration order is deliberately
# children first, so the order comes from depends_on and not from the file.
SET = MappingSet(
    {
        "CONTACT": named("CONTACT", ("CUSTOMER",)),
        "CUSTOMER": named("CUSTOMER", ("CURRENCY", "SALESPEOPLE")),
        "ITEM": named("ITEM"),
        "CURRENCY": named("CURRENCY"),
        "SALESPEOPLE": named("SALESPEOPLE"),
    }
)


def test_ordered_puts_each_mapping_after_those_it_depends_on() -> None:
    assert [m.name for m in SET.ordered()] == ["CURRENCY", "SALESPEOPLE", "CUSTOMER", "CONTACT", "ITEM"]


def test_ordered_with_names_keeps_only_those_in_dependency_order() -> None:
    assert [m.name for m in SET.ordered(["CONTACT", "CURRENCY"])] == ["CURRENCY", "CONTACT"]


def test_ordered_refuses_an_unknown_name_naming_the_known_ones() -> None:
    with pytest.raises(KeyError, match=r"unknown mapping 'NOPE' \(known: CONTACT, "):
        SET.ordered(["NOPE"])


def test_waves_group_mappings_that_only_need_earlier_waves() -> None:
    assert [[m.name for m in wave] for wave in SET.waves()] == [
        ["CURRENCY", "SALESPEOPLE", "ITEM"],
        ["CUSTOMER"],
        ["CONTACT"],
    ]


def test_waves_of_a_selection_ignore_parents_that_are_not_chosen() -> None:
    assert [[m.name for m in wave] for wave in SET.waves(["CONTACT", "ITEM"])] == [["CONTACT", "ITEM"]]


def test_waves_of_nothing_are_empty() -> None:
    assert MappingSet({}).waves() == []


def test_a_mapping_set_reads_by_name_and_by_table() -> None:
    assert SET["ITEM"].name == "ITEM"
    assert len(SET) == 5
    assert {m.name for m in SET.for_table(ERP, "customer")} == set(SET.mappings)
    assert SET.for_table(ERP, "vendor") == []
    assert SET.for_table("sap", "customer") == []
