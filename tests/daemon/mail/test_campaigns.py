"""The digest schedule: once per scheduled moment, caught up when missed, skipped without
mail, and the scheduler's check."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from otmetka.daemon.mail import campaigns
from otmetka.db import models
from tests.daemon.mail.mail_support import MOSCOW, NOW, make_config


def test_digest_runs_once_per_scheduled_moment(school_db: Path) -> None:
    config = make_config(school_db, 25)  # friday 18:00 Moscow by default
    models.Event.create(
        event_id="c-1",
        kind="consent",
        guardian_id="g-1",
        channel="electronic",
        payload=json.dumps({"decision": "granted"}),
        response="{}",
        occurred_at=NOW,
        received_at=NOW,
    )
    september = dt.timezone(dt.timedelta(hours=3))

    def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
        return dt.datetime(2026, 9, day, hour, minute, tzinfo=september)

    assert campaigns.digest_slot(config, at(18, 18)) == at(18, 18)
    assert campaigns.digest_slot(config, at(18, 17, 59)) == at(11, 18)
    run = campaigns.run_scheduled_digest
    assert run(config, at(16, 12)) is None  # installed on Wednesday: last Friday is past
    assert models.OutboxItem.select().count() == 0
    first = run(config, at(18, 18))
    assert first is not None and first.queued == 1
    assert run(config, at(18, 18, 5)) is None
    assert run(config, at(24, 12)) is None
    later = run(config, at(26, 9))  # the server was off on Friday evening: caught up
    assert later is not None
    assert later.queued == 0 and later.nothing_new == 1


def test_schedule_passes_without_mail(school_db: Path) -> None:
    config = make_config(school_db, 25, enabled=False)
    friday = dt.datetime(2026, 9, 18, 18, 0, tzinfo=MOSCOW)
    assert campaigns.run_scheduled_digest(config, friday) is None
    enabled = make_config(school_db, 25)
    assert campaigns.run_scheduled_digest(enabled, friday + dt.timedelta(hours=1)) is None
    assert models.OutboxItem.select().count() == 0


def test_scheduler_check(school_db: Path) -> None:
    """The check the scheduler's register_deadline_check takes: (config) -> line."""
    config = make_config(school_db, 25)
    campaigns.digest_check(config)
    assert campaigns.digest_check(config) is None  # once per scheduled moment
