"""`otmetka run`: backups, the job loop that survives failing jobs, the deadline registry,
the pid and status files, a clean stop on SIGTERM, and what `otmetka status` says."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import sqlite3
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from otmetka.daemon.acts import paper
from otmetka.daemon.core import jobs, pidfile
from otmetka.daemon.core.config import Config, config_from_dict, load_config
from otmetka.daemon.core.errors import OtmetkaError
from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.demo.fake_upstream import FakeUpstream
from otmetka.daemon.exchange.importer import import_document
from otmetka.daemon.runner import scheduler
from otmetka.daemon.runtime import open_project
from otmetka.db import acts as events
from otmetka.db import build_state, close_database, models, staff_facts, write_transaction
from tests.support.acts_support import logins_for_everyone
from tests.support.analytics_factories import analytics_school
from tests.support.factories import small_school, write_json
from tests.support.servers import free_port
from tests.support.sync_support import (
    OTMETKA,
    daemon_process,
    query,
    run_log,
    stored_cursor,
    wait_for,
    write_project,
)

TOKEN = "scheduler-token"
NIGHT = dt.datetime(2026, 11, 27, 23, 35, tzinfo=dt.UTC)  # 02:35 in Moscow on the 28th


@pytest.fixture
def project(project_dir: Path) -> Iterator[Config]:
    sections = {
        "endpoint": {"port": free_port()},
        "source": {"inbox_settle_s": 0, "backoff_s": 0.01, "retries": 0},
        "schedule": {"backup_keep": 3},
    }
    yield config_from_dict(
        {"site": {"kdf_iterations": 100_000}, **sections}, base_dir=project_dir, env={}
    )
    close_database()


# --- backups ---------------------------------------------------------------------------------


def test_backup_is_a_consistent_copy_and_old_ones_are_rotated(project: Config) -> None:
    open_project(project)
    import_document(small_school(), "school.json", MarkRules())
    made = [scheduler.backup_now(project, NIGHT + dt.timedelta(days=n)) for n in range(5)]
    kept = scheduler.backups(project.paths.backup_dir)
    assert kept == made[-3:] and kept[0].name == "otmetka-20261130-023500.sqlite3"
    with closing(sqlite3.connect(kept[-1])) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert copy.execute("SELECT count(*) FROM mark").fetchone()[0] == 3


def test_the_backup_is_due_once_a_night_after_its_time(project: Config) -> None:
    before = dt.datetime(2026, 11, 27, 23, 0, tzinfo=dt.UTC)  # 02:00 in Moscow
    assert not scheduler.backup_due(project, before)
    assert scheduler.backup_due(project, NIGHT)
    open_project(project)
    scheduler.backup_now(project, NIGHT)
    assert not scheduler.backup_due(project, NIGHT + dt.timedelta(hours=12))
    assert scheduler.backup_due(project, NIGHT + dt.timedelta(days=1))


def test_a_postgresql_server_out_of_reach_fails_the_backup_cleanly(project_dir: Path) -> None:
    url = f"postgresql://otmetka@127.0.0.1:{free_port()}/school"  # nothing listens there
    config = config_from_dict({"database": {"url": url}}, base_dir=project_dir, env={})
    with pytest.raises(OtmetkaError, match="cannot open the project database"):
        scheduler.backup_now(config)
    assert list(config.paths.backup_dir.iterdir()) == []  # no half-written copy left


# --- deadline checks ------------------------------------------------------------------------


def test_deadline_checks_run_each_and_report_failures(
    project: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    monkeypatch.setattr(jobs, "DEADLINE_CHECKS", {})
    assert scheduler.run_deadline_checks(project) is None  # nothing registered: a no-op

    def broken(config: Config) -> str | None:
        raise RuntimeError("calendar missing")

    def fine(config: Config) -> str | None:
        seen.append(config.school.school_id)
        return "1 report due tomorrow"

    jobs.register_deadline_check("breach", broken)
    jobs.register_deadline_check("other", fine)
    with pytest.raises(OtmetkaError, match="breach: calendar missing"):
        scheduler.run_deadline_checks(project)
    assert seen == ["demo-school"]  # the broken check did not stop the next one


# --- the daemon in this process ---------------------------------------------------------------


def _health(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=5) as answer:
        return int(answer.status)


def test_one_daemon_per_project_and_a_clean_stop(project: Config) -> None:
    daemon = scheduler.Daemon(project)
    daemon.start()
    try:
        assert _health(project.endpoint.port) == 200
        state = pidfile.probe(project)
        assert state.running and f"pid {os.getpid()}" in state.line
        with pytest.raises(OtmetkaError, match="already running"):
            scheduler.Daemon(project, serve=False).start()
    finally:
        daemon.close()
    state = pidfile.probe(project)
    assert not state.running and not state.expected and "stopped cleanly" in state.line
    assert not pidfile.pid_path(project).exists()


def test_a_busy_port_is_one_clear_error_and_leaves_no_pid_file(project: Config) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", project.endpoint.port))
        busy.listen()
        with pytest.raises(
            OtmetkaError, match=f"cannot listen on 127.0.0.1:{project.endpoint.port}"
        ):
            scheduler.Daemon(project).start()
    assert not pidfile.pid_path(project).exists()
    assert not pidfile.probe(project).expected


def test_the_loop_imports_dropped_files_builds_and_survives_a_failing_job(
    project: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = scheduler.Daemon(project, serve=False)
    daemon.start()
    try:
        monkeypatch.setattr(jobs, "DEADLINE_CHECKS", {"broken": _raise})
        daemon.sched.run_all()
        write_json(project.paths.inbox_dir / "school.json", small_school())
        wait_for(lambda: (daemon.tick(), models.ImportLog.select().count())[1], what="import")
        recorded = json.loads(pidfile.status_path(project).read_text("utf-8"))["jobs"]
        assert (
            recorded["deadlines"]["ok"] is False and "boom" in recorded["deadlines"]["last_error"]
        )
        assert (
            recorded["inbox"]["ok"]
            and "school.json: imported 33 records" in recorded["inbox"]["last_result"]
        )
        assert recorded["build"]["ok"] and "built site" in recorded["build"]["last_result"]
        assert (project.paths.inbox_dir / "done" / "school.json").is_file()
        assert not daemon.build_wanted
    finally:
        daemon.close()


def test_pages_marked_by_acts_get_built_without_a_pull(project: Config) -> None:
    daemon = scheduler.Daemon(project, serve=False)
    daemon.start()
    try:
        daemon.pages_waiting()
        assert not daemon.build_wanted
        with write_transaction():
            events.mark_dirty("guardian", "g-1")  # as an act recorded by the endpoint does
        daemon.pages_waiting()
        assert daemon.build_wanted
        daemon.tick()
        assert not daemon.build_wanted and not build_state.any_dirty()
    finally:
        daemon.close()


def test_an_act_reaches_the_class_teacher_and_the_deputy_within_one_refresh(
    project: Config,
) -> None:
    daemon = scheduler.Daemon(project, serve=False, watch=False)
    daemon.start()
    try:
        import_document(analytics_school(), "school.json", MarkRules())
        login = {name: row["login"] for name, row in logins_for_everyone(project).items()}
        daemon.build()
        before = _built_at()
        paper.register_consent(
            project, login=login["Алексеева Алла"], decision="granted", paper=True
        )
        assert staff_facts.deputies_behind_acts() == {"t-dep"}
        daemon.run_job("pages", daemon.pages_waiting)  # as every staff_refresh_seconds
        daemon.tick()  # the build it asked for, in the same pass of the loop
        after = _built_at()
        assert after[("teacher", "t-5")] > before[("teacher", "t-5")]  # the class teacher's
        assert after[("teacher", "t-dep")] > before[("teacher", "t-dep")]  # and the deputy's
        assert staff_facts.deputies_behind_acts() == set() and not build_state.any_dirty()
        daemon.run_job("pages", daemon.pages_waiting)
        assert _built_at() == after  # nothing new: nothing redone
    finally:
        daemon.close()


def _built_at() -> dict[tuple[str, str], dt.datetime]:
    return {(m.person_kind, m.person_id): m.built_at for m in models.BuildManifest.select()}


def test_the_demo_serves_with_the_page_refresh_alone(project: Config) -> None:
    daemon = scheduler.Daemon(project, watch=False, pages_only=True)
    daemon._plan_jobs()
    assert [job.job_func.args[0] for job in daemon.sched.jobs] == ["pages"]  # type: ignore[union-attr]
    assert daemon.sched.jobs[0].interval == project.schedule.staff_refresh_seconds <= 60


def _raise(config: Config) -> str | None:
    raise RuntimeError("boom")


# --- `otmetka run` as a process ------------------------------------------------------------


def _status(config_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OTMETKA, "--config", str(config_path), "status", *extra],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "OTMETKA_UPSTREAM_TOKEN": TOKEN},
    )


def test_run_pulls_serves_and_stops_cleanly_on_sigterm(project_dir: Path) -> None:
    document = small_school()
    with FakeUpstream(document, document["changes"], token=TOKEN) as upstream:
        config_path = write_project(project_dir, source={"kind": "http", "url": upstream.url})
        config = load_config(config_path)
        env = {"OTMETKA_UPSTREAM_TOKEN": TOKEN}
        assert _status(config_path).returncode == 0  # never started: nothing expected
        assert _status(config_path, "--expect-daemon").returncode == 1
        with daemon_process(config_path, env) as process:
            database = config.database_path()
            assert database is not None
            wait_for(lambda: _pulled(database), what="the first pull")
            assert _health(config.endpoint.port) == 200
            running = _status(config_path)
            assert running.returncode == 0, running.stdout
            assert "daemon: running" in running.stdout and "last pull: " in running.stdout
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
        log = run_log(config_path)
        assert "stopped cleanly" in log and TOKEN not in log
        assert "Traceback" not in log
        stopped = _status(config_path)
        assert stopped.returncode == 0 and "daemon: stopped cleanly" in stopped.stdout
        assert not pidfile.pid_path(config).exists()


def _pulled(database: Path) -> bool:
    """The first pull done and noted: its cursor is committed with its last page, and the
    time of the good pull (what `status` reads) in a transaction after it."""
    if stored_cursor(database) != "c33":
        return False
    facts = query(database, "SELECT value FROM setting WHERE key = ?", "pull.http")
    return bool(facts) and "last_ok_at" in json.loads(facts[0][0])


def test_status_fails_when_the_daemon_died_or_the_pull_is_old(project_dir: Path) -> None:
    document = small_school()
    with FakeUpstream(document, document["changes"], token=TOKEN) as upstream:
        config_path = write_project(
            project_dir,
            source={"kind": "http", "url": upstream.url},
            schedule={"max_pull_age_minutes": 1},
        )
        config = load_config(config_path)
        database = config.database_path()
        assert database is not None
        with daemon_process(config_path, {"OTMETKA_UPSTREAM_TOKEN": TOKEN}) as process:
            wait_for(lambda: _pulled(database), what="the first pull")
            process.kill()  # SIGKILL: no chance to clean up
            process.wait(timeout=10)
        dead = _status(config_path)
        assert dead.returncode == 1
        assert "daemon: DOWN" in dead.stdout and "not running (killed, crashed" in dead.stdout
        # The daemon is back, but its last good pull is too old (upstream unreachable).
        status = json.loads(pidfile.status_path(config).read_text("utf-8"))
        assert status["state"] == "running"  # a killed daemon never wrote "stopped"
    stale = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)).isoformat(timespec="seconds")
    with closing(sqlite3.connect(database)) as conn, conn:
        conn.execute(
            "UPDATE setting SET value = json_set(value, '$.last_ok_at', ?) WHERE key = ?",
            (stale, "pull.http"),
        )
    with daemon_process(config_path, {"OTMETKA_UPSTREAM_TOKEN": TOKEN}):
        wait_for(lambda: pidfile.probe(config).running, what="the daemon")
        wait_for(lambda: "last pull failed" in _status(config_path).stdout, what="a failed pull")
        old = _status(config_path)
        assert old.returncode == 1, old.stdout
        assert (
            "the last good pull is 5 min old (limit schedule.max_pull_age_minutes = 1)"
            in old.stdout
        )
        assert "job pull: failed at" in old.stdout and "cannot connect" in old.stdout
