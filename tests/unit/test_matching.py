"""Match-based coupling: the one uncoupled counterpart whose match fields agree, by priority group."""

from __future__ import annotations

from domain.lookups import NO_LOOKUPS, LookupTable
from domain.mapping import MatchRule
from domain.matching import NO_MATCH, MatchResult, choose, match_groups
from domain.transforms import Upper
from domain.values import Record
from tests.unit.builders import CRM, ERP, crm_record, erp_record, fld, table_mapping

NAME_MATCH = fld("name", "name", "name", match=MatchRule(1))
CITY_MATCH = fld("city", "city", "address1_city", match=MatchRule(1))
EMAIL_MATCH = fld("email", "email", "emailaddress1", match=MatchRule(2, case_sensitive=True))
BY_NAME_AND_CITY_THEN_EMAIL = table_mapping(
    [EMAIL_MATCH, NAME_MATCH, CITY_MATCH, fld("phone", "phone", "telephone1")]
)

ANN = erp_record("C1", name="Ann Ltd", city="Oslo", email="ann@x.io", phone="1")


def pick(record: Record, candidates: list[Record], coupled: tuple[str, ...] = ()) -> MatchResult:
    return choose(BY_NAME_AND_CITY_THEN_EMAIL, ERP, record, candidates, coupled, NO_LOOKUPS)


def test_match_groups_are_by_priority_lowest_first() -> None:
    groups = match_groups(BY_NAME_AND_CITY_THEN_EMAIL)
    assert [[f.name for f in g] for g in groups] == [["name", "city"], ["email"]]


def test_one_matching_candidate_is_chosen_with_its_record() -> None:
    hit = crm_record("A2", name="Ann Ltd", address1_city="Oslo")
    result = pick(ANN, [crm_record("A1", name="Bob", address1_city="Oslo"), hit])
    assert result.key == "A2"
    assert result.record is hit
    assert not result.ambiguous


def test_every_field_of_a_group_must_agree() -> None:
    result = pick(ANN, [crm_record("A1", name="Ann Ltd", address1_city="Bergen")])
    assert result == NO_MATCH


def test_matching_ignores_case_unless_case_sensitive() -> None:
    by_name = pick(ANN, [crm_record("A1", name="ANN LTD", address1_city="oslo")])
    assert by_name.key == "A1"
    # email is case-sensitive and is the only group that can match here (the name differs).
    by_email = pick(ANN, [crm_record("A1", name="Other", emailaddress1="ANN@X.IO")])
    assert by_email == NO_MATCH
    exact_email = pick(ANN, [crm_record("A1", name="Other", emailaddress1="ann@x.io")])
    assert exact_email.key == "A1"


def test_case_folding_handles_unicode() -> None:
    m = table_mapping([fld("name", "name", "name", match=MatchRule())])
    result = choose(m, ERP, erp_record(name="Straße"), [crm_record("A1", name="STRASSE")], (), NO_LOOKUPS)
    assert result.key == "A1"


def test_blank_values_never_match() -> None:
    blank_name = erp_record("C1", name="  ", city="Oslo", email=None)
    result = pick(blank_name, [crm_record("A1", name="  ", address1_city="Oslo", emailaddress1=None)])
    assert result == NO_MATCH


def test_a_blank_group_is_skipped_and_the_next_group_decides() -> None:
    no_city = erp_record("C1", name="Ann Ltd", city=None, email="ann@x.io")
    result = pick(no_city, [crm_record("A9", name="Ann Ltd", address1_city=None, emailaddress1="ann@x.io")])
    assert result.key == "A9"


def test_several_candidates_are_ambiguous_and_listed() -> None:
    twins = [
        crm_record("A1", name="Ann Ltd", address1_city="Oslo"),
        crm_record("A2", name="ann ltd", address1_city="OSLO"),
    ]
    result = pick(ANN, twins)
    assert result.ambiguous
    assert result.key is None
    assert result.candidates == ("A1", "A2")
    assert result.describe(CRM) == "2 crm records match: A1, A2"


def test_a_candidate_coupled_elsewhere_is_reported_not_chosen() -> None:
    result = pick(ANN, [crm_record("A1", name="Ann Ltd", address1_city="Oslo")], coupled=("A1",))
    assert result.key is None
    assert result.coupled == ("A1",)
    assert not result.ambiguous
    assert "A1 is coupled to another record" in result.describe(CRM)


def test_the_one_free_candidate_wins_over_coupled_ones() -> None:
    hits = [
        crm_record("A1", name="Ann Ltd", address1_city="Oslo"),
        crm_record("A2", name="Ann Ltd", address1_city="Oslo"),
    ]
    result = pick(ANN, hits, coupled=("A1",))
    assert result.key == "A2"


def test_the_first_group_that_finds_anything_decides() -> None:
    # The name+city group finds two; the email group would find exactly one, but is never asked.
    candidates = [
        crm_record("A1", name="Ann Ltd", address1_city="Oslo", emailaddress1="ann@x.io"),
        crm_record("A2", name="Ann Ltd", address1_city="Oslo", emailaddress1="other@x.io"),
    ]
    result = pick(ANN, candidates)
    assert result.ambiguous
    assert result.candidates == ("A1", "A2")


def test_a_later_group_is_asked_when_earlier_ones_find_nothing() -> None:
    result = pick(ANN, [crm_record("A5", name="Renamed", address1_city="Oslo", emailaddress1="ann@x.io")])
    assert result.key == "A5"


def test_no_candidates_is_no_match() -> None:
    assert pick(ANN, []) == NO_MATCH
    assert NO_MATCH.describe(CRM) == "no crm record matches"


def test_match_values_go_through_the_target_transforms() -> None:
    m = table_mapping([fld("code", "code", "code", into_crm=[Upper()], match=MatchRule(case_sensitive=True))])
    result = choose(m, ERP, erp_record(code="ab"), [crm_record("A1", code="AB")], (), NO_LOOKUPS)
    assert result.key == "A1"


def test_lookup_match_fields_compare_translated_keys() -> None:
    currency = fld("currency", "currency_code", "transactioncurrencyid", lookup="CURRENCY", match=MatchRule())
    m = table_mapping([currency])
    lookups = LookupTable({("CURRENCY", ERP, "EUR"): "7"})
    result = choose(
        m, ERP, erp_record(currency_code="EUR"), [crm_record("A1", transactioncurrencyid=7)], (), lookups
    )
    assert result.key == "A1"


def test_matching_from_the_other_side_uses_the_other_columns() -> None:
    result = choose(
        BY_NAME_AND_CITY_THEN_EMAIL,
        CRM,
        crm_record("A1", name="Ann Ltd", address1_city="Oslo"),
        [erp_record("C7", name="ann ltd", city="oslo")],
        (),
        NO_LOOKUPS,
    )
    assert result.key == "C7"
