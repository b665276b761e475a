"""What the letters say: the introduction letter, the weekly digest, breach reminders.

Texts are Russian and live in `site_builder/templates/mail_*.j2`: the `.txt.j2` templates
give the text/plain part, the `.html.j2` ones (autoescaped, like the pages) the HTML
alternative. Journal data comes from `otmetka.db.queries` and the page view models, so a digest
says what the page says. What is "new" is decided here: a journal item (mark, absence,
recommendation) is new to a guardian when it was not in their previous digest; items are
looked for `LOOKBACK_DAYS` back, which catches marks entered days after the lesson.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import jinja2
import nh3

from otmetka.daemon.core.config import Config
from otmetka.db import queries, row_types
from otmetka.db.mail import GuardianContact
from otmetka.site_builder import formatting, templating
from otmetka.site_builder.markdown import render_markdown
from otmetka.site_builder.pages import family, lookups

INTRO_VERSION = 1  # bump when the introduction letter changes enough to send it again
LOOKBACK_DAYS = 30  # how far back a late-entered mark is still news
FIRST_DIGEST_DAYS = 7  # a guardian's first digest covers the last week
DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class Attachment:
    """A file of the built site to attach, relative to `site.output_dir`."""

    path: str
    filename: str
    content_type: str = "text/html"


@dataclass(frozen=True)
class Letter:
    to: tuple[str, ...]
    subject: str
    text: str
    html: str = ""
    attachments: tuple[Attachment, ...] = ()

    def payload(self, message_id: str) -> dict[str, Any]:
        """The outbox payload (docs/mail.md): what the mailer needs to send it, again."""
        payload: dict[str, Any] = {
            "to": list(self.to),
            "subject": self.subject,
            "text": self.text,
            "message_id": message_id,
        }
        if self.html:
            payload["html"] = self.html
        if self.attachments:
            payload["attachments"] = [asdict(a) for a in self.attachments]
        return payload


# --- templates --------------------------------------------------------------------------------


@functools.cache
def _text_environment() -> jinja2.Environment:
    """Plain text must not be HTML-escaped; otherwise the same filters as the pages."""
    text = templating.environment(html=False, keep_trailing_newline=True)
    return templating.with_filters(text, plain=plain_markdown)


def _render_pair(name: str, **context: Any) -> tuple[str, str]:
    text = _text_environment().get_template(f"mail_{name}.txt.j2").render(**context)
    markup = templating.environment().get_template(f"mail_{name}.html.j2").render(**context)
    return _tidy(text), markup


def _tidy(text: str) -> str:
    """At most one empty line in a row, and none at the ends: templates leave gaps."""
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def plain_markdown(text: str) -> str:
    """A teacher's Markdown as plain text: the sanitised HTML with every tag removed."""
    stripped = nh3.clean(render_markdown(text).replace("<br", "\n<br"), tags=set())
    lines = (" ".join(line.split()) for line in html.unescape(stripped).splitlines())
    return "\n".join(line for line in lines if line)


def html_from_text(text: str) -> str:
    """An HTML alternative for a letter queued with text only (e.g. a breach notice)."""
    paragraphs = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    body = "\n".join(
        "<p>" + "<br>\n".join(html.escape(line) for line in p.splitlines()) + "</p>"
        for p in paragraphs
    )
    return (
        '<!doctype html>\n<html lang="ru"><head><meta charset="utf-8"></head>\n'
        f'<body style="font-family:Arial,sans-serif;line-height:1.5">\n{body}\n</body></html>\n'
    )


def greeting(person: GuardianContact) -> str:
    """«Здравствуйте, Мария Ивановна!»; without a patronymic, first and last name."""
    if person.middle_name:
        return f"Здравствуйте, {person.first_name} {person.middle_name}!"
    return f"Здравствуйте, {lookups.full_name(person.first_name, person.last_name)}!"


def page_url(base: str, page_id: str) -> str:
    return f"{base.rstrip('/')}/p/{page_id}.html" if base else ""


# --- the introduction letter ------------------------------------------------------------------


@dataclass(frozen=True)
class ChildLine:
    name: str
    class_name: str
    class_teacher: str


