"""What an act may not claim: the weeks, times and page versions the checks let through and
the ones they refuse, without a database."""

from __future__ import annotations

import datetime as dt

import pytest

from otmetka.daemon.acts import checks

YEAR = [(dt.date(2026, 9, 1), dt.date(2027, 5, 31))]
NOW = dt.datetime(2026, 9, 16, 12, 0, tzinfo=dt.UTC)


def _week(as_of: str, start: str, end: str) -> dict[str, str]:
    return {"as_of": as_of, "week_start": start, "week_end": end}


@pytest.mark.parametrize(
    "shown",
    [
        _week("2026-09-16", "2026-09-14", "2026-09-19"),
        _week("2026-09-20", "2026-09-14", "2026-09-19"),  # built on a Sunday
        _week("2026-09-01", "2026-08-31", "2026-09-05"),  # the year starts on a Tuesday
    ],
)
def test_the_weeks_the_builder_writes_pass(shown: dict[str, str]) -> None:
    checks.shown_week(shown, dt.date(2026, 9, 20), YEAR)


@pytest.mark.parametrize(
    ("shown", "code"),
    [
        (_week("2026-09-16", "2026-09-19", "2026-09-14"), "not_a_school_week"),
        (_week("2026-09-13", "2026-09-14", "2026-09-19"), "not_a_school_week"),
        (_week("2026-08-26", "2026-08-24", "2026-08-29"), "week_outside_school_year"),
        (_week("2026-09-21", "2026-09-21", "2026-09-26"), "shown_in_future"),
    ],
)
def test_weeks_that_are_not_school_weeks_are_refused(shown: dict[str, str], code: str) -> None:
    with pytest.raises(checks.ActRefused) as refused:
        checks.shown_week(shown, dt.date(2026, 9, 20), YEAR)
    assert (refused.value.status, refused.value.code) == (422, code)


def test_no_academic_year_in_the_journal_is_said_so() -> None:
    with pytest.raises(checks.ActRefused, match="none imported"):
        checks.shown_week(_week("2026-09-16", "2026-09-14", "2026-09-19"), NOW.date(), [])


@pytest.mark.parametrize(
    ("claimed", "code"),
    [
        (NOW + checks.CLOCK_SKEW + dt.timedelta(seconds=1), "occurred_in_future"),
        (NOW - dt.timedelta(days=14, seconds=1), "occurred_too_late"),
    ],
)
def test_times_out_of_the_window_are_refused(claimed: dt.datetime, code: str) -> None:
    with pytest.raises(checks.ActRefused) as refused:
        checks.claimed_time(claimed, NOW, 14)
    assert refused.value.code == code


@pytest.mark.parametrize(
    "claimed", [NOW + checks.CLOCK_SKEW, NOW - dt.timedelta(days=14), NOW - dt.timedelta(hours=1)]
)
def test_times_inside_the_window_pass(claimed: dt.datetime) -> None:
    checks.claimed_time(claimed, NOW, 14)


def test_not_before_reads_stored_times_and_allows_the_clock_skew() -> None:
    since = "2026-09-16 11:00:00.000000+00:00"  # as SQLite may give an aware time back
    checks.not_before(NOW - dt.timedelta(hours=1) - checks.CLOCK_SKEW, since, "c", "x", "f")
    with pytest.raises(checks.ActRefused, match="f 2026-09-16T10:54:59Z is before x"):
        checks.not_before(NOW - dt.timedelta(minutes=65, seconds=1), since, "c", "x", "f")
    checks.not_before(dt.datetime(2001, 1, 1, tzinfo=dt.UTC), None, "c", "x", "f")


def test_page_versions_are_checked_once_any_is_recorded() -> None:
    checks.page_version("ab" * 32, set())  # a page built before versions were recorded
    checks.page_version("ab" * 32, {"ab" * 32, "cd" * 32})
    with pytest.raises(checks.ActRefused, match="never built for this login"):
        checks.page_version("ef" * 32, {"ab" * 32})
