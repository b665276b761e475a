"""What the letters say, read back from a real SMTP server: the introduction letter (no
credentials, no grades) and the digest (consenting families only, grades only when the
configuration allows, the page attached only when it allows, news only once)."""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from otmetka.daemon.access import credentials
from otmetka.daemon.cli import main
from otmetka.daemon.core.config import Config
from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.core.progress import Reporter
from otmetka.daemon.core.settings import build_options
from otmetka.daemon.exchange.importer import import_document
from otmetka.daemon.mail import campaigns, smtp
from otmetka.db import close_database, migrate, models, open_database
from otmetka.site_builder.build import build_site
from tests.daemon.mail.mail_support import decoded, make_config, write_config_file
from tests.support.factories import change, envelope
from tests.support.page_factories import HOSTILE_TEXT, page_school
from tests.support.servers import smtp_server

FRIDAY = dt.datetime(2026, 9, 18, 15, 0, tzinfo=dt.UTC)  # 18:00 in Moscow
TODAY = dt.date(2026, 9, 18)
GRADES = ("4-", "3/5", "зачёт")


def family_changes() -> list[dict[str, Any]]:
    """Three more guardians: a father with an address, a mother who refuses, a typo."""
    return [
        change(
            "guardian",
            "g-4",
            {
                "last_name": "Петров",
                "first_name": "Сергей",
                "middle_name": "Иванович",
                "email": "sergey@example.ru",
            },
        ),
        change(
            "guardian",
            "g-5",
            {"last_name": "Кузнецова", "first_name": "Ольга", "email": "olga@example.ru"},
        ),
        change(
            "guardian",
            "g-6",
            {"last_name": "Смирнов", "first_name": "Олег", "email": "oleg at example.ru"},
        ),
        change(
            "guardian_link",
            "gl-5",
            {"guardian_id": "g-4", "student_id": "s-3", "relation": "father"},
        ),
        change(
            "guardian_link",
            "gl-6",
            {"guardian_id": "g-5", "student_id": "s-2", "relation": "mother"},
        ),
        change(
            "guardian_link",
            "gl-7",
            {"guardian_id": "g-6", "student_id": "s-1", "relation": "father"},
        ),
        change(
            "homework",
            "hw-next",
            {
                "subject_id": "rus",
                "group_id": "g-rus",
                "assigned_on": "2026-09-18",
                "due_date": "2026-09-22",
                "text": "Упр. 50. " + HOSTILE_TEXT,
            },
        ),
    ]


def consent(guardian_id: str, decision: str) -> None:
    models.Event.create(
        event_id=f"consent-{guardian_id}",
        kind="consent",
        guardian_id=guardian_id,
        channel="electronic",
        payload=json.dumps({"decision": decision}),
        response="{}",
        occurred_at=FRIDAY - dt.timedelta(days=3),
        received_at=FRIDAY - dt.timedelta(days=3),
    )


@pytest.fixture
def school(project_dir: Path) -> Iterator[dict[tuple[str, str], tuple[str, str]]]:
    """The page school with more families, consents, and credentials for everyone.

    Yields the logins and passwords issued, to prove no letter carries them.
    """
    config = make_config(project_dir, 25)
    open_database(config.database.url)
    migrate()
    document = copy.deepcopy(page_school())
    document["changes"] += family_changes()
    import_document(document, "school.json", MarkRules())
    consent("g-1", "granted")
    consent("g-4", "granted")
    consent("g-5", "refused")
    issued = credentials.issue_credentials(
        config, class_name=None, everyone=True, reporter=Reporter(quiet=True)
    )
    yield issued.secrets
    close_database()


def plain_and_html(message: Any) -> tuple[str, str]:
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None and html is not None
    return plain.get_content().replace("\r\n", "\n"), html.get_content()


def by_recipient(inbox: Any) -> dict[str, Any]:
    return {
        envelope.rcpt_tos[0]: (envelope, message)
        for envelope, message in zip(inbox.envelopes, inbox.messages, strict=True)
    }


# --- the introduction letter ------------------------------------------------------------------


