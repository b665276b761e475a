"""The audit chain: every act appends an entry hashing the one before; `otmetka audit
verify` exits 1 and names the first broken entry after an edit or a deletion made with the
sqlite3 client, behind otmetka's back."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from otmetka.daemon.acts import paper
from otmetka.daemon.cli import main
from otmetka.db import audit, close_database, models
from tests.support.acts_support import MOTHER, School, build_school, make_config, write_config_file


@pytest.fixture
def school(project_dir: Path) -> Iterator[School]:
    """Three acts on paper: consent (seq 1), acknowledgement (seq 2), breach (seq 3-…)."""
    built = build_school(make_config(project_dir))
    config, login = built.config, built.login(MOTHER)
    paper.register_consent(config, login=login, decision="granted", paper=True)
    paper.register_ack(config, login=login, paper=True, date="2026-09-16")
    moment = dt.datetime.now(dt.UTC)
    paper.register_breach(config, login=built.login("Петров Иван"), received_at=moment)
    yield built
    close_database()


def _sqlite(school: School, sql: str) -> None:
    """Edit the database the way an intruder would: with the sqlite3 client."""
    path = school.config.database_path()
    subprocess.run(["sqlite3", str(path), sql], check=True, capture_output=True, timeout=30)


def _verify(school: School, runner: CliRunner) -> tuple[int, str]:
    config_path = write_config_file(school.config.base_dir)
    result = runner.invoke(main, ["--config", str(config_path), "audit", "verify"])
    return result.exit_code, result.output


def _seq_of(event_kind: str) -> int:
    event = models.Event.get(models.Event.kind == event_kind)
    entry = models.AuditEntry.get(models.AuditEntry.subject == f"event:{event.event_id}")
    return int(entry.seq)


def test_every_entry_holds_the_hash_of_the_one_before(school: School, runner: CliRunner) -> None:
    entries = list(models.AuditEntry.select().order_by(models.AuditEntry.seq))
    actions = [e.action for e in entries]
    assert actions[:2] == ["event.record", "event.record"]
    assert {"credential.revoke", "credential.issue", "breach.open"} <= set(actions)
    assert entries[0].prev_hash == audit.GENESIS
    for before, after in itertools.pairwise(entries):
        assert after.prev_hash == before.entry_hash and after.seq == before.seq + 1
    assert all(e.actor.startswith("staff:") for e in entries)
    code, output = _verify(school, runner)
    assert code == 0 and f"intact: {len(entries)} entries" in output


def test_an_edited_entry_is_named(school: School, runner: CliRunner) -> None:
    _sqlite(school, "UPDATE audit_entry SET actor = 'staff:mallory' WHERE seq = 2")
    code, output = _verify(school, runner)
    assert code == 1 and "audit chain broken at entry #2:" in output and "edited" in output


def test_an_edited_detail_breaks_the_chain_at_that_entry(school: School, runner: CliRunner) -> None:
    _sqlite(school, "UPDATE audit_entry SET details = '{}' WHERE seq = 3")
    code, output = _verify(school, runner)
    assert code == 1 and "broken at entry #3:" in output


def test_a_deleted_entry_is_named(school: School, runner: CliRunner) -> None:
    _sqlite(school, "DELETE FROM audit_entry WHERE seq = 2")
    code, output = _verify(school, runner)
    assert code == 1 and "broken at entry #2: missing" in output


def test_a_recomputed_entry_still_breaks_the_next_one(school: School, runner: CliRunner) -> None:
    """Someone who edits an entry and fixes its own hash is caught by the next entry."""
    row = models.AuditEntry.get(models.AuditEntry.seq == 1)
    forged_hash = audit.entry_hash(
        1, audit.stamp(row.at), "staff:mallory", row.action, row.subject, row.details, row.prev_hash
    )
    _sqlite(
        school,
        "UPDATE audit_entry SET actor = 'staff:mallory', "
        f"entry_hash = '{forged_hash}' WHERE seq = 1",
    )
    code, output = _verify(school, runner)
    assert code == 1 and "broken at entry #2: does not follow" in output


def test_an_edited_event_is_named_by_the_entry_that_recorded_it(
    school: School, runner: CliRunner
) -> None:
    seq = _seq_of("acknowledgement")
    payload = json.dumps({"date": "2026-09-01", "login": "forged"})
    _sqlite(school, f"UPDATE event SET payload = '{payload}' WHERE kind = 'acknowledgement'")
    code, output = _verify(school, runner)
    assert code == 1 and f"broken at entry #{seq}:" in output and "edited after" in output


def test_a_validity_flip_is_named(school: School, runner: CliRunner) -> None:
    seq = _seq_of("consent")
    _sqlite(school, "UPDATE event SET invalid = 1 WHERE kind = 'consent'")
    code, output = _verify(school, runner)
    assert code == 1 and f"broken at entry #{seq}:" in output and "validity" in output


def test_a_deleted_event_is_named(school: School, runner: CliRunner) -> None:
    seq = _seq_of("acknowledgement")
    _sqlite(school, "DELETE FROM event WHERE kind = 'acknowledgement'")
    code, output = _verify(school, runner)
    assert code == 1 and f"broken at entry #{seq}:" in output and "was deleted" in output


def test_deleting_the_newest_entry_shows_through_its_event(
    school: School, runner: CliRunner
) -> None:
    last = models.AuditEntry.select().count()
    _sqlite(school, "DELETE FROM audit_entry WHERE action = 'breach.open'")
    _sqlite(school, f"DELETE FROM audit_entry WHERE seq > {last - 2}")
    code, output = _verify(school, runner)
    assert code == 1 and "missing: no entry records event:staff-breach-" in output


def test_each_record_keeps_the_claimed_time_beside_the_received_one(
    school: School, runner: CliRunner
) -> None:
    for event in models.Event.select():
        entry = models.AuditEntry.get(models.AuditEntry.subject == f"event:{event.event_id}")
        details = json.loads(entry.details)
        assert details["claimed_at"] == audit.stamp(event.occurred_at)
        assert details["received_at"] == audit.stamp(event.received_at)
    ack = models.Event.get(models.Event.kind == "acknowledgement")
    assert ack.occurred_at < ack.received_at  # a slip signed on 16 September, registered later
    assert _verify(school, runner)[0] == 0
    seq = _seq_of("acknowledgement")
    _sqlite(
        school,
        "UPDATE event SET occurred_at = '2001-01-01 00:00:00' WHERE kind = 'acknowledgement'",
    )
    code, output = _verify(school, runner)
    assert code == 1 and f"broken at entry #{seq}:" in output
