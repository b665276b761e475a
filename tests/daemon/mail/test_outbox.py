"""The outbox: events pushed upstream once each, retried with backoff that survives a
restart, other kinds left to their own senders, and what `otmetka status` shows."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from otmetka.daemon import runtime
from otmetka.daemon.cli import main
from otmetka.daemon.core.config import Config, config_from_dict
from otmetka.daemon.demo.fake_upstream import FakeUpstream
from otmetka.daemon.mail import outbox
from otmetka.db import close_database, models, write_transaction
from otmetka.db import outbox as sync_db
from tests.support.factories import small_school

TOKEN = "outbox-token"
T0 = dt.datetime(2026, 11, 28, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    document = small_school()
    with FakeUpstream(document, [], token=TOKEN) as server:
        yield server


@pytest.fixture
def pushing(
    upstream: FakeUpstream, project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Config]:
    monkeypatch.setenv("OTMETKA_UPSTREAM_TOKEN", TOKEN)
    source = {"url": upstream.url, "push_batch": 3, "retries": 0, "backoff_s": 0.01}
    schedule = {"outbox_retry_max_minutes": 30}
    config = config_from_dict(
        {"source": source, "schedule": schedule}, base_dir=project_dir, env={}
    )
    runtime.open_project(config)  # as the CLI and the daemon do before a flush
    yield config
    close_database()


def _queue(count: int, kind: str = "push_event", at: dt.datetime = T0) -> list[str]:
    keys = [f"ev-{kind}-{n:03d}" for n in range(count)]
    with write_transaction():
        for key in keys:
            sync_db.enqueue(kind, key, {"event_id": key, "kind": "acknowledgement"}, at)
    return keys


def _rows() -> dict[str, models.OutboxItem]:
    return {row.key: row for row in models.OutboxItem.select()}


def test_events_are_pushed_in_batches_and_marked_done(
    pushing: Config, upstream: FakeUpstream
) -> None:
    outbox.flush(pushing, now=T0)  # opens the project
    keys = _queue(7)
    result = outbox.flush(pushing, now=T0 + dt.timedelta(seconds=1))
    assert (result.sent, result.failed) == (7, 0)
    assert sorted(upstream.events) == keys
    assert upstream.events[keys[0]] == {
        "event_id": keys[0],
        "type": "event",
        "data": {"event_id": keys[0], "kind": "acknowledgement"},
    }
    assert sum(r.startswith("POST") for r in upstream.requests) == 3  # 3 + 3 + 1
    assert all(row.done_at is not None for row in _rows().values())
    assert sync_db.get_fact(outbox.OK_FACT) == {"at": "2026-11-28T10:00:01+00:00", "sent": 7}
    assert outbox.flush(pushing, now=T0 + dt.timedelta(minutes=1)).sent == 0


def test_a_key_is_queued_once(pushing: Config) -> None:
    outbox.flush(pushing, now=T0)
    with write_transaction():
        assert sync_db.enqueue("push_event", "ev-1", {"a": 1}, T0)
        assert not sync_db.enqueue("push_event", "ev-1", {"a": 2}, T0)
    assert json.loads(_rows()["ev-1"].payload) == {"a": 1}


def test_backoff_doubles_from_a_minute_up_to_the_cap() -> None:
    longest = dt.timedelta(minutes=30)
    minute = dt.timedelta(minutes=1)
    waits = [(outbox.next_try(n, T0, longest) - T0) / minute for n in range(8)]
    assert waits == [1, 2, 4, 8, 16, 30, 30, 30]


def test_upstream_down_means_backoff_that_survives_a_restart(
    pushing: Config, upstream: FakeUpstream
) -> None:
    outbox.flush(pushing, now=T0)
    keys = _queue(2)
    upstream.inject("http500", path="events", times=None)
    first = outbox.flush(pushing, now=T0)
    assert (first.sent, first.failed) == (0, 2) and "answered 500" in first.summary()
    row = _rows()[keys[0]]
    assert row.attempts == 1 and "answered 500" in row.last_error
    assert row.next_try == dt.datetime(2026, 11, 28, 10, 1)  # stored naive UTC
    close_database()  # a restart: what follows comes from the database
    assert outbox.flush(pushing, now=T0 + dt.timedelta(seconds=59)).failed == 0  # not due
    assert _rows()[keys[0]].attempts == 1
    assert outbox.flush(pushing, now=T0 + dt.timedelta(minutes=1)).failed == 2
    row = _rows()[keys[0]]
    assert row.attempts == 2 and row.next_try == dt.datetime(2026, 11, 28, 10, 3)
    upstream.clear_faults()
    assert outbox.flush(pushing, now=T0 + dt.timedelta(minutes=3)).sent == 2
    assert sorted(upstream.events) == keys
    assert sync_db.outbox_backlog()["total"] == 0


def test_an_event_upstream_refuses_keeps_its_reason(
    pushing: Config, upstream: FakeUpstream
) -> None:
    outbox.flush(pushing, now=T0)
    (key,) = _queue(1)
    upstream.events[key] = {"event_id": key, "type": "event", "data": {"other": True}}
    result = outbox.flush(pushing, now=T0)
    assert result.failed == 1
    assert "upstream refused it: this event_id was received before" in _rows()[key].last_error


def test_a_repeat_upstream_already_has_counts_as_delivered(
    pushing: Config, upstream: FakeUpstream
) -> None:
    outbox.flush(pushing, now=T0)
    (key,) = _queue(1)
    upstream.receive([{"event_id": key, "type": "event",
                       "data": {"event_id": key, "kind": "acknowledgement"}}])  # fmt: skip
    assert outbox.flush(pushing, now=T0).sent == 1
    assert upstream.deliveries == [key, key] and len(upstream.events) == 1


def test_without_an_upstream_events_wait_untouched(project_dir: Path) -> None:
    config = config_from_dict({}, base_dir=project_dir, env={})
    runtime.open_project(config)
    outbox.flush(config, now=T0)
    (key,) = _queue(1)
    result = outbox.flush(config, now=T0)
    assert result.waiting["push_event"].startswith("source.url is not set")
    assert _rows()[key].attempts == 0
    close_database()


def test_mail_is_left_to_the_mailer(pushing: Config, upstream: FakeUpstream) -> None:
    assert {"push_event", "local_change", "mail"} <= set(outbox.registered_kinds())
    outbox.flush(pushing, now=T0)
    (letter,) = _queue(1, kind="mail")
    (change,) = _queue(1, kind="local_change")
    result = outbox.flush(pushing, now=T0)
    assert result.sent == 1 and "mail.enabled is false" in result.waiting["mail"]
    assert upstream.events[change]["type"] == "local_change"
    row = _rows()[letter]
    assert row.done_at is None and row.attempts == 0


def test_cli_flush_and_status(
    upstream: FakeUpstream,
    runner: CliRunner,
    config_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config_file.write_text(
        f"site:\n  kdf_iterations: 100000\nsource:\n  url: {upstream.url}\n  retries: 0\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("OTMETKA_UPSTREAM_TOKEN", TOKEN)
    args = ["--config", str(config_file)]
    assert runner.invoke(main, [*args, "outbox", "flush"]).exit_code == 0
    _queue(2, at=sync_db.now_utc())
    close_database()
    upstream.inject("http500", times=1)
    failed = runner.invoke(main, [*args, "outbox", "flush"])
    assert "outbox: sent 0; 2 failed and will be retried; last error: upstream" in failed.output
    close_database()
    status = runner.invoke(main, [*args, "status"])
    assert "outbox backlog: push_event 2" in status.output
    assert "outbox last error: upstream POST" in status.output
    assert "outbox last successful send: never" in status.output
    assert status.exit_code == 0  # no daemon expected here
    close_database()
    with write_transaction():
        models.OutboxItem.update(next_try=dt.datetime(2000, 1, 1)).execute()
    close_database()
    sent = runner.invoke(main, [*args, "outbox", "flush"])
    assert "outbox: sent 2" in sent.output
    close_database()
    status = runner.invoke(main, [*args, "status"])
    assert "outbox backlog: empty" in status.output
    assert "outbox last successful send: 20" in status.output and "(2 items)" in status.output
    close_database()
