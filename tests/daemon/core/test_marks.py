"""How a mark as written turns into numbers."""

from __future__ import annotations

import pytest

from otmetka.daemon.core.marks import MarkError, MarkRules, MarkValue, parse_mark


@pytest.mark.parametrize(
    ("raw", "scale", "expected"),
    [
        ("5", "five", MarkValue(value=5)),
        (" 4 ", "five", MarkValue(value=4)),
        ("4-", "five", MarkValue(value=3.75)),
        ("5+", "five", MarkValue(value=5.5)),
        ("3/5", "five", MarkValue(value=3, value2=5)),
        ("4-/5", "five", MarkValue(value=3.75, value2=5)),
        ("н/а", "five", MarkValue()),
        ("Н/А", "pass_fail", MarkValue()),
        ("зачёт", "pass_fail", MarkValue(passed=True)),
        ("Зачет", "pass_fail", MarkValue(passed=True)),
        ("незачёт", "pass_fail", MarkValue(passed=False)),
    ],
)
def test_raw_marks(raw: str, scale: str, expected: MarkValue) -> None:
    assert parse_mark(raw, scale, None, MarkRules(minus_delta=0.25, plus_delta=0.5)) == expected


def test_minus_counts_as_configured() -> None:
    assert parse_mark("4-", "five", None, MarkRules()).value == 4
    assert parse_mark("4-", "five", None, MarkRules(minus_delta=0.3)).value == pytest.approx(3.7)


def test_double_mark_as_mean_when_not_split() -> None:
    assert parse_mark("3/5", "five", None, MarkRules(split_double=False)) == MarkValue(value=4)


def test_custom_scale_takes_the_given_value() -> None:
    assert parse_mark("A", "custom", 4.5, MarkRules()).value == 4.5
    with pytest.raises(MarkError, match="needs its numeric 'value'"):
        parse_mark("A", "custom", None, MarkRules())


@pytest.mark.parametrize("raw", ["6", "0", "55", "5--", "3/4/5", "отл", "зачёт"])
def test_out_of_scale_five(raw: str) -> None:
    with pytest.raises(MarkError):
        parse_mark(raw, "five", None, MarkRules())


def test_out_of_scale_pass_fail() -> None:
    with pytest.raises(MarkError, match="pass/fail"):
        parse_mark("5", "pass_fail", None, MarkRules())
