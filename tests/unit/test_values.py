"""Canonical values: what the engine compares and stores, and the equality and key rules on them."""

from __future__ import annotations

import datetime as dt
import decimal

import pytest

from domain.values import Value, as_key, canonical, canonical_record, is_blank, same


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(None, None, id="none"),
        pytest.param(True, True, id="bool-stays-bool"),
        pytest.param("text", "text", id="text"),
        pytest.param(7, 7, id="int"),
        pytest.param(2.0, 2, id="integral-float-becomes-int"),
        pytest.param(2.5, 2.5, id="fractional-float"),
        pytest.param(decimal.Decimal("10.00"), 10, id="integral-decimal-becomes-int"),
        pytest.param(decimal.Decimal("1.25"), 1.25, id="fractional-decimal-becomes-float"),
        pytest.param(dt.datetime(2024, 5, 1, 12, 30), "2024-05-01T12:30:00", id="datetime-iso"),
        pytest.param(dt.date(2024, 5, 1), "2024-05-01", id="date-iso"),
        pytest.param(dt.time(8, 15), "08:15:00", id="time-iso"),
        pytest.param(b"\x00\xff", "00ff", id="bytes-hex"),
        pytest.param(dt.timedelta(minutes=2), 120.0, id="timedelta-seconds"),
    ],
)
def test_canonical_turns_driver_values_into_json_shaped_values(raw: object, expected: Value) -> None:
    result = canonical(raw)
    assert result == expected
    assert type(result) is type(expected)


def test_canonical_keeps_huge_integral_floats_as_floats() -> None:
    assert isinstance(canonical(2.0**60), float)


@pytest.mark.parametrize(
    "raw",
    [float("nan"), float("inf"), decimal.Decimal("NaN"), decimal.Decimal("-Infinity")],
    ids=["nan", "inf", "decimal-nan", "decimal-inf"],
)
def test_canonical_refuses_non_finite_numbers(raw: object) -> None:
    with pytest.raises(ValueError, match="non-finite"):
        canonical(raw)


def test_canonical_refuses_unknown_types_by_name() -> None:
    with pytest.raises(TypeError, match="set"):
        canonical({1, 2})


def test_canonical_record_converts_every_value() -> None:
    assert canonical_record({"a": decimal.Decimal("3"), "b": dt.date(2020, 1, 2)}) == {
        "a": 3,
        "b": "2020-01-02",
    }


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        pytest.param(1, 1.0, True, id="int-and-float-agree"),
        pytest.param(True, 1, False, id="true-is-not-one"),
        pytest.param(0, False, False, id="zero-is-not-false"),
        pytest.param(True, True, True, id="bools-agree"),
        pytest.param(None, None, True, id="nulls-agree"),
        pytest.param(None, "", False, id="null-is-not-blank"),
        pytest.param("a", "A", False, id="case-matters"),
    ],
)
def test_same_compares_canonical_values(left: Value, right: Value, expected: bool) -> None:
    assert same(left, right) is expected
    assert same(right, left) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(None, None, id="none"),
        pytest.param(2, "2", id="int"),
        pytest.param(2.0, "2", id="integral-float"),
        pytest.param(2.5, "2.5", id="fraction"),
        pytest.param("K-1", "K-1", id="text"),
    ],
)
def test_as_key_gives_the_string_form_of_a_key(value: Value, expected: str | None) -> None:
    assert as_key(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, True), ("", True), ("  \t", True), ("x", False), (0, False), (False, False)],
    ids=["none", "empty", "whitespace", "text", "zero", "false"],
)
def test_is_blank_means_null_or_whitespace_only_text(value: Value, expected: bool) -> None:
    assert is_blank(value) is expected
