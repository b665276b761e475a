"""Retention: a student who leaves loses the page at the next build; their data (and their
guardians', when those were their only children) is purged after the period, events and
the audit chain staying intact; the purge is audited and runs with the daemon's checks;
`otmetka audit extract` gives the log an act of destruction needs."""

from __future__ import annotations

import csv
import datetime as dt
import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from otmetka.daemon.acts import paper
from otmetka.daemon.cli import main
from otmetka.daemon.core.settings import build_options
from otmetka.daemon.endpoint.app import create_app
from otmetka.daemon.ops import retention
from otmetka.daemon.runner import scheduler
from otmetka.daemon.runtime import open_project
from otmetka.db import audit, close_database, journal, models
from otmetka.site_builder import build
from tests.support.acts_support import (
    MOTHER,
    TODAY,
    School,
    ack_body,
    build_school,
    leave_school,
    make_config,
    write_config_file,
)


@pytest.fixture
def school(project_dir: Path) -> School:
    write_config_file(project_dir, "retention:\n  purge_after_days: 30\n")
    config = make_config(project_dir, retention={"purge_after_days": 30})
    school = build_school(config)
    paper.register_consent(config, login=school.login(MOTHER), decision="granted", paper=True)
    open_project(config)
    return school


def test_a_student_who_left_loses_the_page_at_the_next_build(school: School) -> None:
    build.build_site(build_options(school.config, today=TODAY))
    son, mother = school.page("Иванов Артём"), school.page(MOTHER)
    assert son.exists() and "Иванов" in school.open_page(MOTHER)
    leave_school(["s-2"], "2026-09-15")
    result = build.build_site(build_options(school.config, today=TODAY))
    assert not son.exists() and result.removed == 1
    assert mother.exists()
    page = school.open_page(MOTHER)
    assert "Иванова-Крылова" in page and "Артём" not in page
    assert build.page_data_of(page)["children"] == ["s-1"]


def _count(model: type[models.BaseModel], **where: str) -> int:
    query = model.select()
    for name, value in where.items():
        query = query.where(getattr(model, name) == value)
    return int(query.count())


AFTER = dt.datetime(2026, 10, 20, 9, 0, tzinfo=dt.UTC)  # cut-off 20 September


def test_purge_waits_for_the_period_and_dry_run_deletes_nothing(school: School) -> None:
    leave_school(["s-3"], "2026-09-15")
    early = retention.purge(school.config, now=dt.datetime(2026, 10, 10, tzinfo=dt.UTC))
    assert early.students == [] and early.rows == 0
    before = journal.dump_tables()
    dry = retention.purge(school.config, dry_run=True, now=AFTER)
    assert dry.students == ["s-3"] and dry.guardians == ["g-2"]
    assert dry.counts["attendance"] == 1 and dry.counts["recommendation"] == 1
    assert "would purge 1 students" in dry.summary() and "nothing was deleted" in dry.summary()
    assert journal.dump_tables() == before


def test_purge_deletes_the_data_and_keeps_events_and_the_chain(school: School) -> None:
    config = school.config
    mother = school.credential(MOTHER)
    client = create_app(config).test_client()  # an act from her page refers to her login
    answer = client.post("/api/v1/acknowledgements", json=ack_body(school.token(MOTHER), ["s-1"]))
    assert answer.status_code == 201, answer.json
    leave_school(["s-1", "s-2"], "2026-09-15")
    events_before = [row.event_id for row in models.Event.select()]
    result = retention.purge(config, now=AFTER)

    assert result.students == ["s-1", "s-2"] and result.guardians == ["g-1"]
    for sid in ("s-1", "s-2"):
        assert _count(models.Student, id=sid) == 0
        assert _count(models.Mark, student_id=sid) == 0
        assert _count(models.GuardianLink, student_id=sid) == 0
        (login,) = models.Credential.select().where(models.Credential.person_id == sid)
        assert login.state == "revoked" and bytes(login.derived_key) == b""
    assert _count(models.Guardian, id="g-1") == 0
    # Petrov and his mother stay, whole.
    assert _count(models.Student, id="s-3") == 1 and _count(models.Guardian, id="g-2") == 1
    assert _count(models.Attendance, student_id="s-3") == 1
    # Her acts are legal records: they stay, and so does her login, wiped.
    assert [row.event_id for row in models.Event.select()] == events_before
    kept = models.Credential.get_by_id(mother.get_id())
    assert kept.state == "revoked" and bytes(kept.derived_key) == b""
    verification = audit.verify()
    assert verification.ok, verification.summary()
    entry = models.AuditEntry.get(models.AuditEntry.seq == result.audit_seq)
    details = json.loads(entry.details)
    assert entry.action == "retention.purge" and details["students"] == ["s-1", "s-2"]
    assert details["rows"]["mark"] == 3 and details["cutoff"] == "2026-09-20"
    again = retention.purge(config, now=AFTER)
    assert again.rows == 0 and "nothing to purge" in again.summary()
    # The next build removes their pages; the rest builds as before.
    build.build_site(build_options(config, today=TODAY))
    assert not school.page(MOTHER).exists()
    assert school.page("Петров Иван").exists()


