"""Breach reminders: working time by the production calendar, once per report and stage,
and the scheduler's check."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from otmetka.daemon.core.config import config_from_dict
from otmetka.daemon.mail import reminders, smtp
from otmetka.db import models
from tests.daemon.mail.mail_support import MOSCOW, make_config
from tests.support.servers import smtp_server


def utc_naive(moment: dt.datetime) -> dt.datetime:
    """As the endpoint stores times in the breach register."""
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def add_breach(report_at: dt.datetime, deadline: dt.datetime, *, state: str = "open") -> str:
    """A breach report as the endpoint leaves it: event, revoked credential, register row."""
    report_at, deadline = utc_naive(report_at), utc_naive(deadline)
    credential = models.Credential.create(
        login=f"leak{models.Credential.select().count()}",
        person_kind="guardian",
        person_id="g-1",
        page_id=f"page{models.Credential.select().count()}",
        salt=b"0123456789abcdef",
        derived_key=b"k" * 32,
        kdf_iterations=100_000,
        token_hash=f"hash{models.Credential.select().count()}",
        state="revoked",
        issued_at=report_at,
    )
    event = models.Event.create(
        event_id=f"ev-{credential.login}",
        kind="breach_report",
        credential=credential,
        guardian_id="g-1",
        channel="electronic",
        payload="{}",
        response="{}",
        occurred_at=report_at,
        received_at=report_at,
    )
    report = models.BreachReport.create(
        event=event,
        credential=credential,
        received_at=report_at,
        deadline=deadline,
        state=state,
    )
    return str(report.get_id())


def msk(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, minute, tzinfo=MOSCOW)


def test_working_time_skips_nights_weekends_and_holidays(school_db: Path) -> None:
    config = make_config(school_db, 25)
    between = reminders.working_time_between
    # Friday 15:00 to Monday 10:00: three hours on Friday, one on Monday.
    assert between(msk(6, 15), msk(9, 10), config) == dt.timedelta(hours=4)
    # Tuesday 17:00 to Thursday 10:00 across 4 November (Unity Day, a public holiday).
    assert between(msk(3, 17), msk(5, 10), config) == dt.timedelta(hours=2)
    assert between(msk(9, 10), msk(6, 15), config) == dt.timedelta(0)


def test_breach_reminders_once_per_stage(school_db: Path) -> None:
    config = make_config(school_db, 25)
    report = add_breach(msk(5, 16), msk(6, 18))  # Thursday 16:00, deadline Friday 18:00
    add_breach(msk(5, 16), msk(6, 18), state="closed")
    check = reminders.check_breach_deadlines
    assert check(config, msk(6, 13, 59)).queued == 0  # 4 h 1 min of work left
    assert check(config, msk(6, 14)).queued == 1  # nearing
    assert check(config, msk(6, 15)).queued == 0  # already reminded
    assert check(config, msk(6, 18)).queued == 1  # overdue
    assert check(config, msk(9, 9)).queued == 0
    keys = [r.key for r in models.OutboxItem.select().order_by(models.OutboxItem.created_at)]
    assert keys == [f"breach-reminder:{report}:nearing", f"breach-reminder:{report}:overdue"]
    with smtp_server() as (port, inbox):
        smtp.flush_mail(make_config(school_db, port), now=msk(9, 10))
    subjects = {str(m["Subject"]).split(":")[1].split("(")[0].strip(): m for m in inbox.messages}
    nearing, overdue = subjects["срок рассмотрения истекает"], subjects["срок рассмотрения истёк"]
    assert str(nearing["Subject"]).startswith("Утечка логина: срок рассмотрения истекает")
    assert "6 ноября 2026, 18:00" in str(nearing["Subject"])
    text = nearing.get_body(("plain",))
    assert text is not None and "осталось рабочих часов: 4" in text.get_content()
    assert "получено: 5 ноября 2026, 16:00" in text.get_content()
    assert "логин leak0, родитель: Иванова Мария, 7Б" in text.get_content()
    assert f"otmetka breach close --id {report}" in text.get_content()
    overdue_text = overdue.get_body(("plain",))
    assert overdue_text is not None and "не закрыто" in overdue_text.get_content()
    assert sorted(inbox.envelopes[0].rcpt_tos) == ["head@school.ru", "it@school.ru"]


def test_breach_reminders_need_an_address(school_db: Path) -> None:
    config = config_from_dict({"mail": {"enabled": True}}, base_dir=school_db, env={})
    add_breach(msk(5, 16), msk(6, 18))
    result = reminders.check_breach_deadlines(config, msk(6, 18))
    assert result.queued == 0 and "head_email and school.support_email" in result.summary()


def test_a_saturday_made_working_by_the_production_calendar_counts(school_db: Path) -> None:
    """1 November 2025 is a Saturday worked in place of Monday 3 November (Unity Day moved)."""
    config = make_config(school_db, 25)
    saturday = dt.date(2025, 11, 1)
    start = dt.datetime.combine(saturday, dt.time(8), tzinfo=MOSCOW)
    end = dt.datetime.combine(saturday, dt.time(20), tzinfo=MOSCOW)
    assert reminders.working_time_between(start, end, config) == dt.timedelta(hours=9)
    monday = start + dt.timedelta(days=2)
    assert reminders.working_time_between(
        monday, end + dt.timedelta(days=2), config
    ) == dt.timedelta(0)


def test_scheduler_check(school_db: Path) -> None:
    """The check the scheduler's register_deadline_check takes: (config) -> line."""
    real_now = dt.datetime.now(dt.UTC)
    add_breach(real_now - dt.timedelta(days=2), real_now - dt.timedelta(hours=1))
    nobody = config_from_dict({"mail": {"enabled": True}}, base_dir=school_db, env={})
    with pytest.raises(smtp.MailError, match=r"head_email and school\.support_email"):
        reminders.breach_reminder_check(nobody)
    config = make_config(school_db, 25)
    assert reminders.breach_reminder_check(config) == "breach reminders: queued 1"
    assert reminders.breach_reminder_check(config) is None
