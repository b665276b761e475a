"""The rest of a school's work on PostgreSQL, through the CLI as an operator runs it:
printing extracts and slips, analytics reports (the school report renders in worker
processes that open their own connections), class lists out and back, mail through a
real SMTP server, the retention purge and rotating the site secret."""

from __future__ import annotations

import contextlib
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook
from pypdf import PdfReader

from otmetka.daemon.acts import paper
from otmetka.daemon.cli import main
from otmetka.daemon.lists import layout
from otmetka.daemon.runner import scheduler
from otmetka.daemon.runtime import open_project
from otmetka.db import audit, close_database, models
from tests.support.acts_support import (
    MOTHER,
    School,
    build_school,
    call,
    consent_body,
    leave_school,
    leaving,
    make_config,
    write_config_file,
)
from tests.support.factories import write_json
from tests.support.servers import Inbox, free_port, parse, smtp_server
from tests.support.sync_support import wait_for

STUDENT = "Петров Иван"  # s-3


@pytest.fixture
def inbox_port() -> Iterator[tuple[Inbox, int]]:
    with smtp_server() as (port, inbox):
        yield inbox, port


@pytest.fixture
def school(project_dir: Path, pg_url: str, inbox_port: tuple[Inbox, int]) -> School:
    """The small school on PostgreSQL, logins issued, site built; mail to the test server."""
    port = inbox_port[1]
    write_config_file(
        project_dir,
        f"database:\n  url: {pg_url}\nmail:\n  enabled: true\n  smtp_port: {port}\n"
        "retention:\n  purge_after_days: 30\n",
    )
    config = make_config(
        project_dir,
        database={"url": pg_url},
        mail={"enabled": True, "smtp_port": port},
        retention={"purge_after_days": 30},
    )
    built = build_school(config)
    close_database()
    return built


def _cli(school: School, *args: str) -> str:
    """Run one command against the school's config.yaml; it must succeed."""
    config_file = school.config.base_dir / "config.yaml"
    result = CliRunner().invoke(main, ["--config", str(config_file), *args])
    close_database()
    assert result.exit_code == 0, result.output
    return result.output


def _pdf_text(path: Path) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(path).pages)


def test_extracts_slips_and_reports_print_from_postgresql(school: School, tmp_path: Path) -> None:
    extracts = tmp_path / "extracts.pdf"
    output = _cli(school, "print", "extracts", "--class", "7Б", "--out", str(extracts))
    assert "printed 3 extracts of 1 classes" in output, output
    text = _pdf_text(extracts)
    assert all(name in text for name in ("Петров", "Иванова-Крылова", "Иванов Артём"))
    output = _cli(school, "print", "slips", "--class", "7Б", "--login-only")
    slips = Path(output.strip().split("): ")[-1].split(" (owner-only)")[0])
    assert school.login(MOTHER) in _pdf_text(slips), output
    output = _cli(school, "report", "class", "7Б", "--out", str(tmp_path / "class.pdf"))
    assert "wrote 1 analytics PDFs" in output, output
    output = _cli(school, "report", "school", "--out", str(tmp_path / "school.pdf"))
    assert "7Б" in _pdf_text(tmp_path / "school.pdf"), output


def test_class_lists_go_out_and_come_back_on_postgresql(school: School, tmp_path: Path) -> None:
    sheet = tmp_path / "7Б.xlsx"
    output = _cli(school, "lists", "export", "--class", "7Б", "--out", str(sheet))
    assert "3 students" in output, output
    assert "nothing changed" in _cli(school, "lists", "import", str(sheet))
    book = load_workbook(sheet)
    book[layout.SHEET_GUARDIANS]["E2"] = "+7 912 345-67-89"  # a teacher corrects a phone
    book.save(sheet)
    output = _cli(school, "lists", "import", str(sheet))
    assert "1 corrections recorded (0 students, 1 guardians)" in output, output
    open_project(school.config)
    assert "+7 912 345-67-89" in {g.phone for g in models.Guardian.select()}


def test_mail_leaves_once_from_postgresql(school: School, inbox_port: tuple[Inbox, int]) -> None:
    inbox = inbox_port[0]
    assert "queued 1" in _cli(school, "mail", "intro"), "one guardian has an address"
    output = _cli(school, "mail", "flush")
    assert "sent 1" in output, output
    (envelope,) = inbox.envelopes
    assert envelope.rcpt_tos == ["maria@example.ru"]
    assert "Иванова Мария" in str(parse(envelope.original_content)["To"])
    assert "sent 0" in _cli(school, "mail", "flush")  # each letter leaves once
    assert len(inbox.envelopes) == 1


