"""Field transforms: each one, with NULL passing through and wrong types failing with a clear message."""

from __future__ import annotations

import re

import pytest

from domain.errors import TransformError
from domain.transforms import (
    IDENTITY,
    UNMAPPED_ERROR,
    UNMAPPED_KEEP,
    UNMAPPED_NULL,
    Chain,
    DateFormat,
    IfBlank,
    Lower,
    Prefix,
    RegexReplace,
    Replace,
    Round,
    Substring,
    Suffix,
    Title,
    ToNumber,
    ToText,
    Transform,
    Trim,
    Upper,
    ValueMap,
)
from domain.values import Value

ALL: list[Transform] = [
    Upper(),
    Lower(),
    Title(),
    Trim(),
    Prefix("C-"),
    Suffix("-X"),
    Replace("a", "b"),
    RegexReplace(re.compile("a"), "b"),
    Substring(1, 2),
    Round(2),
    DateFormat("%d.%m.%Y"),
    ValueMap(((1, "one"),)),
    ToText(),
    ToNumber(),
    Chain((Trim(), Upper())),
]


@pytest.mark.parametrize("transform", ALL, ids=lambda t: type(t).__name__)
def test_null_passes_through_every_transform(transform: Transform) -> None:
    assert transform.apply(None) is None


@pytest.mark.parametrize(
    ("transform", "value", "expected"),
    [
        pytest.param(Upper(), "straße", "STRASSE", id="upper-unicode"),
        pytest.param(Upper(), "abc", "ABC", id="upper"),
        pytest.param(Lower(), "ÀÉÎ Ünïcode", "àéî ünïcode", id="lower-unicode"),
        pytest.param(Title(), "jean-luc o'neil", "Jean-Luc O'Neil", id="title"),
        pytest.param(Trim(), "  \tZoë \n", "Zoë", id="trim"),
        pytest.param(Prefix("C-"), "001", "C-001", id="prefix"),
        pytest.param(Suffix(" GmbH"), "Müller", "Müller GmbH", id="suffix-unicode"),
        pytest.param(Replace("-", ""), "12-34-56", "123456", id="replace-every-occurrence"),
        pytest.param(Replace("x", "y"), "abc", "abc", id="replace-nothing-to-replace"),
        pytest.param(
            RegexReplace(re.compile(r"(\w+)@(\w+)\.com"), r"\2:\1"),
            "ann@acme.com",
            "acme:ann",
            id="regex-groups",
        ),
        pytest.param(RegexReplace(re.compile("@.*$"), ""), "ann@acme.com", "ann", id="regex-strip-domain"),
        pytest.param(Substring(), "abcdef", "abcdef", id="substring-all"),
        pytest.param(Substring(2), "abcdef", "cdef", id="substring-from-start"),
        pytest.param(Substring(0, 3), "abcdef", "abc", id="substring-length"),
        pytest.param(Substring(4, 10), "abcdef", "ef", id="substring-length-past-end"),
        pytest.param(Substring(10), "abc", "", id="substring-start-past-end"),
        pytest.param(Substring(0, 0), "abc", "", id="substring-zero-length"),
        pytest.param(Substring(1, 2), "北京市区", "京市", id="substring-counts-characters"),
        pytest.param(Round(), 2.4, 2, id="round-to-int"),
        pytest.param(Round(), 2.6, 3, id="round-up"),
        pytest.param(Round(2), 3.14159, 3.14, id="round-2-digits"),
        pytest.param(Round(-2), 1234, 1200, id="round-negative-digits"),
        pytest.param(Round(2), 5, 5, id="round-int-unchanged"),
        pytest.param(DateFormat("%d.%m.%Y"), "2024-03-05", "05.03.2024", id="date-iso-date"),
        pytest.param(
            DateFormat("%Y-%m-%d"), "2024-03-05T10:20:30+02:00", "2024-03-05", id="date-iso-timestamp"
        ),
        pytest.param(DateFormat("%Y-%m-%d", "%d/%m/%Y"), "05/03/2024", "2024-03-05", id="date-source-format"),
        pytest.param(ToText(), 12, "12", id="to-text-int"),
        pytest.param(ToText(), 1.5, "1.5", id="to-text-float"),
        pytest.param(ToText(), True, "true", id="to-text-true"),
        pytest.param(ToText(), False, "false", id="to-text-false"),
        pytest.param(ToText(), "x", "x", id="to-text-text"),
        pytest.param(ToNumber(), " 42 ", 42, id="to-number-int"),
        pytest.param(ToNumber(), "4.50", 4.5, id="to-number-float"),
        pytest.param(ToNumber(), "-3", -3, id="to-number-negative"),
        pytest.param(ToNumber(), 7, 7, id="to-number-number"),
        pytest.param(ToNumber(), "1e3", 1000, id="to-number-exponent"),
        pytest.param(IfBlank("n/a"), None, "n/a", id="if-blank-null"),
        pytest.param(IfBlank("n/a"), "  ", "n/a", id="if-blank-whitespace"),
        pytest.param(IfBlank("n/a"), "x", "x", id="if-blank-keeps-value"),
        pytest.param(IfBlank(0), 5, 5, id="if-blank-keeps-number"),
        pytest.param(Chain((Trim(), Upper(), Prefix("K-"))), " ab ", "K-AB", id="chain-in-order"),
        pytest.param(IDENTITY, "as is", "as is", id="identity"),
    ],
)
def test_transform_result(transform: Transform, value: Value, expected: Value) -> None:
    result = transform.apply(value)
    assert result == expected
    assert type(result) is type(expected)


