"""The school year of the demo school: quarters, vacations, public holidays, the short day
before March 8 and the list of school days.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import holidays

from otmetka.daemon.demo.common import DJ
from otmetka.daemon.demo.model import Calendar, Vacation


def _days(first: dt.date, last: dt.date) -> Iterator[dt.date]:
    for offset in range((last - first).days + 1):
        yield first + DJ(days=offset)


def _quarters(year: int) -> list[tuple[dt.date, dt.date]]:
    d = dt.date
    return [
        (d(year, 9, 1), d(year, 10, 25)),
        (d(year, 11, 4), d(year, 12, 28)),
        (d(year + 1, 1, 12), d(year + 1, 3, 27)),
        (d(year + 1, 4, 6), d(year + 1, 5, 31)),
    ]


def _vacations(year: int) -> list[Vacation]:
    d = dt.date
    return [
        Vacation("autumn", "Осенние каникулы", d(year, 10, 26), d(year, 11, 3)),
        Vacation("winter", "Зимние каникулы", d(year, 12, 29), d(year + 1, 1, 11)),
        Vacation(
            "grade1",
            "Дополнительные каникулы для 1-х классов",
            d(year + 1, 2, 14),
            d(year + 1, 2, 22),
            grade1_only=True,
        ),
        Vacation("spring", "Весенние каникулы", d(year + 1, 3, 28), d(year + 1, 4, 5)),
    ]


def _public_holidays(first: dt.date, last: dt.date) -> list[tuple[str, dt.date, dt.date]]:
    """Public holidays and transferred days off, consecutive days merged into one entry."""
    table = holidays.country_holidays("RU", years=[first.year, last.year], language="ru")
    merged: list[tuple[list[str], dt.date, dt.date]] = []
    for day, name in sorted(table.items()):
        if not first <= day <= last:
            continue
        if merged and merged[-1][2] + DJ(days=1) == day:
            names, start, _ = merged[-1]
            merged[-1] = ([*names, name] if name not in names else names, start, day)
        else:
            merged.append(([name], day, day))
    return [(", ".join(names), start, end) for names, start, end in merged]


def make_calendar(as_of: dt.date) -> Calendar:
    year = as_of.year if as_of >= dt.date(as_of.year, 9, 1) else as_of.year - 1
    quarters = _quarters(year)
    # Lessons run through the quarter that contains as_of (in a vacation: the next one).
    term_end = next((end for _, end in quarters if as_of <= end), quarters[-1][1])
    vacations = _vacations(year)
    public = _public_holidays(quarters[0][0], quarters[-1][1])
    closed = {day for v in vacations if not v.grade1_only for day in _days(v.start, v.end)}
    closed.update(day for _, start, end in public for day in _days(start, end))
    grade1 = {day for v in vacations if v.grade1_only for day in _days(v.start, v.end)}
    days = [d for d in _days(quarters[0][0], term_end) if d.weekday() < 5 and d not in closed]
    cal = Calendar(
        year,
        as_of,
        quarters,
        term_end,
        vacations,
        public,
        frozenset(closed),
        frozenset(grade1),
        days,
        _short_day(year, closed),
    )
    cal.quarter_of = {day: _quarter_index(quarters, day) for day in days}
    return cal


def _quarter_index(quarters: list[tuple[dt.date, dt.date]], day: dt.date) -> int:
    return next((i for i, (_, end) in enumerate(quarters) if day <= end), len(quarters) - 1)


def _short_day(year: int, closed: set[dt.date]) -> dt.date | None:
    """The school day before International Women's Day: lessons of 35 minutes."""
    day = dt.date(year + 1, 3, 7)
    for _ in range(10):
        if day.weekday() < 5 and day not in closed:
            return day
        day -= DJ(days=1)
    return None