def intro_letter(
    config: Config, guardian: GuardianContact, children: Sequence[ChildLine]
) -> Letter:
    """What the diary is, what it offers, how to open it and how data is protected.

    It carries no login, no password and no journal data: it may be read by anyone who
    sees the mailbox.
    """
    school = config.school
    text, markup = _render_pair(
        "intro",
        school=school.name,
        greeting=greeting(guardian),
        children=children,
        lan_url=school.lan_url,
        mirror_url=school.mirror_url,
        support_email=school.support_email,
    )
    subject = f"Электронный дневник: {school.name}"
    return Letter((_recipient(guardian),), subject, text, markup)


def _recipient(person: GuardianContact) -> str:
    """«Иванова Мария <maria@example.ru>»; the mailer encodes the name."""
    name = lookups.full_name(person.last_name, person.first_name, person.middle_name)
    name = " ".join(re.sub(r'[<>"\\\r\n]', " ", name).split())  # upstream text, not syntax
    return f"{name} <{person.email}>"


# --- the digest -------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewMark:
    subject: str
    raw: str
    date: dt.date
    note: str


@dataclass(frozen=True)
class ChildNews:
    """What is new for one child since the guardian's previous digest."""

    name: str
    class_name: str
    marks: list[NewMark]
    absences: list[family.AbsenceView]
    recommendations: list[family.RecommendationView]
    homework: list[family.HomeworkView]
    seen: frozenset[str] = field(repr=False)

    @property
    def has_news(self) -> bool:
        return bool(self.marks or self.absences or self.recommendations)

    @property
    def mark_subjects(self) -> list[str]:
        return sorted({m.subject for m in self.marks})

    @property
    def marks_by_subject(self) -> list[tuple[str, list[NewMark]]]:
        grouped: dict[str, list[NewMark]] = defaultdict(list)
        for mark in self.marks:
            grouped[mark.subject].append(mark)
        return sorted(grouped.items())


@dataclass(frozen=True)
class Window:
    """Which items count as new: not in `seen`, or, with no previous digest, dated from
    `first_day`."""

    today: dt.date
    seen: frozenset[str] | None
    first_day: dt.date

    def is_new(self, key: str, day: dt.date) -> bool:
        if self.seen is None:
            return day >= self.first_day
        return key not in self.seen


def load_index(class_row: row_types.ClassRow, lookup: lookups.Lookup) -> lookups.ClassIndex:
    """One class's journal around `lookup.today`: the look-back and the week ahead."""
    today = lookup.today
    start, end = today - LOOKBACK_DAYS * DAY, today + lookups.HOMEWORK_DAYS * DAY
    bundle = queries.class_bundle(class_row.id, start, end, finals_from=start, notes_from=start)
    return lookups.ClassIndex(bundle, lookups.ClassScope.build(class_row, lookup), lookup)


def child_news(
    student: row_types.StudentRow, index: lookups.ClassIndex, window: Window
) -> ChildNews:
    """The child's marks, absences and recommendations the guardian has not been told of,
    and homework due after today (homework is not news, it is the week ahead)."""
    today, lookup = window.today, index.lookup
    keyed = _items(student.id, index, today)
    new = [(key, row) for key, day, row in keyed if window.is_new(key, day)]
    spans = family.spans_of(student.id, index)
    homework = [
        h for h in family.homework_view(student.id, spans, index).upcoming if h.due_date > today
    ]
    return ChildNews(
        name=lookups.full_name(student.last_name, student.first_name),
        class_name=index.scope.class_row.name,
        marks=sorted(
            (_new_mark(r, index) for k, r in new if k.startswith("m:")),
            key=lambda m: (m.subject, m.date, m.raw),
        ),
        absences=[_absence(r, lookup) for k, r in new if k.startswith("a:")],
        recommendations=[_recommendation(r, lookup) for k, r in new if k.startswith("r:")],
        homework=homework,
        seen=frozenset(key for key, _, _ in keyed),
    )


def _items(
    student_id: str, index: lookups.ClassIndex, today: dt.date
) -> list[tuple[str, dt.date, Any]]:
    """(key, date, row) of every mark, absence and recommendation up to today, by date."""
    items: list[tuple[str, dt.date, Any]] = []
    items += [(f"m:{m.id}", m.date, m) for m in index.marks.get(student_id, ())]
    items += [
        (f"a:{a.id}", a.date, a)
        for a in index.attendance.get(student_id, ())
        if a.category != "present"
    ]
    items += [(f"r:{r.id}", r.date, r) for r in index.recommendations.get(student_id, ())]
    return sorted((i for i in items if i[1] <= today), key=lambda i: (i[1], i[0]))


