"""What an act may not claim, checked before anything is stored: a time in the future, too
late, before the login was issued or before the consent it needs; a week that is not a
school week; a page version never built for the login. Each refusal is an `ActRefused` the
endpoint answers with (422 and a stable code), and staff registering paper get the same text.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from otmetka.daemon.core.errors import OtmetkaError
from otmetka.site_builder.pages import lookups

# A phone's clock may run a little ahead of or behind the server's; more is not an accident.
CLOCK_SKEW = dt.timedelta(minutes=5)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class ActRefused(OtmetkaError):
    """An act the rules do not allow; `status` is what the endpoint answers with."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def iso(moment: dt.datetime) -> str:
    """UTC, seconds, with Z: how the API writes times."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def aware(value: object) -> dt.datetime:
    """A stored time (naive UTC, or text as SQLite may give it back) as an aware UTC one."""
    moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def _refuse(code: str, message: str) -> ActRefused:
    return ActRefused(422, code, message)


def claimed_time(
    claimed: dt.datetime, received: dt.datetime, window_days: int, field: str = "occurred_at"
) -> None:
    """Not in the future beyond the clock skew; not later than the offline window allows."""
    if claimed > received + CLOCK_SKEW:
        raise _refuse(
            "occurred_in_future",
            f"{field} {iso(claimed)} is after the school server's time {iso(received)}: "
            "the device's clock is wrong; set its date and time and act again",
        )
    if claimed < received - dt.timedelta(days=window_days):
        raise _refuse(
            "occurred_too_late",
            f"{field} {iso(claimed)} is more than {window_days} days before the act reached "
            f"the school ({iso(received)}); an act made offline is accepted for {window_days} "
            "days (endpoint.offline_window_days): open the page again and act again",
        )


def not_before(
    claimed: dt.datetime, since: dt.datetime | None, code: str, what: str, field: str
) -> None:
    """`claimed` cannot precede `since` (the login's issue, the consent): refuse if it does."""
    if since is not None and claimed < aware(since) - CLOCK_SKEW:
        raise _refuse(
            code,
            f"{field} {iso(claimed)} is before {what} ({iso(aware(since))}); "
            "an act cannot precede it: check the device's clock and act again",
        )


def page_version(version: str, built: set[str]) -> None:
    """The version must be one built for this login. A login none was recorded for has a
    page from before versions were recorded: it is believed until its page is rebuilt."""
    if built and version not in built:
        raise _refuse(
            "unknown_page_version",
            f"page_version {version} was never built for this login; "
            "reload the page and acknowledge what it shows",
        )


def _day(shown: dict[str, Any], name: str) -> dt.date:
    return dt.date.fromisoformat(str(shown[name]))


def shown_week(
    shown: dict[str, Any], today: dt.date, years: Iterable[tuple[dt.date, dt.date]]
) -> None:
    """A real school week, as the builder writes it: Monday to Saturday, holding `as_of`,
    not after today, inside an academic year of the journal."""
    start, end, as_of = _day(shown, "week_start"), _day(shown, "week_end"), _day(shown, "as_of")
    monday, saturday = lookups.week_of(start)
    if start != monday or end != saturday:
        raise _refuse(
            "not_a_school_week",
            f"shown.week_start {start} ({WEEKDAYS[start.weekday()]}) to shown.week_end {end} "
            f"is not a school week: it runs from a Monday to the Saturday after it "
            f"(the week of {start} is {monday} to {saturday})",
        )
    if not start <= as_of < start + dt.timedelta(days=7):
        raise _refuse(
            "not_a_school_week",
            f"shown.as_of {as_of} is not in the week {start} to {end} the page shows",
        )
    if as_of > today:
        raise _refuse(
            "shown_in_future",
            f"shown.as_of {as_of} is after today ({today}): no page was built for that day",
        )
    known = list(years)
    if not any(first <= saturday and start <= last for first, last in known):
        spans = ", ".join(f"{first} to {last}" for first, last in known) or "none imported"
        raise _refuse(
            "week_outside_school_year",
            f"the week {start} to {end} is outside every academic year of the journal "
            f"({spans}); reload the page",
        )
