"""Power-cut tests: `otmetka run` is killed with SIGKILL in the middle of a large pull and
in the middle of an outbox push, then started again. The database must be intact, hold no
duplicates, keep its cursor in step with its data, and end up exactly as a clean import;
upstream must end up with every event exactly once."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from otmetka.daemon.core.config import load_config
from otmetka.daemon.demo.fake_upstream import FakeUpstream
from otmetka.daemon.demo.school import generate_school
from otmetka.db import close_database, open_database, write_transaction
from otmetka.db import outbox as sync_db
from tests.support.sync_support import (
    clean_import,
    daemon_process,
    integrity,
    journal_of,
    query,
    stored_cursor,
    wait_for,
    write_project,
)

TOKEN = "crash-token"
ENV = {"OTMETKA_UPSTREAM_TOKEN": TOKEN}
AS_OF = dt.date(2026, 11, 27)
STUDENTS = 300  # about 51,000 changes
PAGE = 2500


def _offset(cursor: str | None) -> int:
    return int(cursor[1:]) if cursor else 0


def _ids_by_type(database: Path) -> Counter[tuple[str, str]]:
    from otmetka.db import models

    found: Counter[tuple[str, str]] = Counter()
    for name, model in models.JOURNAL_TABLES.items():
        table = model._meta.table_name
        found.update((name, row[0]) for row in query(database, f'SELECT id FROM "{table}"'))
    return found


@pytest.mark.slow
def test_killed_in_the_middle_of_a_pull_resumes_to_a_clean_import(project_dir: Path) -> None:
    document = generate_school(students=STUDENTS, seed=5, as_of=AS_OF)
    changes = document["changes"]
    with FakeUpstream(document, changes, token=TOKEN) as upstream:
        upstream.inject("delay", path="changes", times=None, seconds=0.1)
        config_path = write_project(
            project_dir, source={"kind": "http", "url": upstream.url, "page_limit": PAGE}
        )
        database = load_config(config_path).database_path()
        assert database is not None
        with daemon_process(config_path, ENV) as process:
            wait_for(lambda: _offset(stored_cursor(database)) >= 4 * PAGE, 60, "four pages")
            process.kill()
            process.wait(timeout=10)
        cursor = stored_cursor(database)
        assert 4 * PAGE <= _offset(cursor) < len(changes), "the kill came too late"

        # After the kill: intact, no page twice, and exactly the pages the cursor covers.
        assert integrity(database) == "ok"
        logged = query(database, "SELECT cursor FROM import_log WHERE source = 'http'")
        assert len(logged) == len(set(logged)) == _offset(cursor) // PAGE
        covered = Counter((c["type"], c["id"]) for c in changes[: _offset(cursor)])
        assert _ids_by_type(database) == Counter(set(covered))

        upstream.clear_faults()
        with daemon_process(config_path, ENV):
            wait_for(lambda: stored_cursor(database) == f"c{len(changes)}", 60, "the resume")
            wait_for(lambda: _built(database), 30, "the build after the pull")
        assert integrity(database) == "ok"
        resumed_log = query(database, "SELECT cursor FROM import_log WHERE source = 'http'")
        assert len(resumed_log) == len(set(resumed_log)) == -(-len(changes) // PAGE)
    resumed = journal_of(database)
    assert resumed == clean_import(document, project_dir / "clean.sqlite3")


def _built(database: Path) -> bool:
    rows = query(database, "SELECT count(*) FROM dirty_person")
    return rows[0][0] == 0


def _queue_events(database_url: str, count: int) -> list[str]:
    open_database(database_url)
    from otmetka.db import migrate

    migrate()
    keys = [f"ack-{n:04d}" for n in range(count)]
    try:
        with write_transaction():
            for key in keys:
                payload = {"event_id": key, "kind": "acknowledgement", "page": "p-1"}
                sync_db.enqueue(
                    "push_event", key, payload, dt.datetime(2026, 11, 28, tzinfo=dt.UTC)
                )
    finally:
        close_database()
    return keys


@pytest.mark.slow
def test_killed_during_the_outbox_push_upstream_gets_each_event_once(project_dir: Path) -> None:
    document = generate_school(students=20, seed=5, as_of=AS_OF)
    with FakeUpstream(document, [], token=TOKEN) as upstream:
        # Upstream stores each batch, then is slow to answer: the kill lands while the
        # daemon waits for the confirmation of events upstream already has.
        upstream.inject("delay_after", path="events", times=None, seconds=1.0)
        config_path = write_project(
            project_dir,
            source={"kind": "inbox", "url": upstream.url, "push_batch": 20, "timeout_s": 10},
        )
        config = load_config(config_path)
        keys = _queue_events(config.database.url, 200)
        database = config.database_path()
        assert database is not None
        with daemon_process(config_path, ENV) as process:
            wait_for(lambda: len(upstream.deliveries) >= 60, 60, "three batches upstream")
            process.kill()
            process.wait(timeout=10)
        assert integrity(database) == "ok"
        done = query(database, "SELECT count(*) FROM outbox_item WHERE done_at IS NOT NULL")
        assert done[0][0] < len(upstream.events), "the kill should land before a confirmation"

        upstream.clear_faults()
        with daemon_process(config_path, ENV):
            wait_for(lambda: _backlog(database) == 0, 60, "the outbox to drain")
        assert integrity(database) == "ok"
    assert sorted(upstream.events) == keys  # every event, each stored once
    repeats = [key for key, n in Counter(upstream.deliveries).items() if n > 1]
    assert repeats, "the unconfirmed batch is sent again after the restart"
    assert all(upstream.events[key]["data"]["event_id"] == key for key in keys)


def _backlog(database: Path) -> int:
    try:
        rows = query(database, "SELECT count(*) FROM outbox_item WHERE done_at IS NULL")
    except sqlite3.OperationalError:
        return -1
    return int(rows[0][0])
