"""The legal rules through the library and the CLI: paper acts by staff, consent states and
the paper list, breach reports with their deadline, invalidation and register."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from otmetka.daemon.access import credentials
from otmetka.daemon.acts import registers
from otmetka.daemon.acts import rules as acts
from otmetka.daemon.cli import main
from otmetka.daemon.core.errors import OtmetkaError
from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.exchange.importer import import_document
from otmetka.db import acts as events
from otmetka.db import audit, close_database, models, write_transaction
from otmetka.db import printing as printed
from otmetka.site_builder import crypto
from otmetka.site_builder.pages import consent_text
from tests.support import paths
from tests.support.acts_support import (
    MOTHER,
    QUIET,
    School,
    ack_body,
    build_school,
    consent_body,
    make_config,
    rows,
    write_config_file,
)
from tests.support.factories import change, envelope

MOSCOW = ZoneInfo("Europe/Moscow")
Cli = Callable[..., tuple[int, str]]


@pytest.fixture
def school(project_dir: Path) -> Iterator[School]:
    built = build_school(make_config(project_dir))
    yield built
    close_database()


@pytest.fixture
def cli(school: School, project_dir: Path, runner: CliRunner) -> Iterator[Cli]:
    path = write_config_file(project_dir)

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(main, ["--config", str(path), *args])
        return result.exit_code, result.output

    yield run


def _page_act(school: School, name: str, act: acts.Act) -> acts.Outcome:
    """An act as the endpoint records it, without HTTP (the endpoint tests cover that)."""
    ctx = acts.ActContext(school.config, dt.datetime.now(dt.UTC), "page")
    token_hash = crypto.hash_token(school.token(name))
    with acts.transaction(ctx):
        return acts.record_from_page(ctx, act, token_hash)


def _act(kind: str, body: dict) -> acts.Act:
    stored = {k: v for k, v in body.items() if k != "token"}
    moment = dt.datetime.fromisoformat(body["occurred_at"])
    return acts.Act(kind, body["event_id"], stored, moment, acts.ELECTRONIC)


# --- the deadline ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("received", "deadline_day"),
    [
        ("2026-11-27T15:00+03:00", "2026-11-30"),  # Friday -> Monday
        ("2026-11-26T22:30+00:00", "2026-11-30"),  # already Friday 01:30 in Moscow
        ("2026-11-28T10:00+03:00", "2026-11-30"),  # Saturday -> Monday
        ("2026-11-03T10:00+03:00", "2026-11-05"),  # 4 November is a holiday
        ("2026-12-30T10:00+03:00", "2027-01-11"),  # 31 Dec moved day off, New Year holidays
        ("2027-02-19T10:00+03:00", "2027-02-20"),  # Saturday 20 Feb 2027 is a working day
    ],
)
def test_deadline_is_the_end_of_the_next_working_day(received: str, deadline_day: str) -> None:
    deadline = acts.breach_deadline(dt.datetime.fromisoformat(received), MOSCOW)
    local = deadline.astimezone(MOSCOW)
    assert local.date().isoformat() == deadline_day
    assert (local.hour, local.minute, local.second) == (23, 59, 59)


# --- acknowledgement on paper ------------------------------------------------------------------


def test_paper_acknowledgement_is_registered_once(school: School, cli: Cli) -> None:
    login = school.login(MOTHER)
    code, output = cli(
        "ack", "register", "--login", login.upper(), "--paper", "--date", "2026-09-16"
    )
    assert code == 0 and "registered: paper acknowledgement of 2026-09-16" in output
    assert "children: 2" in output
    code, output = cli("ack", "register", "--login", login, "--paper", "--date", "16.09.2026")
    assert code == 0 and "already registered" in output
    (event,) = rows("acknowledgement")
    assert event.channel == "paper" and event.guardian_id == "g-1" and event.credential is None
    assert json.loads(event.response)["body"]["children"] == ["s-1", "s-2"]
    assert audit.verify().ok


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--login", "{mother}", "--date", "2026-09-16"], "add --paper"),
        (["--login", "{mother}", "--paper", "--date", "2999-01-01"], "is in the future"),
        (["--login", "{mother}", "--paper", "--date", "вчера"], "is not a date"),
        (["--login", "zzzzzzzz", "--paper"], "no login «zzzzzzzz»"),
        (["--login", "{student}", "--paper"], "acknowledgements are a parent's"),
    ],
)
def test_bad_paper_acknowledgement_is_refused_cleanly(
    school: School, cli: Cli, args: list[str], message: str
) -> None:
    filled = [
        a.format(mother=school.login(MOTHER), student=school.login("Петров Иван")) for a in args
    ]
    code, output = cli("ack", "register", *filled)
    assert code == 1 and message in output and "Traceback" not in output
    assert rows() == [] and models.AuditEntry.select().count() == 0


def test_a_slip_cannot_be_signed_before_the_day_its_extract_shows(school: School, cli: Cli) -> None:
    extract = printed.NewExtract(
        code=printed.normalise_code("ABCD-EFGH"),
        student_id="s-1",
        class_unit_id="cls-7b",
        guardian_ids=("g-1",),
        period_id=None,
        week_start=dt.date(2026, 9, 14),
        as_of=dt.date(2026, 9, 16),
        content_hash="0" * 64,
    )
    with write_transaction():
        printed.record_extracts([extract], dt.datetime.now(dt.UTC))
    code, output = cli("ack", "register", "--code", "ABCD-EFGH", "--paper", "--date", "2026-09-10")
    assert code == 1 and "before 2026-09-16, the day the extract" in output
    assert "Traceback" not in output and rows() == []
    code, output = cli("ack", "register", "--code", "ABCD-EFGH", "--paper", "--date", "2026-09-16")
    assert code == 0 and "registered" in output


def test_the_offline_window_is_the_configured_one(project_dir: Path) -> None:
    school = build_school(make_config(project_dir, endpoint={"offline_window_days": 2}))
    try:
        c = models.Credential
        issued = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(days=30)
        c.update(issued_at=issued).execute()
        moment = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
        late = consent_body(school.token(MOTHER), "granted", occurred_at=moment.isoformat())
        with pytest.raises(acts.ActRefused, match="more than 2 days before") as refused:
            _page_act(school, MOTHER, _act(acts.CONSENT, late))
        assert (refused.value.status, refused.value.code) == (422, "occurred_too_late")
        in_time = {
            **late,
            "event_id": "x" * 16,
            "occurred_at": (moment + dt.timedelta(days=2)).isoformat(),
        }
        assert _page_act(school, MOTHER, _act(acts.CONSENT, in_time)).status == 201
    finally:
        close_database()


@pytest.mark.parametrize("days", [0, 61])
def test_the_offline_window_has_bounds(project_dir: Path, days: int) -> None:
    with pytest.raises(OtmetkaError, match="offline_window_days"):
        make_config(project_dir, endpoint={"offline_window_days": days})


# --- consent -------------------------------------------------------------------------------------


def test_paper_consent_then_refusal(school: School, cli: Cli) -> None:
    login = school.login(MOTHER)
    code, output = cli("consent", "register", "--login", login, "--paper")
    assert code == 1 and "--granted or --refused" in output
    code, output = cli("consent", "register", "--login", login, "--granted", "--paper")
    assert code == 0 and ": granted" in output
    assert "Иванова-Крылова Алёна" in school.open_page(MOTHER)  # rebuilt at once
    code, output = cli("consent", "list")
    assert code == 0 and "granted   Иванова Мария" in output and "(paper, text 2026-1)" in output
    page = school.page(MOTHER)
    code, output = cli("consent", "register", "--login", login, "--refused", "--paper")
    assert code == 0 and ": withdrawn" in output and "paper list" in output
    assert not page.exists() and school.credential(MOTHER).state == "revoked"
    code, output = cli("consent", "list", "--state", "withdrawn")
    assert "withdrawn Иванова Мария" in output and "Петрова" not in output
    code, output = cli("consent", "list", "--paper")
    assert "Иванова Мария: withdrawn" in output and "Петрова Ольга: paper delivery" in output
    assert "Иванов Артём (7Б)" in output and "2 families on the paper list" in output


def test_consent_is_given_by_a_legal_representative_only(school: School) -> None:
    grandmother = [
        change("guardian", "g-9", {"last_name": "Петрова", "first_name": "Анна"}),
        change(
            "guardian_link",
            "gl-9",
            {
                "guardian_id": "g-9",
                "student_id": "s-3",
                "relation": "grandmother",
                "is_legal_representative": False,
            },
        ),
    ]
    import_document(envelope(grandmother, mode="delta", cursor="c9"), "g9.json", MarkRules())

    issued = credentials.issue_credentials(
        school.config, class_name=None, everyone=True, reporter=QUIET
    )
    school.logins.update(
        {"Петрова Анна": {"login": next(iter(issued.secrets.values()))[0], "password": ""}}
    )
    body = consent_body(school.token("Петрова Анна"), "granted")
    with pytest.raises(acts.ActRefused, match="legal representative") as refused:
        _page_act(school, "Петрова Анна", _act(acts.CONSENT, body))
    assert refused.value.status == 403 and rows() == []


def test_an_invalidated_withdrawal_gives_back_the_consent(school: School, cli: Cli) -> None:
    login = school.login(MOTHER)
    cli("consent", "register", "--login", login, "--granted", "--paper", "--date", "2026-09-01")
    moment = dt.datetime.now(dt.UTC)
    _page_act(school, MOTHER, _act(acts.CONSENT, consent_body(school.token(MOTHER), "withdrawn")))
    assert events.consent_states() == {"g-1": "withdrawn"}
    code, output = cli("breach", "register", "--login", login, "--received-at", moment.isoformat())
    assert code == 0 and "1 acts made after" in output and "no new login issued" in output
    assert events.consent_states() == {"g-1": "granted"}
    history = events.consent_history()["g-1"]
    assert [(s.decision, s.invalid) for s in history] == [("granted", False), ("withdrawn", True)]


# --- breach ---------------------------------------------------------------------------------------


def test_staff_breach_report_invalidates_what_came_after(school: School, cli: Cli) -> None:
    login = school.login(MOTHER)
    cli("consent", "register", "--login", login, "--granted", "--paper")
    token = school.token(MOTHER)
    before = _page_act(school, MOTHER, _act(acts.ACK, ack_body(token, ["s-1"])))
    moment = dt.datetime.now(dt.UTC)
    after = _page_act(school, MOTHER, _act(acts.ACK, ack_body(token, ["s-2"])))
    code, output = cli("breach", "register", "--login", login, "--received-at", moment.isoformat())
    assert code == 0 and "breach report № 1" in output and "1 acts made after" in output
    assert "new login" in output and "head@school.example, it@school.example" in output
    valid = {e.event_id: e.invalid for e in rows("acknowledgement")}
    assert valid == {before.body["event_id"]: False, after.body["event_id"]: True}
    invalid = events.find(after.body["event_id"])
    assert invalid is not None and login in invalid.invalid_reason
    assert models.OutboxItem.get(models.OutboxItem.key == f"{invalid.event_id}/invalid")
    assert "Доступ заблокирован" in school.open_page(MOTHER)  # under the old password
    code, output = cli("breach", "list")
    assert (
        code == 0
        and "№ 1  open" in output
        and f"login {login} (родитель: Иванова Мария, 7Б)" in output
    )
    code, output = cli("breach", "register", "--login", login, "--received-at", moment.isoformat())
    assert code == 1 and "already reported" in output
    code, output = cli("breach", "close", "--id", "1", "--note", "выдан новый листок")
    assert code == 0 and "closed" in output
    assert "no open breach reports" in cli("breach", "list")[1]
    assert "№ 1  closed" in cli("breach", "list", "--all")[1]
    assert audit.verify().ok


def test_an_old_report_is_overdue_at_once(school: School, cli: Cli) -> None:
    month_ago = (dt.datetime.now(MOSCOW) - dt.timedelta(days=30)).strftime("%Y-%m-%dT%H:%M")
    login = school.login("Петров Иван")
    code, output = cli("breach", "register", "--login", login, "--received-at", month_ago)
    assert code == 0
    code, output = cli("breach", "list")
    assert "overdue" in output and "1 overdue" in output and "ученик: Петров Иван" in output
    (entry,) = registers.breach_register()
    assert entry.status(dt.datetime.now(dt.UTC)) == "overdue"


@pytest.mark.parametrize(
    ("moment", "message"),
    [("2999-01-01T10:00", "is in the future"), ("yesterday", "is not a date and time")],
)
def test_breach_moment_must_be_a_past_time(
    school: School, cli: Cli, moment: str, message: str
) -> None:
    login = school.login(MOTHER)
    code, output = cli("breach", "register", "--login", login, "--received-at", moment)
    assert code == 1 and message in output
    assert school.credential(MOTHER).state == "active"


def test_a_breach_that_cannot_issue_a_login_changes_nothing(school: School, cli: Cli) -> None:
    folder = school.config.paths.var_dir / "credentials"
    for old in folder.iterdir():
        old.unlink()
    folder.rmdir()
    folder.write_text("not a folder", encoding="utf-8")  # the one-time list cannot be written
    page = school.page(MOTHER)
    sealed = page.read_bytes()
    now = dt.datetime.now(dt.UTC).isoformat()
    code, output = cli("breach", "register", "--login", school.login(MOTHER), "--received-at", now)
    assert code == 1 and "cannot write the one-time list" in output and "Traceback" not in output
    assert school.credential(MOTHER).state == "active"
    assert rows() == [] and models.BreachReport.select().count() == 0
    assert models.OutboxItem.select().count() == 0 and models.AuditEntry.select().count() == 0
    assert page.read_bytes() == sealed


def test_consent_document_matches_the_page_text() -> None:
    doc = paths.ROOT / "docs" / "consent.md"
    expected = consent_text.consent_document()
    if os.environ.get("UPDATE_GOLDEN"):
        doc.write_text(expected, encoding="utf-8")
    assert doc.read_text(encoding="utf-8") == expected, (
        "regenerate: python -m otmetka.site_builder.pages.render consent > docs/consent.md"
    )
    for needed in (
        "Оператор",
        "Цель обработки",
        "Перечень персональных данных",
        "Перечень действий",
        "Срок действия",
        "Отзыв согласия",
        "законный представитель",
    ):
        assert needed in expected
