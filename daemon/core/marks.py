"""Turning a mark as written («4-», «3/5», «зачёт», «н/а») into numbers for averages.

The raw text is always kept; the numbers are derived here, once, on import. How a minus or
a plus counts differs between schools, so it is configuration (`marks.*`), not code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FIVE = re.compile(r"^([1-5])([+-]?)$")
_PASSED = {"зачёт", "зачет", "зач", "зачтено"}
_FAILED = {"незачёт", "незачет", "незач", "не зачтено"}
_NOT_CERTIFIED = {"н/а", "на", "н\\а"}


@dataclass(frozen=True)
class MarkRules:
    minus_delta: float = 0.0
    plus_delta: float = 0.0
    split_double: bool = True


@dataclass(frozen=True)
class MarkValue:
    value: float | None = None
    value2: float | None = None
    passed: bool | None = None


class MarkError(ValueError):
    """A raw mark that does not belong to its scale."""


def _five_point(part: str, rules: MarkRules) -> float:
    match = _FIVE.match(part)
    if not match:
        raise MarkError(
            f"«{part}» is not on the five-point scale: use 1–5 with an optional + or -, "
            "two marks like 3/5, or н/а"
        )
    base, sign = int(match.group(1)), match.group(2)
    return base - rules.minus_delta if sign == "-" else base + rules.plus_delta if sign else base


def _parse_five(text: str, rules: MarkRules) -> MarkValue:
    parts = text.split("/")
    if len(parts) == 1:
        return MarkValue(value=_five_point(parts[0], rules))
    if len(parts) != 2:
        raise MarkError(f"«{text}» has more than two marks in one cell")
    first, second = (_five_point(part, rules) for part in parts)
    if rules.split_double:
        return MarkValue(value=first, value2=second)
    return MarkValue(value=(first + second) / 2)


def _parse_pass_fail(text: str) -> MarkValue:
    if text in _PASSED:
        return MarkValue(passed=True)
    if text in _FAILED:
        return MarkValue(passed=False)
    raise MarkError(f"«{text}» is not on the pass/fail scale: use «зачёт» or «незачёт»")


def parse_mark(raw: str, scale: str, value: float | None, rules: MarkRules) -> MarkValue:
    """Numbers for one mark cell; raises MarkError with a message fit for the operator."""
    text = re.sub(r"\s+", "", raw.strip().lower()) if scale != "pass_fail" else raw.strip().lower()
    if text in _NOT_CERTIFIED:
        return MarkValue()
    if scale == "custom":
        if value is None:
            raise MarkError("a mark on the custom scale needs its numeric 'value'")
        return MarkValue(value=value)
    if scale == "pass_fail":
        return _parse_pass_fail(text)
    return _parse_five(text, rules)
