"""Breach reminders: the head of school and support are written to when a breach report nears
its deadline (REMIND_BEFORE working hours left) and again when it is past it."""

from __future__ import annotations

import datetime as dt
import logging

from otmetka.daemon.core import calendar
from otmetka.daemon.core.config import Config
from otmetka.daemon.mail import letters
from otmetka.daemon.mail.letters import BreachDeadline
from otmetka.daemon.mail.smtp import MailError, QueueResult, now_utc, queue_letter
from otmetka.db import acts as events
from otmetka.db import credentials as credentials_db
from otmetka.db import mail as mail_db
from otmetka.db import write_transaction

log = logging.getLogger("otmetka.mail")

WORK_START, WORK_END = dt.time(9, 0), dt.time(18, 0)
REMIND_BEFORE = dt.timedelta(hours=4)  # of working time left before a breach deadline
ROLES = {"guardian": "родитель", "student": "ученик", "teacher": "учитель"}


def working_time_between(start: dt.datetime, end: dt.datetime, config: Config) -> dt.timedelta:
    """Working hours (09:00–18:00 of working days, school time) from `start` to `end`."""
    if end <= start:
        return dt.timedelta(0)
    zone = config.school.zone()
    first, last = start.astimezone(zone).date(), end.astimezone(zone).date()
    if (last - first).days > 60:  # a deadline this far away is not near
        return dt.timedelta(days=60)
    total = dt.timedelta(0)
    # The production calendar, as the deadline itself is counted: a transferred Saturday works.
    for day in calendar.working_days(first, last):
        opens = dt.datetime.combine(day, WORK_START, tzinfo=zone)
        closes = dt.datetime.combine(day, WORK_END, tzinfo=zone)
        total += max(dt.timedelta(0), min(closes, end) - max(opens, start))
    return total


def breach_stage(breach: BreachDeadline, now: dt.datetime, config: Config) -> str | None:
    """ "overdue" past the deadline, "nearing" within REMIND_BEFORE working hours of it."""
    if now >= breach.deadline:
        return "overdue"
    if working_time_between(now, breach.deadline, config) <= REMIND_BEFORE:
        return "nearing"
    return None


def open_breach_deadlines() -> list[BreachDeadline]:
    """Open reports of the breach register, as the reminders need them."""
    reports = events.breaches()
    people = [(r.credential.person_kind, r.credential.person_id) for r in reports]
    labels = credentials_db.labels_of(people)
    found = []
    for report, key in zip(reports, people, strict=True):
        name, class_name = labels.get(key, ("", ""))
        who = ", ".join(part for part in (name, class_name) if part)
        role = ROLES.get(key[0], key[0])
        found.append(
            BreachDeadline(
                report_id=str(report.get_id()),
                received_at=mail_db.as_utc(report.received_at),
                deadline=mail_db.as_utc(report.deadline),
                about=f"логин {report.credential.login}, {role}" + (f": {who}" if who else ""),
            )
        )
    return found


def check_breach_deadlines(config: Config, now: dt.datetime) -> QueueResult:
    """Scheduler hook: remind the head of school and support of reports near or past their
    deadline; once per report and stage, however often it is called."""
    school = config.school
    recipients = [a for a in (school.head_email, school.support_email) if a]
    result = QueueResult("breach reminders", mail_enabled=config.mail.enabled)
    due = [(b, breach_stage(b, now, config)) for b in open_breach_deadlines()]
    due = [(b, stage) for b, stage in due if stage is not None]
    if due and not recipients:
        result.skipped.append("school.head_email and school.support_email are both empty")
        log.error("breach reminders not queued: %s", result.skipped[0])
        return result
    with write_transaction():
        for breach, stage in due:
            assert stage is not None
            left = working_time_between(now, breach.deadline, config)
            letter = letters.breach_reminder_letter(config, breach, stage, left, recipients)
            key = f"breach-reminder:{breach.report_id}:{stage}"
            if queue_letter(config, key, letter, now):
                result.queued += 1
            else:
                result.already += 1
    return result


def breach_reminder_check(config: Config) -> str | None:
    """Queue the reminders due now; a line for the log, None when there were none.

    Raises when reminders are due and nobody can receive them, so the daemon's status
    shows the failing job instead of a silent log line.
    """
    result = check_breach_deadlines(config, now_utc())
    if result.skipped:
        raise MailError(result.summary())
    return result.summary() if result.queued else None