def test_intro_explains_the_diary_without_secrets_or_grades(
    school: dict[tuple[str, str], tuple[str, str]], project_dir: Path, runner: CliRunner
) -> None:
    with smtp_server() as (port, inbox):
        config_path = write_config_file(project_dir, port)
        with config_path.open("a", encoding="utf-8") as out:
            out.write('school:\n  lan_url: "http://school.lan/"\n')
            out.write(
                '  mirror_url: "https://mirror.example.ru/"\n  support_email: "it@school.ru"\n'
            )
        queued = runner.invoke(
            main, ["--config", str(config_path), "mail", "intro", "--class", "7Б"]
        )
        assert queued.exit_code == 0, queued.output
        assert "queued 2" in queued.output  # g-1 and g-4
        assert "1 refused consent" in queued.output  # g-5
        assert "g-6: address «oleg at example.ru» is not valid" in queued.output
        assert "1 without an e-mail address" in queued.output  # g-2, on paper
        sent = runner.invoke(main, ["--config", str(config_path), "mail", "flush"])
        assert sent.exit_code == 0 and "sent 2" in sent.output
        letters = by_recipient(inbox)
    assert set(letters) == {"maria@example.ru", "sergey@example.ru"}
    envelope_, message = letters["sergey@example.ru"]
    raw = envelope_.content
    assert message["Subject"] == "Электронный дневник: Демонстрационная школа №1"
    assert decoded(raw, "To") == "Петров Сергей Иванович <sergey@example.ru>"
    text, html = plain_and_html(message)
    assert text.startswith("Здравствуйте, Сергей Иванович!")
    for phrase in (
        "Петров Иван, 7Б (классный руководитель — Королёва Анна Петровна)",
        "оценки по предметам",
        "расписание на неделю с заменами учителей, перенесёнными и отменёнными уроками",
        "график контрольных",
        "учителя класса и учебных групп",
        "каникулы",
        "домашние задания",
        "рекомендации учителей",
        "выписку на бумаге",
        "Логин и пароль выдаёт классный руководитель",
        "В школьной сети (через Wi-Fi школы): http://school.lan/",
        "Из дома, через интернет: https://mirror.example.ru/",
        "сохраните её в телефоне или на компьютере",
        "зашифрована",
        "согласия",
        "«Сообщить об утечке»",
        "it@school.ru",
    ):
        assert phrase in text, phrase
    assert '<a href="http://school.lan/">' in html and "Королёва Анна Петровна" in html
    for login, password in school.values():
        for part in (text, html, raw.decode("ascii")):
            assert login not in part and password not in part
    for grade in GRADES:
        assert grade not in text and grade not in html
    # Mother of two gets one letter naming both children.
    maria_text, _ = plain_and_html(letters["maria@example.ru"][1])
    assert "Иванов Артём, 7Б" in maria_text and "Иванова-Крылова Алёна, 7Б" in maria_text


def test_intro_is_queued_once_per_guardian(
    school: dict[tuple[str, str], tuple[str, str]], project_dir: Path
) -> None:
    config = make_config(project_dir, 25)
    first = campaigns.queue_intro(config, FRIDAY, "7Б")
    again = campaigns.queue_intro(config, FRIDAY + dt.timedelta(days=1))
    assert (first.queued, again.queued, again.already) == (2, 0, 2)
    keys = sorted(r.key for r in models.OutboxItem.select())
    assert keys == ["intro:g-1:1", "intro:g-4:1"]


def test_intro_for_an_unknown_class_is_refused(
    school: dict[tuple[str, str], tuple[str, str]], project_dir: Path, runner: CliRunner
) -> None:
    config_path = write_config_file(project_dir, 25)
    result = runner.invoke(main, ["--config", str(config_path), "mail", "intro", "--class", "9Я"])
    assert result.exit_code == 1
    assert "no class named «9Я»" in result.output
    assert models.OutboxItem.select().count() == 0


# --- the digest -------------------------------------------------------------------------------