def test_round_to_digits_gives_a_float_and_to_zero_digits_an_int() -> None:
    assert isinstance(Round(1).apply(2.0), float)
    assert isinstance(Round(0).apply(2.7), int)


def test_to_number_keeps_a_decimal_point_as_a_float() -> None:
    result = ToNumber().apply("10.0")
    assert isinstance(result, float)
    assert result == 10.0


def test_to_number_keeps_every_digit_of_a_long_integer() -> None:
    assert ToNumber().apply("12345678901234567890") == 12345678901234567890


@pytest.mark.parametrize("text", ["nan", "inf", "-Infinity"])
def test_to_number_refuses_non_finite_numbers(text: str) -> None:
    # A NaN never equals itself: it would read as changed on every sync, and JSON cannot hold it.
    with pytest.raises(TransformError, match="to_number"):
        ToNumber().apply(text)


@pytest.mark.parametrize(
    ("transform", "value", "message"),
    [
        pytest.param(Upper(), 5, "upper expects text, got int 5", id="upper-int"),
        pytest.param(Lower(), True, "lower expects text, got bool True", id="lower-bool"),
        pytest.param(Title(), 1.5, "title expects text", id="title-float"),
        pytest.param(Trim(), 3, "trim expects text", id="trim-int"),
        pytest.param(Prefix("C-"), 1, "prefix expects text", id="prefix-int"),
        pytest.param(Suffix("x"), 1, "suffix expects text", id="suffix-int"),
        pytest.param(Replace("a", "b"), 1, "replace expects text", id="replace-int"),
        pytest.param(RegexReplace(re.compile("a"), "b"), 1, "regex_replace expects text", id="regex-int"),
        pytest.param(Substring(1), 123, "substring expects text", id="substring-int"),
        pytest.param(Round(), "2.5", "round expects a number, got str '2.5'", id="round-text"),
        pytest.param(Round(), True, "round expects a number, got bool", id="round-bool"),
        pytest.param(DateFormat("%Y"), 20240101, "date_format expects text", id="date-int"),
        pytest.param(
            DateFormat("%Y"), "yesterday", "date_format cannot read 'yesterday'", id="date-unreadable"
        ),
        pytest.param(
            DateFormat("%Y", "%d/%m/%Y"), "2024-01-05", "date_format cannot read", id="date-wrong-source"
        ),
        pytest.param(ToNumber(), "twelve", "to_number cannot read 'twelve'", id="to-number-words"),
        pytest.param(ToNumber(), "", "to_number cannot read ''", id="to-number-empty"),
        pytest.param(ToNumber(), True, "to_number expects text, got bool", id="to-number-bool"),
        pytest.param(
            RegexReplace(re.compile("(a)"), r"\2"), "a", "regex_replace failed", id="regex-missing-group"
        ),
    ],
)
def test_a_wrong_value_raises_a_transform_error_that_says_why(
    transform: Transform, value: Value, message: str
) -> None:
    with pytest.raises(TransformError) as caught:
        transform.apply(value)
    assert message in str(caught.value)


OPTION_SET = (("NET30", 1), ("NET60", 2), ("COD", 3))


@pytest.mark.parametrize(
    ("unmapped", "value", "expected"),
    [
        pytest.param(UNMAPPED_ERROR, "NET60", 2, id="listed-error"),
        pytest.param(UNMAPPED_KEEP, "NET60", 2, id="listed-keep"),
        pytest.param(UNMAPPED_NULL, "COD", 3, id="listed-null"),
        pytest.param(UNMAPPED_KEEP, "NET90", "NET90", id="unlisted-keep"),
        pytest.param(UNMAPPED_NULL, "NET90", None, id="unlisted-null"),
        pytest.param(UNMAPPED_ERROR, None, None, id="null-error"),
    ],
)
def test_value_map(unmapped: str, value: Value, expected: Value) -> None:
    assert ValueMap(OPTION_SET, unmapped).apply(value) == expected


def test_value_map_names_the_unmapped_value_and_the_known_ones() -> None:
    with pytest.raises(TransformError) as caught:
        ValueMap(OPTION_SET).apply("NET90")
    message = str(caught.value)
    assert "'NET90'" in message
    assert "'NET30', 'NET60', 'COD'" in message


def test_value_map_compares_canonically_so_true_is_not_one() -> None:
    flags = ValueMap(((1, "one"), (True, "yes")))
    assert flags.apply(True) == "yes"
    assert flags.apply(1) == "one"
    assert flags.apply(1.0) == "one"


def test_value_map_can_map_null_explicitly() -> None:
    assert ValueMap(((None, "none"),)).apply(None) == "none"


def test_a_chain_stops_at_the_first_failing_step() -> None:
    with pytest.raises(TransformError, match="upper expects text"):
        Chain((ToNumber(), Upper())).apply("5")


def test_the_empty_chain_is_falsy_and_a_chain_with_steps_is_not() -> None:
    assert not IDENTITY
    assert Chain((Upper(),))