def _new_mark(mark: row_types.MarkRow, index: lookups.ClassIndex) -> NewMark:
    lookup = index.lookup
    period = lookup.periods_by_id.get(mark.period_id or "")
    work = index.works_by_id.get(mark.work_id or "")
    if mark.kind in row_types.FINAL_KINDS:
        note = f"итоговая, {period.name}" if period else "итоговая за год"
    elif work is not None:
        note = work.title or lookup.work_kinds.get(work.kind, "")
    else:
        note = formatting.MARK_KINDS.get(mark.kind, "")
    return NewMark(lookup.subject(mark.subject_id), mark.raw_text, mark.date, note)


def _absence(row: row_types.AttendanceRow, lookup: lookups.Lookup) -> family.AbsenceView:
    code = lookup.codes.get(row.code)
    return family.AbsenceView(
        date=row.date,
        slot=row.slot,
        subject=lookup.subject(row.subject_id),
        code=row.code,
        code_title=code.title if code else "",
        category=row.category,
        minutes_late=row.minutes_late,
    )


def _recommendation(
    row: row_types.RecommendationRow, lookup: lookups.Lookup
) -> family.RecommendationView:
    return family.RecommendationView(
        row.date, lookup.teacher_short(row.teacher_id), lookup.subject(row.subject_id), row.text
    )


@dataclass(frozen=True)
class DigestAddress:
    """Where the guardian's page is; empty when they have no active login yet."""

    lan: str = ""
    mirror: str = ""
    attachment: Attachment | None = None


def digest_letter(
    config: Config,
    guardian: GuardianContact,
    children: Sequence[ChildNews],
    address: DigestAddress,
    since: dt.date | None,
    today: dt.date,
) -> Letter:
    """The weekly digest. Marks, absences and recommendation texts are written out only
    with `mail.grades_in_body`; otherwise it names subjects and counts and sends the
    reader to the page, which only their password opens."""
    text, markup = _render_pair(
        "digest",
        school=config.school.name,
        greeting=greeting(guardian),
        children=children,
        details=config.mail.grades_in_body,
        address=address,
        since=since,
        today=today,
        categories=formatting.ATTENDANCE_CATEGORIES,
    )
    subject = f"Электронный дневник: новое на {formatting.date_long(today)}"
    attachments = (address.attachment,) if address.attachment else ()
    return Letter((_recipient(guardian),), subject, text, markup, attachments)


# --- breach reminders -------------------------------------------------------------------------


@dataclass(frozen=True)
class BreachDeadline:
    """An open breach report as the reminder needs it (from the breach register)."""

    report_id: str
    received_at: dt.datetime
    deadline: dt.datetime
    about: str = ""  # whose login leaked, as the register describes it


STAGES = {"nearing": "срок рассмотрения истекает", "overdue": "срок рассмотрения истёк"}


def _moment(value: dt.datetime, config: Config) -> str:
    local = value.astimezone(config.school.zone())
    return f"{formatting.date_long(local.date())}, {local:%H:%M}"


def breach_reminder_letter(
    config: Config, breach: BreachDeadline, stage: str, left: dt.timedelta, to: Iterable[str]
) -> Letter:
    """To the head of school and support: a report is close to, or past, its deadline."""
    when = _moment(breach.deadline, config)
    about = f" ({breach.about})" if breach.about else ""
    hours = max(0, round(left.total_seconds() / 3600))
    lines = [
        "Напоминание о сообщении о нарушении конфиденциальности (утечке логина и пароля).",
        "",
        f"Сообщение № {breach.report_id}{about}",
        f"получено: {_moment(breach.received_at, config)}",
        f"срок рассмотрения: {when}",
    ]
    if stage == "overdue":
        lines += ["", "Срок рассмотрения истёк, а сообщение в реестре нарушений не закрыто."]
    else:
        lines += ["", f"До конца срока осталось рабочих часов: {hours}."]
    lines += [
        "",
        "Рассмотрите сообщение, выдайте семье новые данные для входа (они уже созданы)",
        "и закройте сообщение:",
        f"otmetka breach close --id {breach.report_id}",
        "",
        f"{config.school.name}: письмо отправлено автоматически.",
    ]
    text = "\n".join(lines) + "\n"
    subject = f"Утечка логина: {STAGES[stage]} ({when}), сообщение № {breach.report_id}"
    return Letter(tuple(to), subject, text, html_from_text(text))