def test_the_daemon_purges_with_its_deadline_checks(school: School) -> None:
    leave_school(["s-3"], "2020-01-15")  # long ago: due by the real clock too
    line = scheduler.run_deadline_checks(school.config)
    assert line is not None and "retention: purged 1 students" in line
    assert _count(models.Student, id="s-3") == 0
    entry = models.AuditEntry.select().order_by(models.AuditEntry.seq.desc()).first()
    assert entry.actor == "daemon:retention"
    assert "retention" not in (scheduler.run_deadline_checks(school.config) or "")


def _cli(runner: CliRunner, school: School, *args: str) -> tuple[int, str]:
    config_path = school.config.base_dir / "config.yaml"
    result = runner.invoke(main, ["--config", str(config_path), *args])
    close_database()
    return result.exit_code, result.output


def test_cli_purge_dry_run(school: School, runner: CliRunner) -> None:
    leave_school(["s-3"], "2020-01-15")
    code, output = _cli(runner, school, "retention", "purge", "--dry-run")
    assert code == 0 and "would purge 1 students" in output, output
    open_project(school.config)
    assert _count(models.Student, id="s-3") == 1
    code, output = _cli(runner, school, "retention", "purge")
    assert code == 0 and "purged 1 students" in output, output


def test_audit_extract_after_a_withdrawal(school: School, runner: CliRunner) -> None:
    login = school.login(MOTHER)
    paper.register_consent(school.config, login=login, decision="refused", paper=True)
    out = school.config.base_dir / "act" / "extract.json"
    code, output = _cli(runner, school, "audit", "extract", "--login", login, "--out", str(out))
    assert code == 0, output
    text_path = out.with_suffix(".txt")
    for path in (out, text_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["login"] == login and data["person"] == {
        "kind": "guardian",
        "id": "g-1",
        "name": "Иванова Мария",
    }
    decisions = [json.loads(e["payload"])["decision"] for e in data["events"]]
    assert decisions == ["granted", "refused"]
    actions = [e["action"] for e in data["audit_entries"]]
    assert actions == ["event.record", "event.record", "credential.revoke"]
    for entry in data["audit_entries"]:  # every hash can be checked from the extract alone
        fields = [entry[k] for k in ("seq", "at", "actor", "action", "subject", "details")]
        assert audit.entry_hash(*fields, entry["prev_hash"]) == entry["entry_hash"]
        assert entry["hash_ok"] is True
    assert data["chain"]["intact"] is True
    text = text_path.read_text(encoding="utf-8")
    assert "ВЫПИСКА ИЗ ЖУРНАЛА СОБЫТИЙ" in text and "целостность подтверждена" in text
    assert "согласие на обработку персональных данных (refused)" in text
    assert data["chain"]["head"] in text


def test_audit_extract_as_csv_and_an_unknown_login(school: School, runner: CliRunner) -> None:
    login = school.login(MOTHER)
    code, output = _cli(runner, school, "audit", "extract", "--login", login, "--format", "csv")
    assert code == 0, output
    (path,) = (school.config.paths.var_dir / "audit").glob("*.csv")
    rows = list(csv.DictReader(path.read_text(encoding="utf-8").splitlines()))
    assert [r["record"] for r in rows] == ["audit_entry", "event"]
    assert rows[0]["action"] == "event.record" and rows[1]["kind"] == "consent"
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    code, output = _cli(runner, school, "audit", "extract", "--login", "zzzz9999")
    assert code == 1 and "no login «zzzz9999»" in output


def test_extract_names_a_purged_person_by_id(project_dir: Path) -> None:
    write_config_file(project_dir)
    config = make_config(project_dir, retention={"purge_after_days": 30})
    school = build_school(config)
    login = school.login(MOTHER)
    paper.register_consent(config, login=login, decision="granted", paper=True)
    open_project(config)
    leave_school(["s-1", "s-2"], "2026-09-15")
    retention.purge(config, now=AFTER)
    found = retention.collect_extract(config, login)
    assert found.name == "" and found.person_id == "g-1"
    assert [e["action"] for e in found.entries][-1] == "retention.purge"
    assert "данные удалены" in retention.extract_text(found, config)
