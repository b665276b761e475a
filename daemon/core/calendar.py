"""The one working-day calendar: the Russian production calendar.

Saturday and Sunday are days off, so are public holidays and the days off transferred next
to them, and a Saturday made a working day by a transfer is a working day. The breach
deadline (one working day) and its reminders both count days here, so they cannot disagree.
"""

from __future__ import annotations

import datetime as dt
import functools

import holidays


@functools.lru_cache(maxsize=8)
def _calendar(year: int) -> holidays.HolidayBase:
    return holidays.RU(years=[year, year + 1])


def is_working_day(day: dt.date) -> bool:
    return bool(_calendar(day.year).is_working_day(day))


def working_days(first: dt.date, last: dt.date) -> list[dt.date]:
    """The working days from `first` to `last`, both included, in order."""
    days = (first + dt.timedelta(days=n) for n in range((last - first).days + 1))
    return [day for day in days if is_working_day(day)]


def next_working_day(after: dt.date) -> dt.date:
    """The first working day after `after`."""
    day = after + dt.timedelta(days=1)
    while not is_working_day(day):
        day += dt.timedelta(days=1)
    return day
