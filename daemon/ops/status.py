"""The daemon's health for `otmetka status`: whether it runs, how old its last good pull
is, which jobs failed, and the outbox backlog."""

from __future__ import annotations

import datetime as dt
from typing import Any

from otmetka.daemon.core import pidfile
from otmetka.daemon.core.config import Config
from otmetka.daemon.exchange import http
from otmetka.daemon.mail import outbox


def _age_minutes(stamp: str | None, now: dt.datetime) -> float | None:
    if not stamp:
        return None
    return (now - dt.datetime.fromisoformat(stamp)).total_seconds() / 60


def _pull_lines(config: Config, expected: bool, now: dt.datetime) -> tuple[list[str], bool]:
    facts = http.last_pull()
    if config.source.kind != "http" and not facts:
        return [], True
    ok_at = facts.get("last_ok_at")
    lines = [
        f"last pull: {ok_at} ({facts.get('last_records', 0)} records, cursor {facts.get('cursor')})"
        if ok_at
        else "last pull: never succeeded"
    ]
    if facts.get("last_error_at") and (not ok_at or facts["last_error_at"] >= ok_at):
        lines.append(f"last pull failed at {facts['last_error_at']}: {facts.get('last_error')}")
    age, limit = _age_minutes(ok_at, now), config.schedule.max_pull_age_minutes
    if expected and config.source.kind == "http" and (age is None or age > limit):
        shown = "no good pull yet" if age is None else f"the last good pull is {age:.0f} min old"
        lines.append(f"PROBLEM: {shown} (limit schedule.max_pull_age_minutes = {limit})")
        return lines, False
    return lines, True


def _job_lines(status: dict[str, Any] | None) -> list[str]:
    jobs = (status or {}).get("jobs", {})
    return [
        f"job {name}: failed at {job.get('last_error_at')}: {job.get('last_error')}"
        for name, job in sorted(jobs.items())
        if job.get("ok") is False
    ]


def health(
    config: Config, *, expect_daemon: bool = False, now: dt.datetime | None = None
) -> tuple[list[str], bool]:
    """Status lines about the daemon, pulls and the outbox, and whether all is well.

    The daemon counts as expected when its pid file exists (it is written at start and
    removed only by a clean stop, so it outlives a crash) or when asked (--expect-daemon,
    for monitoring). Only then do "down" and "pull too old" make the status unhealthy: a
    school that syncs by hand or by USB stick is not alarmed by a daemon it never ran.
    """
    state = pidfile.probe(config)
    expected = expect_daemon or state.expected
    lines = [state.line]
    if expected and not state.running and not state.expected:
        lines[0] = f"{state.line}; PROBLEM: the daemon is expected to run (--expect-daemon)"
    pull_lines, pull_ok = _pull_lines(config, expected, now or dt.datetime.now(dt.UTC))
    lines += pull_lines + _job_lines(state.status if state.running else None)
    lines += outbox.status_lines()
    return lines, pull_ok and (state.running or not expected)