def test_purge_and_secret_rotation_on_postgresql(school: School) -> None:
    config = school.config
    paper.register_consent(config, login=school.login(MOTHER), decision="granted", paper=True)
    leave_school(["s-3"], "2020-01-15")  # long past the 30 days
    close_database()
    assert "purged 1 students" in _cli(school, "retention", "purge")
    old_page = school.page(MOTHER)
    output = _cli(school, "secret", "rotate", "--yes")
    open_project(config)
    assert not old_page.exists() and school.page(MOTHER).exists(), output
    assert "Иванова-Крылова Алёна" in school.open_page(MOTHER)  # the same password opens it
    assert models.Student.select().where(models.Student.id == "s-3").count() == 0
    actions = {entry.action for entry in models.AuditEntry.select()}
    assert {"retention.purge", "site.secret_rotate"} <= actions, actions
    verification = audit.verify()
    assert verification.ok, verification.summary()


def test_the_daemon_runs_a_school_on_postgresql(school: School) -> None:
    """`otmetka run` as a whole: a dropped file imported and built, an act through its
    endpoint rebuilding the parent's page, then `otmetka status` reading it all back."""
    sections = {"port": free_port()}
    endpoint = school.config.endpoint.model_copy(update=sections)
    source = school.config.source.model_copy(update={"inbox_settle_s": 0})
    config = school.config.model_copy(update={"endpoint": endpoint, "source": source})
    student_page = school.page(STUDENT)
    daemon = scheduler.Daemon(config)
    daemon.start()
    try:
        write_json(config.paths.inbox_dir / "left.json", leaving(["s-3"], "2026-09-15"))
        wait_for(lambda: (daemon.tick(), not student_page.exists())[1], what="s-3's page gone")
        token = school.token(MOTHER)
        status, _, answer = call(endpoint.port, "consents", consent_body(token, "granted"))
        assert status == 201, answer
        daemon.pages_waiting()
        daemon.tick()
        assert "Иванова-Крылова Алёна" in school.open_page(MOTHER)
    finally:
        daemon.close()
    output = _cli(school, "status")
    assert "postgresql" in output and "left.json" in output, output


# --- backup and restore -------------------------------------------------------------------------


def test_a_backup_on_postgresql_restores_there_and_on_an_empty_sqlite_machine(
    school: School, tmp_path: Path
) -> None:
    config = school.config
    before = school.site()
    close_database()
    archive = tmp_path / "off-site" / "school.tar.gz"
    assert f"backup written to {archive}" in _cli(school, "backup", "--out", str(archive))
    paper.register_breach(config, login=school.login(STUDENT), received_at="2026-09-16T10:00")
    close_database()

    output = _cli(school, "restore", str(archive))
    assert "Run `otmetka build` now" in output and "password" not in output, output
    (aside,) = config.paths.backup_dir.glob("before-restore-*.sqlite3")
    with contextlib.closing(sqlite3.connect(aside)) as kept:  # the act after the backup
        assert kept.execute("SELECT count(*) FROM breach_report").fetchone()[0] == 1
    open_project(config)
    assert models.BreachReport.select().count() == 0
    assert school.credential(STUDENT).state == "active"
    assert audit.verify().ok
    school.rebuild()
    assert school.site() == before
    paper.register_ack(config, login=school.login(MOTHER), paper=True, date="2026-09-17")
    open_project(config)  # the ids went on past the restored rows: the chain goes on
    assert models.Event.select().count() == 1 and audit.verify().ok
    close_database()

    elsewhere = tmp_path / "new-server"  # the school moves to a machine with SQLite
    elsewhere.mkdir()
    moved = School(make_config(elsewhere), school.logins)
    write_config_file(elsewhere)
    _cli(moved, "restore", str(archive))
    open_project(moved.config)
    moved.rebuild()
    assert moved.site() == before


def _row_counts() -> dict[str, int]:
    return {model._meta.table_name: model.select().count() for model in models.ALL_TABLES}


def test_a_restore_the_server_refuses_changes_nothing(school: School) -> None:
    """A backup holding a row PostgreSQL will not take (a date SQLite kept as any text):
    the transaction that emptied the tables rolls back with it."""
    config = school.config
    nightly = scheduler.backup_now(config)  # a nightly copy restores too
    with contextlib.closing(sqlite3.connect(nightly)) as conn:
        conn.execute("UPDATE mark SET date = '31.09.2026' WHERE id = 'mk-3'")
        conn.commit()
    open_project(config)
    rows = _row_counts()
    close_database()
    config_file = str(config.base_dir / "config.yaml")
    result = CliRunner().invoke(main, ["--config", config_file, "restore", str(nightly)])
    close_database()
    assert result.exit_code == 1, result.output
    assert "the target refused a row of mark: row mk-3, column date: " in result.output
    assert "nothing was written" in result.output and "Traceback" not in result.output
    open_project(config)
    assert _row_counts() == rows and audit.verify().ok


def test_the_nightly_backup_of_postgresql_is_a_sqlite_file(school: School) -> None:
    nightly = scheduler.backup_now(school.config)
    assert stat.S_IMODE(nightly.stat().st_mode) == 0o600
    with contextlib.closing(sqlite3.connect(nightly)) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert copy.execute("SELECT count(*) FROM credential").fetchone()[0] == len(school.logins)
    assert not list(nightly.parent.glob("*-wal"))