def digest_letters(config: Config, now: dt.datetime = FRIDAY) -> dict[str, Any]:
    with smtp_server() as (port, inbox):
        campaigns.queue_digest(config, now)
        sent = smtp.flush_mail(make_config(config.base_dir, port), now=now)
    assert sent.failed == 0 and not sent.reason
    return by_recipient(inbox)


def test_digest_only_to_consenting_families_and_without_grades_by_default(
    school: dict[tuple[str, str], tuple[str, str]], project_dir: Path
) -> None:
    config = make_config(project_dir, 25)
    letters = digest_letters(config)
    assert set(letters) == {"maria@example.ru", "sergey@example.ru"}  # g-5 refused
    _, message = letters["maria@example.ru"]
    assert message["Subject"] == "Электронный дневник: новое на 18 сентября 2026"
    text, html = plain_and_html(message)
    assert "ИВАНОВА-КРЫЛОВА АЛЁНА, 7Б" in text
    assert "Новые оценки по предметам: Математика." in text
    assert "Пропуски и опоздания: 1 (подробности на странице)." in text
    assert "Новые рекомендации учителей: 1" in text
    for secret_detail in (*GRADES, "опоздал", "Больше читать"):
        assert secret_detail not in text and secret_detail not in html
    # Homework is the week ahead, written out; teachers' markup is made harmless.
    assert "к 22 сентября, Русский язык:" in text and "Упр. 50." in text
    assert (
        "Упр. 50." in html
        and "<script" not in html
        and "javascript:" not in html.lower()
        and "onerror" not in html
    )
    # The page address: the guardian's own page on the school network and the mirror.
    page_id = models.Credential.get(person_kind="guardian", person_id="g-1").page_id
    assert f"в школьной сети: http://school.lan/p/{page_id}.html" in text
    assert f"через интернет: https://mirror.example.ru/p/{page_id}.html" in text
    assert list(message.iter_attachments()) == []


def test_digest_with_grades_and_the_page_attached(
    school: dict[tuple[str, str], tuple[str, str]], project_dir: Path
) -> None:
    config = make_config(project_dir, 25, grades_in_body=True, attach_page=True)
    build_site(build_options(config, full=True, today=TODAY))
    letters = digest_letters(config)
    _, message = letters["maria@example.ru"]
    text, html = plain_and_html(message)
    assert "Математика: 4- (14 сентября, Контрольная работа)" in text
    assert "14 сентября, 1-й урок, Математика: опоздал, 5 мин" in text
    assert "15 сентября, Королёва А. П. (Русский язык):\n    Больше читать вслух" in text
    assert "<b>4-</b>" in html and "<strong>вслух</strong>" in html
    assert "3/5" not in text  # Артём's mark of 7 September is older than the first week
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "dnevnik.html"
    page_id = models.Credential.get(person_kind="guardian", person_id="g-1").page_id
    page = config.site.output_dir / "p" / f"{page_id}.html"
    assert attachment.get_payload(decode=True) == page.read_bytes()


def test_digest_tells_each_thing_once_and_catches_late_marks(
    school: dict[tuple[str, str], tuple[str, str]], project_dir: Path
) -> None:
    config = make_config(project_dir, 25, grades_in_body=True)
    digest_letters(config)
    again = campaigns.queue_digest(config, FRIDAY + dt.timedelta(hours=1))
    assert (again.queued, again.nothing_new) == (0, 2)
    late = change(
        "mark",
        "mk-late",
        {"student_id": "s-1", "subject_id": "rus", "date": "2026-09-10", "raw": "2"},
        updated_at="2026-09-21T10:00:00+03:00",
    )
    import_document(envelope([late], mode="delta", cursor="c2"), "delta.json", MarkRules())
    letters = digest_letters(config, FRIDAY + dt.timedelta(days=7))
    assert set(letters) == {"maria@example.ru"}  # nothing new for Петров Иван
    text, _ = plain_and_html(letters["maria@example.ru"][1])
    assert "с 18 сентября по 25 сентября 2026" in text
    assert "Русский язык: 2 (10 сентября)" in text
    assert "4-" not in text and "опоздал" not in text  # told last week
