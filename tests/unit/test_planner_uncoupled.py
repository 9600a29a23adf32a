"""The planner on an uncoupled record: not found, direction, filter, only-coupled, match, create."""

from __future__ import annotations

import pytest

from domain.filters import Condition, Filter, Op
from domain.mapping import Template
from domain.matching import MatchResult
from domain.plan import Change, ErrorKind, Outcome
from domain.planner import Request
from domain.transforms import Upper
from tests.unit.builders import (
    CITY,
    CREDIT,
    CRM,
    CRM_TO_ERP,
    ERP,
    ERP_TO_CRM,
    NAME,
    constant,
    crm_record,
    erp_record,
    fld,
    sync,
    table_mapping,
)

ANN = erp_record("C1", name="Ann", city="Oslo", credit_limit=100)
CREATE = Request(create=True)


def test_a_record_that_is_not_found_is_skipped() -> None:
    result = sync(table_mapping(sync_only_coupled=False), None, None, None)
    assert result.outcome is Outcome.SKIPPED
    assert "no erp record with key 'missing'" in result.reason
    assert not result.writes


@pytest.mark.parametrize(
    ("request_", "outcome", "kind"),
    [
        pytest.param(Request(), Outcome.SKIPPED, None, id="event-is-skipped"),
        pytest.param(CREATE, Outcome.FAILED, ErrorKind.DIRECTION, id="create-request-fails"),
    ],
)
def test_a_record_of_a_system_the_mapping_does_not_flow_from(
    request_: Request, outcome: Outcome, kind: ErrorKind | None
) -> None:
    m = table_mapping(direction=CRM_TO_ERP, sync_only_coupled=False)
    result = sync(m, ANN, None, None, request=request_)
    assert result.outcome is outcome
    assert result.error_kind is kind
    assert "does not flow from erp to crm" in result.reason
    assert not result.writes


@pytest.mark.parametrize("request_", [Request(), CREATE], ids=["event", "create-request"])
def test_a_record_outside_the_origin_filter_is_skipped(request_: Request) -> None:
    m = table_mapping(sync_only_coupled=False, erp_filter=Filter((Condition("blocked", Op.EQ, False),)))
    result = sync(m, {**ANN, "blocked": True}, None, None, request=request_)
    assert result.outcome is Outcome.SKIPPED
    assert "outside the erp filter" in result.reason


def test_sync_only_coupled_skips_an_uncoupled_record() -> None:
    result = sync(table_mapping(sync_only_coupled=True), ANN, None, None)
    assert result.outcome is Outcome.SKIPPED
    assert "only coupled" in result.reason
    assert not result.writes


def test_a_create_request_creates_even_when_only_coupled_records_sync() -> None:
    result = sync(table_mapping(sync_only_coupled=True), ANN, None, None, request=CREATE)
    assert result.outcome is Outcome.INSERTED
    assert result.create_in == CRM


def test_a_new_record_is_created_in_the_other_system_with_every_mapped_field() -> None:
    result = sync(table_mapping(sync_only_coupled=False), ANN, None, None)
    assert result.outcome is Outcome.INSERTED
    assert result.create_in == CRM
    assert result.create_values == {"name": "Ann", "address1_city": "Oslo", "creditlimit": 100}
    assert result.mirrored == result.create_values
    assert result.coupling is None
    assert set(result.changes) == {
        Change(CRM, "name", None, "Ann"),
        Change(CRM, "address1_city", None, "Oslo"),
        Change(CRM, "creditlimit", None, 100),
    }


def test_a_new_record_from_crm_is_created_in_erp() -> None:
    m = table_mapping(sync_only_coupled=False)
    result = sync(m, None, crm_record("A1", name="Bo", address1_city=None, creditlimit=5), None, origin=CRM)
    assert result.create_in == ERP
    assert result.create_values == {"name": "Bo", "city": None, "credit_limit": 5}
    assert Change(ERP, "city", None, None) not in result.changes  # NULLs are not listed as changes


def test_a_create_applies_transforms_constants_and_only_fields_flowing_that_way() -> None:
    m = table_mapping(
        [
            fld("name", "name", "name", into_crm=[Upper()]),
            fld("city", "city", "address1_city", direction=CRM_TO_ERP),
            constant("type", CRM, "customertypecode", 3),
        ],
        sync_only_coupled=False,
    )
    result = sync(m, ANN, None, None)
    assert result.create_values == {"name": "ANN", "customertypecode": 3}


def test_a_create_may_set_the_target_key_from_a_mapped_field() -> None:
    m = table_mapping(
        [NAME, fld("number", "no", "accountnumber"), fld("id", "no", "accountid")], sync_only_coupled=False
    )
    result = sync(m, ANN, None, None)
    assert result.create_values["accountid"] == "C1"


