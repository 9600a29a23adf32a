"""Filters: every operator, NULL-safe semantics, and values that are only ever values."""

from __future__ import annotations

import pytest

from domain.filters import EVERYTHING, Condition, Filter, Op
from domain.values import Value


@pytest.mark.parametrize(
    ("op", "bound", "actual", "expected"),
    [
        pytest.param(Op.EQ, "a", "a", True, id="eq-holds"),
        pytest.param(Op.EQ, "a", "b", False, id="eq-differs"),
        pytest.param(Op.EQ, "a", None, False, id="eq-null-field"),
        pytest.param(Op.EQ, None, None, True, id="eq-null-bound-null-field"),
        pytest.param(Op.EQ, 1, 1.0, True, id="eq-int-float"),
        pytest.param(Op.NE, "a", "b", True, id="ne-holds"),
        pytest.param(Op.NE, "a", "a", False, id="ne-same"),
        pytest.param(Op.NE, "a", None, True, id="ne-holds-for-null"),
        pytest.param(Op.NE, None, None, False, id="ne-null-bound-null-field"),
        pytest.param(Op.IN, ("a", "b"), "b", True, id="in-holds"),
        pytest.param(Op.IN, ("a", "b"), "c", False, id="in-missing"),
        pytest.param(Op.IN, ("a", "b"), None, False, id="in-null-field"),
        pytest.param(Op.IN, ("a", None), None, True, id="in-listing-null"),
        pytest.param(Op.NOT_IN, ("a", "b"), "c", True, id="not_in-holds"),
        pytest.param(Op.NOT_IN, ("a", "b"), "a", False, id="not_in-listed"),
        pytest.param(Op.NOT_IN, ("a", "b"), None, True, id="not_in-holds-for-null"),
        pytest.param(Op.LT, 10, 9, True, id="lt-holds"),
        pytest.param(Op.LT, 10, 10, False, id="lt-equal"),
        pytest.param(Op.LE, 10, 10, True, id="le-equal"),
        pytest.param(Op.LE, 10, 11, False, id="le-greater"),
        pytest.param(Op.GT, 10, 11, True, id="gt-holds"),
        pytest.param(Op.GT, 10, 10, False, id="gt-equal"),
        pytest.param(Op.GE, 10, 10, True, id="ge-equal"),
        pytest.param(Op.GE, 10, 9.5, False, id="ge-smaller-float"),
        pytest.param(Op.GT, "2024-01-01", "2024-06-30", True, id="gt-iso-dates-as-text"),
        pytest.param(Op.IS_NULL, None, None, True, id="is_null-holds"),
        pytest.param(Op.IS_NULL, None, "", False, id="is_null-blank-is-not-null"),
        pytest.param(Op.NOT_NULL, None, 0, True, id="not_null-zero"),
        pytest.param(Op.NOT_NULL, None, None, False, id="not_null-null"),
    ],
)
def test_condition_holds(op: Op, bound: Value | tuple[Value, ...], actual: Value, expected: bool) -> None:
    assert Condition("f", op, bound).holds({"f": actual}) is expected


@pytest.mark.parametrize("op", [Op.LT, Op.LE, Op.GT, Op.GE])
def test_orderings_never_hold_for_null(op: Op) -> None:
    assert not Condition("f", op, 5).holds({"f": None})
    assert not Condition("f", op, 5).holds({})
    assert not Condition("f", op, None).holds({"f": 5})


@pytest.mark.parametrize("op", [Op.LT, Op.LE, Op.GT, Op.GE])
def test_orderings_between_text_and_numbers_are_false_not_errors(op: Op) -> None:
    assert not Condition("f", op, 5).holds({"f": "5"})
    assert not Condition("f", op, "5").holds({"f": 5})


def test_a_missing_field_reads_as_null() -> None:
    assert Condition("f", Op.IS_NULL).holds({})
    assert Condition("f", Op.NE, "x").holds({})


@pytest.mark.parametrize(
    ("op", "bound", "actual", "expected"),
    [
        pytest.param(Op.EQ, 1, True, False, id="true-does-not-equal-1"),
        pytest.param(Op.EQ, True, 1, False, id="1-does-not-equal-true"),
        pytest.param(Op.EQ, False, 0, False, id="0-does-not-equal-false"),
        pytest.param(Op.EQ, False, False, True, id="false-equals-false"),
        pytest.param(Op.NE, 1, True, True, id="true-is-not-1"),
        pytest.param(Op.IN, (1, 2), True, False, id="true-not-in-1-2"),
        pytest.param(Op.NOT_IN, (0,), False, True, id="false-not-in-0"),
    ],
)
def test_booleans_are_not_numbers(
    op: Op, bound: Value | tuple[Value, ...], actual: Value, expected: bool
) -> None:
    assert Condition("f", op, bound).holds({"f": actual}) is expected


@pytest.mark.parametrize(
    "hostile",
    ["O'Brien", "x'; DROP TABLE customer; --", '"quoted"', "Zoë ✓ 北京", "%_*", "a\\b"],
    ids=["apostrophe", "injection", "double-quotes", "unicode", "wildcards", "backslash"],
)
def test_hostile_strings_are_just_values(hostile: str) -> None:
    condition = Condition("name", Op.EQ, hostile)
    assert condition.holds({"name": hostile})
    assert not condition.holds({"name": hostile + " "})
    assert not condition.holds({"name": "anything"})
    assert Condition("name", Op.IN, (hostile,)).holds({"name": hostile})


def test_text_comparison_is_case_sensitive() -> None:
    assert not Condition("f", Op.EQ, "Active").holds({"f": "active"})


def test_a_filter_needs_every_condition() -> None:
    active_customers = Filter((Condition("state", Op.EQ, 0), Condition("type", Op.IN, (3, 4))))
    assert active_customers.matches({"state": 0, "type": 3})
    assert not active_customers.matches({"state": 1, "type": 3})
    assert not active_customers.matches({"state": 0, "type": 5})


def test_the_empty_filter_admits_everything_and_is_falsy() -> None:
    assert EVERYTHING.matches({})
    assert EVERYTHING.matches({"any": None})
    assert not EVERYTHING
    assert Filter((Condition("a", Op.IS_NULL),))


def test_filter_fields_names_every_filtered_field() -> None:
    f = Filter((Condition("a", Op.EQ, 1), Condition("b", Op.IS_NULL), Condition("a", Op.NE, 2)))
    assert f.fields == frozenset({"a", "b"})
