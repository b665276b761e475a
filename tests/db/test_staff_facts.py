"""What the staff pages read besides the journal: parents' phones, and the deputy heads'
pages older than the last act."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.exchange.importer import import_document
from otmetka.db import acts as events
from otmetka.db import build_state, staff_facts, write_transaction
from tests.support.analytics_factories import analytics_school

NOW = dt.datetime(2026, 9, 16, 9, 0, tzinfo=dt.UTC)
DEPUTY, TEACHER = ("teacher", "t-dep"), ("teacher", "t-5")


def _school(phone: str = "") -> None:
    document = analytics_school()
    for row in document["changes"]:
        if row["type"] == "guardian" and row["id"] == "g-c":
            row["data"]["phone"] = phone
    import_document(document, "school.json", MarkRules())


def _act(event_id: str, received: dt.datetime) -> None:
    with write_transaction():
        events.add(
            event_id=event_id,
            kind="acknowledgement",
            credential_id=None,
            guardian_id="g-a",
            channel="paper",
            payload="{}",
            response="{}",
            occurred_at=received,
            received_at=received,
        )


def test_phones_of_the_guardians_who_have_one(file_db: Path) -> None:
    _school(" +7 912 000-00-00 ")
    assert staff_facts.guardian_phones() == {"g-c": "+7 912 000-00-00"}


def test_a_deputy_page_older_than_the_last_act_is_behind(file_db: Path) -> None:
    _school()
    with write_transaction():
        build_state.record_pages([("page-dep", DEPUTY, "h1"), ("page-t5", TEACHER, "h2")], NOW)
    assert staff_facts.deputies_behind_acts() == set()  # no act yet
    _act("e-1", NOW + dt.timedelta(seconds=5))
    assert staff_facts.deputies_behind_acts() == {"t-dep"}  # the class teacher is not a deputy
    with write_transaction():
        build_state.record_pages([("page-dep", DEPUTY, "h3")], NOW + dt.timedelta(seconds=6))
    assert staff_facts.deputies_behind_acts() == set()
    with write_transaction():  # a rotated login's old page waits for removal: not behind
        build_state.record_pages([("page-old", DEPUTY, "h0")], NOW - dt.timedelta(days=1))
    assert staff_facts.deputies_behind_acts() == set()