DE = Filter((Condition("city", Op.IN, ("Berlin", "Hamburg")),))
TEMPLATES = [
    Template({"currency": "USD", "creditlimit": 0, "region": "world"}),
    Template({"currency": "EUR", "creditlimit": 0, "region": "de"}, when=DE, priority=-1),
]


@pytest.mark.parametrize(
    ("city", "currency"),
    [
        pytest.param("Berlin", "EUR", id="matching-template"),
        pytest.param("Oslo", "USD", id="general-template"),
    ],
)
def test_a_create_starts_from_the_template_chosen_by_filter_and_priority(city: str, currency: str) -> None:
    m = table_mapping(sync_only_coupled=False, crm_templates=TEMPLATES)
    result = sync(m, {**ANN, "city": city}, None, None)
    assert result.create_values["currency"] == currency
    assert result.create_values["creditlimit"] == 100  # a mapped value overrides a default
    assert result.mirrored == {"name": "Ann", "address1_city": city, "creditlimit": 100}


def test_a_mapped_null_does_not_undo_a_default_but_is_mirrored() -> None:
    m = table_mapping(sync_only_coupled=False, crm_templates=TEMPLATES)
    result = sync(m, {**ANN, "credit_limit": None}, None, None)
    assert result.create_values["creditlimit"] == 0
    assert result.mirrored["creditlimit"] is None  # so the default reads as a crm change and flows back


def test_mirrored_holds_only_what_the_source_fields_give() -> None:
    m = table_mapping([NAME, CITY, CREDIT], sync_only_coupled=False, crm_templates=TEMPLATES)
    result = sync(m, ANN, None, None)
    assert "currency" not in result.mirrored
    assert "region" not in result.mirrored
    assert result.create_values["region"] == "world"


def test_a_create_from_a_source_without_a_template_match_has_no_defaults() -> None:
    only_de = [Template({"currency": "EUR"}, when=DE)]
    result = sync(table_mapping(sync_only_coupled=False, crm_templates=only_de), ANN, None, None)
    assert "currency" not in result.create_values


# --- match-based coupling --------------------------------------------------------------------------


def test_a_match_couples_to_the_candidate_and_updates_it() -> None:
    candidate = crm_record("A9", name="ANN", address1_city="Oslo", creditlimit=50)
    match = MatchResult(key="A9", record=candidate)
    result = sync(table_mapping(sync_only_coupled=False), ANN, None, None, match=match)
    assert result.outcome is Outcome.COUPLED
    assert result.couple_to == "A9"
    assert result.create_in is None
    assert result.updates == {CRM: {"name": "Ann", "creditlimit": 100}}
    assert "matched the crm record A9" in result.reason


def test_a_match_that_already_agrees_couples_without_writes() -> None:
    candidate = crm_record("A9", name="Ann", address1_city="Oslo", creditlimit=100)
    result = sync(table_mapping(sync_only_coupled=False), ANN, None, None, match=MatchResult("A9", candidate))
    assert result.outcome is Outcome.COUPLED
    assert not result.writes


def test_a_match_never_writes_the_candidate_key() -> None:
    m = table_mapping([NAME, fld("id", "no", "accountid", direction=ERP_TO_CRM)], sync_only_coupled=False)
    candidate = crm_record("A9", name="Ann")
    result = sync(m, ANN, None, None, match=MatchResult("A9", candidate))
    assert result.updates == {}


@pytest.mark.parametrize(
    ("match", "shown"),
    [
        pytest.param(MatchResult(candidates=("A1", "A2")), "2 crm records match: A1, A2", id="ambiguous"),
        pytest.param(MatchResult(coupled=("A1",)), "A1 is coupled to another record", id="coupled-elsewhere"),
    ],
)
def test_an_ambiguous_or_taken_match_fails_instead_of_creating(match: MatchResult, shown: str) -> None:
    result = sync(table_mapping(sync_only_coupled=False), ANN, None, None, match=match)
    assert result.outcome is Outcome.FAILED
    assert result.error_kind is ErrorKind.AMBIGUOUS
    assert shown in result.reason
    assert not result.writes
    assert result.couple_to is None


def test_no_match_creates() -> None:
    result = sync(table_mapping(sync_only_coupled=False), ANN, None, None, match=MatchResult())
    assert result.outcome is Outcome.INSERTED


def test_a_match_still_respects_sync_only_coupled() -> None:
    result = sync(
        table_mapping(sync_only_coupled=True), ANN, None, None, match=MatchResult("A9", crm_record("A9"))
    )
    assert result.outcome is Outcome.SKIPPED
