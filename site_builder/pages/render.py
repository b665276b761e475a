"""What each person's decrypted page shows: the HTML fragment the shell puts into
``<main id="otm-app">`` after unlocking.

The fragment is pure HTML and CSS (its scripts would never run) and deterministic: the same
data and the same `today` give the same string, because the builder hashes it to skip
unchanged pages. Pages are rendered class by class: one bundle of queries per class, each
student's section rendered once and reused on the student's page, the guardians' pages
and the class teacher's page.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import jinja2
from babel.dates import format_date
from markupsafe import Markup, escape

from otmetka.db import acts as events
from otmetka.db import analytics
from otmetka.db import printing as printed
from otmetka.db import queries as q
from otmetka.site_builder import attachments as extract_files
from otmetka.site_builder import report_attachments as report_files
from otmetka.site_builder import static_files
from otmetka.site_builder.pages import charts
from otmetka.site_builder.pages import views as v
from otmetka.site_builder.pages.markdown import render_markdown
from otmetka.site_builder.workers import database_url

PageKey = tuple[str, str]  # (kind, person_id); kind in {"guardian", "student", "teacher"}
DEPUTY_REFRESH = dt.timedelta(hours=20)

GUARDIAN, STUDENT, TEACHER = "guardian", "student", "teacher"

MARK_KINDS = {"debt": "ликвидация задолженности", "not_certified": "не аттестован(а)"}
ATTENDANCE_CATEGORIES = {
    "present": "присутствие",
    "illness": "по болезни",
    "excused": "по уважительной причине",
    "unexcused": "без уважительной причины",
    "late": "опоздания",
    "exempt": "освобождение",
}
GROUP_KINDS = {
    "whole_class": "весь класс",
    "subgroup": "подгруппа",
    "stream": "поток",
    "individual_plan": "индивидуальный учебный план",
}
# The consent text (templates/consent.md.j2) is versioned: an act records the version the
# parent saw. Bump the version with every change of wording; keep old ones listed so pages
# still in browsers can post with them.
CONSENT_TEXT_VERSION = "2026-1"
CONSENT_TEXT_VERSIONS = (CONSENT_TEXT_VERSION,)
NO_ADDRESS = "адрес в данных школы не указан (уточните его в школе)"
_UNWRAP = re.compile(r"(?<!\n)\n(?!\n|- )")

CONSENT_STATES = {
    "unknown": "не дано",
    "granted": "дано",
    "refused": "отказ",
    "withdrawn": "отозвано",
}
DELIVERIES = {"electronic": "электронно", "paper": "на бумаге"}
PAPER_REASONS = {
    "refused": "отказ от обработки данных",
    "withdrawn": "согласие отозвано",
    "paper delivery": "выбрана бумажная доставка",
}
ROLES = {"guardian": "родитель", "student": "ученик", "teacher": "учитель"}
BREACH_STATES = {"open": "открыто", "overdue": "просрочено", "closed": "закрыто"}

HOLIDAY_KINDS = {
    "vacation": "каникулы",
    "holiday": "праздник",
    "quarantine": "карантин",
    "short_day": "сокращённый день",
}


# --- formatting ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _date(day: dt.date, pattern: str) -> str:
    # Babel is slow per call and the same few hundred dates recur on every page.
    return format_date(day, pattern, locale="ru")


def date_long(day: dt.date) -> str:
    """«28 ноября 2026»."""
    return _date(day, "d MMMM y")


def day_month(day: dt.date) -> str:
    """«28 ноября»."""
    return _date(day, "d MMMM")


def date_short(day: dt.date) -> str:
    """«28 нояб.»."""
    return _date(day, "d MMM")


def weekday(day: dt.date) -> str:
    """«Суббота»."""
    return _date(day, "EEEE").capitalize()


def average(value: float | None) -> str:
    """«4,35», the way Russians write decimals; «—» when there is nothing to average."""
    return "—" if value is None else f"{value:.2f}".replace(".", ",")


def number(value: float) -> str:
    """A weight without trailing zeros: 2.0 -> «2», 1.5 -> «1,5»."""
    return f"{value:g}".replace(".", ",")


def markdown_filter(text: str) -> Markup:
    return Markup(render_markdown(text))


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("otmetka.site_builder", "templates"),
        autoescape=True,  # explicit: names end in .j2, which select_autoescape would miss
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        dlong=date_long,
        dday=day_month,
        dshort=date_short,
        wday=weekday,
        avg=average,
        num=number,
        md=markdown_filter,
        pct=charts.percent,
    )
    env.globals.update(
        mark_kinds=MARK_KINDS,
        categories=ATTENDANCE_CATEGORIES,
        group_kinds=GROUP_KINDS,
        holiday_kinds=HOLIDAY_KINDS,
        consent_states=CONSENT_STATES,
        deliveries=DELIVERIES,
        paper_reasons=PAPER_REASONS,
        roles=ROLES,
        breach_states=BREACH_STATES,
    )
    return env


def page_css() -> str:
    """The page styles (static/page.css and the acts' static/acts.css), for the shell."""
    return static_files.text("page.css") + static_files.text("acts.css")


def _render(template: str, **context: Any) -> Markup:
    return Markup(environment().get_template(template).render(**context))


@functools.cache
def _text_environment() -> jinja2.Environment:
    # Markdown, not HTML: escaping happens when the Markdown is rendered and sanitised.
    return jinja2.Environment(
        loader=jinja2.PackageLoader("otmetka.site_builder", "templates"),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def consent_markdown(operator: str, address: str, *, paper: bool) -> str:
    """The consent text: the page's version (paper=False) or the paper form with blanks."""
    template = _text_environment().get_template("consent.md.j2")
    return template.render(
        version=CONSENT_TEXT_VERSION, operator=operator, address=address, paper=paper
    )


def consent_document() -> str:
    """docs/consent.md: the paper form, with the operator left for the school to fill in."""
    head = (
        "<!-- Generated by `python -m otmetka.site_builder.pages.render consent > docs/consent.md`"
        " from site_builder/templates/consent.md.j2; do not edit. -->\n\n"
        "# Согласие на обработку персональных данных\n\n"
        "Текст согласия, которое родитель (законный представитель) даёт на своей странице "
        "кнопкой «Даю согласие» или на бумаге. Ниже — бумажная форма; на странице вместо "
        "пропусков стоят сведения об операторе, а подписью служит нажатие кнопки.\n\n"
    )
    body = consent_markdown("________________ (наименование школы)", "________________", paper=True)
    return head + body.replace("### Согласие на обработку персональных данных", "## Форма", 1)


def consent_html() -> Markup:
    """The consent text for the page, with this school as the operator."""
    name, address, _short = events.operator()
    text = consent_markdown(name or "школа", address or NO_ADDRESS, paper=False)
    # The template is wrapped for reading; the renderer turns every newline into <br>.
    return Markup(render_markdown(_UNWRAP.sub(" ", text)))


def _acts(role: str, today: dt.date, **extra: Any) -> dict[str, Any]:
    return {"role": role, "as_of": today, "consent_version": CONSENT_TEXT_VERSION, **extra}


def render_child(child: v.ChildView, today: dt.date) -> Markup:
    """One student's section, rendered once for every page that shows the student; its
    parts that are the same for the whole class are marked (see `for_family`)."""
    return _render("_child.html.j2", c=child, today=today)


_CLASS_WIDE = re.compile(r"<!--otm:class-wide-->.*?<!--/otm:class-wide-->\n?", re.DOTALL)
_MARKS = re.compile(r"<!--/?otm:class-wide-->\n?")


def for_family(section: Markup) -> Markup:
    """The section as the student and the guardians see it: whole, without the marks."""
    return Markup(_MARKS.sub("", section))


def for_class_teacher(section: Markup) -> Markup:
    """The section in the class teacher's page, which shows every student of the class:
    without the timetable, homework, teachers and holidays, the same for all of them (a
    page of thirty copies would be three times the size)."""
    return Markup(_CLASS_WIDE.sub("", section))


# --- who has a page -----------------------------------------------------------------------


@dataclass
class Roster:
    """Who has a page on a given day, and what each page is made of."""

    by_class: dict[str, list[q.StudentRow]]  # active students, sorted by name
    guardians: dict[str, q.GuardianRow]  # electronic delivery, with an active child
    children: dict[str, list[str]]  # guardian -> active children, sorted by name
    class_teachers: dict[str, list[str]]  # teacher -> their classes, in school order
    deputies: set[str]
    teachers: dict[str, q.TeacherRow] = field(repr=False)
    # Children of a legal representative who refused or withdrew consent: the family is on
    # paper, so the child's own page goes too (other guardians who consented keep theirs).
    paper_students: set[str] = field(default_factory=set)
    # Student -> every guardian linked to them, whatever the delivery (control tables).
    links: dict[str, list[q.GuardianRow]] = field(default_factory=dict, repr=False)

    @functools.cached_property
    def students(self) -> dict[str, q.StudentRow]:
        return {s.id: s for rows in self.by_class.values() for s in rows}

    def keys(self) -> set[PageKey]:
        keys = {
            (STUDENT, sid)
            for rows in self.by_class.values()
            for sid in _ids(rows)
            if sid not in self.paper_students
        }
        keys |= {(GUARDIAN, gid) for gid in self.guardians}
        keys |= {(TEACHER, tid) for tid in (*self.class_teachers, *self.deputies)}
        return keys


def _ids(rows: Iterable[q.StudentRow]) -> list[str]:
    return [row.id for row in rows]


def _by_class(students: Iterable[q.StudentRow]) -> dict[str, list[q.StudentRow]]:
    grouped: dict[str, list[q.StudentRow]] = defaultdict(list)
    for student in sorted(students, key=v.student_sort_key):
        grouped[student.class_unit_id].append(student)
    return dict(grouped)


def load_roster(
    today: dt.date,
    classes: Iterable[q.ClassRow],
    teachers: Iterable[q.TeacherRow],
    refusing: Collection[str] = (),
) -> Roster:
    """`refusing`: guardians who refused or withdrew consent; they and (as their legal
    representative) their children's own pages are left out."""
    by_class = _by_class(q.active_students(today))
    students = {s.id: s for rows in by_class.values() for s in rows}
    guardians: dict[str, q.GuardianRow] = {}
    children: dict[str, list[str]] = defaultdict(list)
    links: dict[str, list[q.GuardianRow]] = defaultdict(list)
    for guardian, student_id in q.guardians_with_children(today):
        if student_id in students and guardian not in links[student_id]:
            links[student_id].append(guardian)
        electronic = guardian.delivery == "electronic" and guardian.id not in refusing
        if electronic and student_id in students:
            guardians[guardian.id] = guardian
            if student_id not in children[guardian.id]:  # two links to one child
                children[guardian.id].append(student_id)
    for kids in children.values():
        kids.sort(key=lambda sid: v.student_sort_key(students[sid]))
    staff = {t.id: t for t in teachers}
    class_teachers: dict[str, list[str]] = defaultdict(list)
    for cls in classes:
        if cls.class_teacher_id in staff:
            class_teachers[cls.class_teacher_id].append(cls.id)
    deputies = {t.id for t in staff.values() if "deputy_head" in t.roles}
    paper = events.students_of_refusing_families(refusing) if refusing else set()
    return Roster(
        by_class, guardians, dict(children), dict(class_teachers), deputies, staff, paper, links
    )


def roster(today: dt.date) -> Roster:
    """Who has a page on `today` under the consents given, with each guardian's children."""
    states = events.consent_states()
    refusing = {gid for gid, state in states.items() if state in events.ON_PAPER}
    return load_roster(today, q.class_units(), q.teachers(), refusing)


def people_with_pages(today: dt.date | None = None) -> set[PageKey]:
    """Everyone who should have a page now: active students (left_at is None or in the
    future), guardians with delivery == "electronic" who have at least one active child,
    teachers who are class teacher of a class or have the deputy_head role.

    `today` defaults to the current date; pass the build's date to keep builds consistent.
    """
    day = today or dt.date.today()
    return roster(day).keys()


def expand_dirty(dirty: set[tuple[str, str]]) -> set[PageKey] | None:
    """From db DirtyPerson rows (kinds student/guardian/teacher/all) to the pages to rebuild:
    a student -> that student, their guardians, their class teacher (and the deputy heads
    whose page is older than DEPUTY_REFRESH); a guardian -> guardian and the class teachers
    of their children (whose control table shows the family's consent and acknowledgements
    — an act marks the guardian dirty); a teacher -> None
    (rebuild everything, names appear on many pages); ("all", "*") -> None.

    The result may name people who no longer have a page (a student who left, a family that
    moved to paper): `render_pages` skips them, and the builder removes their pages by
    comparing with `people_with_pages()`. An unknown kind also means "rebuild everything".
    """
    if any(kind not in (STUDENT, GUARDIAN) for kind, _ in dirty):
        return None
    students = {pid for kind, pid in dirty if kind == STUDENT}
    guardians = {pid for kind, pid in dirty if kind == GUARDIAN}
    pages: set[PageKey] = {(kind, pid) for kind, pid in dirty}
    pages |= {(GUARDIAN, gid) for gid, _ in q.guardians_of_students(students)}
    in_classes = students | q.students_of_guardians(guardians)
    pages |= {(TEACHER, tid) for tid in q.class_teachers_of_students(in_classes).values()}
    if students:
        # A deputy head's page compares every class: redoing it means analysing the whole
        # school, so a change of marks refreshes it at most once in DEPUTY_REFRESH.
        stale = dt.datetime.now(dt.UTC) - DEPUTY_REFRESH
        pages |= {(TEACHER, tid) for tid in analytics.deputy_pages_built_before(stale)}
    return pages


# --- rendering ----------------------------------------------------------------------------


def class_anchor(class_id: str) -> str:
    return "k" + hashlib.sha256(class_id.encode("utf-8")).hexdigest()[:10]


def _student_name(student: q.StudentRow) -> str:
    return v.full_name(student.last_name, student.first_name, student.middle_name)


@dataclass
class ClassWork:
    """What one class gives the pages; small enough to come back from a worker process."""

    class_id: str
    students: list[str]  # the class's students rendered, in order
    pages: list[tuple[PageKey, str]] = field(default_factory=list)  # students' own pages
    sections: dict[str, Markup] = field(default_factory=dict)  # those guardians wait for
    summary: v.ClassSummary | None = None  # for the deputy heads
    block: Markup | None = None  # for the class teachers


class _Build:
    """One run of `render_pages`: what is wanted, and what is still waited for."""

    def __init__(self, lookup: v.Lookup, roster: Roster, keys: set[PageKey]) -> None:
        self.lookup, self.roster = lookup, roster
        self.students = {pid for kind, pid in keys if kind == STUDENT}
        # guardian -> children not rendered yet; student -> guardians waiting for them
        self.waiting = {gid: set(roster.children[gid]) for kind, gid in keys if kind == GUARDIAN}
        self.readers: dict[str, set[str]] = defaultdict(set)
        for gid, kids in self.waiting.items():
            for sid in kids:
                self.readers[sid].add(gid)
        # teacher -> classes not rendered yet; class -> teachers waiting for it
        self.teachers = {
            pid: set(roster.class_teachers.get(pid, ())) for kind, pid in keys if kind == TEACHER
        }
        self.taught: dict[str, set[str]] = defaultdict(set)
        for tid, classes in self.teachers.items():
            for cid in classes:
                self.taught[cid].add(tid)
        # Deputy heads compare every class: their pages come after the last class.
        self.deputies = sorted(t for t in self.teachers if t in roster.deputies)
        self.summaries: list[v.ClassSummary] = []
        self.sections: dict[str, Markup] = {}
        self.class_blocks: dict[str, Markup] = {}
        self.staff = StaffData.load(lookup, roster) if self.teachers else None
        # The class's latest printed extracts, linked from the class teacher's page.
        names = {cid: row.name for cid, row in lookup.classes.items()}
        self.files = extract_files.class_files(names) if self.taught else {}

    def header(
        self, title: str, role: str, nav: list[tuple[str, str]], nav_label: str
    ) -> dict[str, Any]:
        return {
            "school_name": self.lookup.school_name,
            "title": title,
            "role": role,
            "today": self.lookup.today,
            "nav": nav,
            "nav_label": nav_label,
        }

    def todo(self) -> list[str]:
        """The classes to render, in school order."""
        return [
            class_id
            for class_id in self.lookup.classes
            if self.needed(class_id) or class_id in self.taught or self.deputies
        ]

    def run(self, works: Iterable[ClassWork]) -> Iterator[tuple[PageKey, str]]:
        """The pages, from each class's work (made here or in worker processes) in the order
        of `todo()`; the pages that gather several classes come as soon as they can."""
        for work in works:
            yield from self.take(work)
        for tid in self.deputies:
            yield (TEACHER, tid), self.teacher_page(tid)

    def needed(self, class_id: str) -> list[q.StudentRow]:
        students = self.roster.by_class.get(class_id, [])
        if class_id in self.taught:
            return students
        return [s for s in students if s.id in self.students or s.id in self.readers]

    def class_work(self, class_id: str) -> ClassWork:
        """The heavy part of a class: one bundle, each child's section rendered once, its
        students' pages, and what the staff pages take from it."""
        students = self.needed(class_id)
        scope = v.ClassScope.build(self.lookup.classes[class_id], self.lookup)
        start, end = scope.load_range
        bundle = q.class_bundle(
            class_id, start, end, finals_from=scope.year_start, notes_from=scope.year_start
        )
        index = v.ClassIndex(bundle, scope, self.lookup)
        children = [v.child_view(s, index) for s in students]
        rendered = [render_child(child, self.lookup.today) for child in children]
        sections = [for_family(section) for section in rendered]
        work = ClassWork(class_id, [s.id for s in students])
        for student, section in zip(students, sections, strict=True):
            if student.id in self.students:
                work.pages.append(
                    ((STUDENT, student.id), self.student_page(student, scope, section))
                )
            if student.id in self.readers:
                work.sections[student.id] = section
        if class_id in self.taught or self.deputies:
            staff = self.class_staff(scope, index)
            if self.deputies:
                work.summary = v.class_summary(*staff, scope.class_row, self.lookup)
            if class_id in self.taught:
                brief = [for_class_teacher(section) for section in rendered]
                work.block = self.class_block(scope, index, children, brief, staff)
        return work

    def take(self, work: ClassWork) -> Iterator[tuple[PageKey, str]]:
        """A class's pages, and the pages of guardians and teachers it was the last for."""
        yield from work.pages
        self.sections.update(work.sections)
        if work.summary is not None:
            self.summaries.append(work.summary)
        if work.block is not None:
            self.class_blocks[work.class_id] = work.block
        yield from self.guardian_pages(work.students)
        yield from self.teacher_pages(work.class_id)

    def class_staff(
        self, scope: v.ClassScope, index: v.ClassIndex
    ) -> tuple[v.AnalyticsView, v.ControlView]:
        assert self.staff is not None
        return class_staff(scope, index, self.roster, self.staff.facts)

    def class_block(
        self,
        scope: v.ClassScope,
        index: v.ClassIndex,
        children: list[v.ChildView],
        sections: list[Markup],
        staff: tuple[v.AnalyticsView, v.ControlView],
    ) -> Markup:
        assert self.staff is not None
        class_id = scope.class_row.id
        anchor = class_anchor(class_id)
        stats, control = staff
        pupils = {p.anchor: p for p in stats.pupils}
        journal = v.class_journal(self.roster.by_class.get(class_id, []), index)
        return _render(
            "_class.html.j2",
            cls=v.class_list_view(scope, children),
            sections=sections,
            anchor=anchor,
            extracts_file=self.files.get(class_id),
            report_file=self.staff.reports.get(class_id),
            journal=[
                (j.subject, journal_table(j, f"{anchor}-j{n}")) for n, j in enumerate(journal)
            ],
            stats=stats,
            charts=class_charts(stats, anchor),
            control=control,
            pupil_blocks=[
                pupil_block(pupils[c.anchor], stats, f"{anchor}-{c.anchor}") for c in children
            ],
        )

    def student_page(self, student: q.StudentRow, scope: v.ClassScope, section: Markup) -> str:
        context = self.header(
            _student_name(student), f"Дневник ученика, {scope.class_row.name}", [], ""
        )
        acts = _acts(STUDENT, self.lookup.today)
        return str(_render("page_student.html.j2", section=section, acts=acts, **context))

    def guardian_pages(self, done: list[str]) -> Iterator[tuple[PageKey, str]]:
        ready = set()
        for sid in done:
            for gid in self.readers.get(sid, ()):
                self.waiting[gid].discard(sid)
                if not self.waiting[gid]:
                    ready.add(gid)
        for gid in sorted(ready):
            yield (GUARDIAN, gid), self.guardian_page(gid)
            for sid in self.roster.children[gid]:
                self.release(sid, gid)

    def release(self, student_id: str, guardian_id: str) -> None:
        """A guardian page is out: keep the section only while another guardian waits."""
        self.readers[student_id].discard(guardian_id)
        if not self.readers[student_id]:
            del self.readers[student_id]
            self.sections.pop(student_id, None)

    def guardian_page(self, gid: str) -> str:
        guardian = self.roster.guardians[gid]
        kids = [self.roster.students[sid] for sid in self.roster.children[gid]]
        nav = [(v.anchor_of(s.id), self.child_label(s)) for s in kids]
        title = v.full_name(guardian.last_name, guardian.first_name, guardian.middle_name)
        context = self.header(title, "Страница родителя (законного представителя)", nav, "Дети")
        sections = [self.sections[s.id] for s in kids]
        acts = _acts(GUARDIAN, self.lookup.today)
        return str(_render("page_guardian.html.j2", sections=sections, acts=acts, **context))

    def child_label(self, student: q.StudentRow) -> str:
        """As the child's section heading says it: «Иванов Артём, 7Б»."""
        name = v.full_name(student.last_name, student.first_name)
        return f"{name}, {self.lookup.classes[student.class_unit_id].name}"

    def teacher_pages(self, class_id: str) -> Iterator[tuple[PageKey, str]]:
        for tid in sorted(self.taught.get(class_id, ())):
            self.teachers[tid].discard(class_id)
            if not self.teachers[tid] and tid not in self.deputies:
                yield (TEACHER, tid), self.teacher_page(tid)
        if not self.taught.get(class_id, set()) & set(self.deputies):
            self.class_blocks.pop(class_id, None)  # every teacher waiting for it has it now

    def teacher_page(self, tid: str) -> str:
        roster, lookup = self.roster, self.lookup
        teacher = roster.teachers[tid]
        class_ids = roster.class_teachers.get(tid, [])
        names = ", ".join(lookup.classes[c].name for c in class_ids)
        roles = [f"Классный руководитель {names}"] if class_ids else []
        deputy = tid in roster.deputies
        nav = [(class_anchor(c), f"Класс {lookup.classes[c].name}") for c in class_ids]
        if deputy:
            roles.append("Заместитель руководителя")
            nav = [("otm-school", "Классы школы"), ("otm-breaches", "Нарушения"), *nav]
        title = v.full_name(teacher.last_name, teacher.first_name, teacher.middle_name)
        context = self.header(title, "; ".join(roles), nav, "Разделы")
        blocks = [self.class_blocks[c] for c in class_ids]
        acts = _acts(TEACHER, lookup.today)
        if not deputy:
            return str(_render("page_teacher.html.j2", class_blocks=blocks, acts=acts, **context))
        school = self.school_context(tid)
        page = _render("page_deputy.html.j2", class_blocks=blocks, acts=acts, **school, **context)
        return str(page)

    def school_context(self, tid: str) -> dict[str, Any]:
        assert self.staff is not None
        report = self.staff.reports.get(report_files.SCHOOL)
        return {
            "summaries": self.summaries,
            "school_charts": school_charts(self.summaries, "otm-school"),
            "breaches": self.staff.breach_lines(self.lookup),
            "report_file": report_files.for_reader(report, tid) if report else None,
        }


@dataclass
class StaffData:
    """School-wide facts for the staff pages, loaded once per build (a fixed number of
    statements, whatever the number of classes)."""

    facts: v.SchoolFacts
    reports: dict[str, report_files.ReportFile]
    roster: Roster

    @classmethod
    def load(cls, lookup: v.Lookup, roster: Roster) -> StaffData:
        today = lookup.today
        scopes = [v.ClassScope.build(c, lookup) for c in lookup.classes.values()]
        since = min((s.period_range[0] for s in scopes), default=today)
        since = min(since, v.week_of(today)[0])
        consents = events.consent_states()
        facts = v.SchoolFacts(
            consents=consents,
            acknowledgements=analytics.acknowledgement_rows(since),
            paper=events.paper_list(today),
            no_slips=printed.people_without_slips(_needing_logins(roster, consents)),
        )
        names = {cid: row.name for cid, row in lookup.classes.items()}
        return cls(facts, report_files.report_files(names), roster)

    def breach_lines(self, lookup: v.Lookup) -> list[v.BreachLine]:
        names: dict[tuple[str, str], str] = {
            (TEACHER, tid): lookup.teacher_full(tid) for tid in lookup.teachers
        }
        for sid, student in self.roster.students.items():
            names[(STUDENT, sid)] = _student_name(student)
        for guardians in self.roster.links.values():
            for g in guardians:
                names[(GUARDIAN, g.id)] = v.full_name(g.last_name, g.first_name, g.middle_name)
        return v.breach_lines(events.breaches(include_closed=True), names, lookup.today)


def class_staff(
    scope: v.ClassScope, index: v.ClassIndex, roster: Roster, facts: v.SchoolFacts
) -> tuple[v.AnalyticsView, v.ControlView]:
    """The analytics and control tables of a class, from its bundle: no statement."""
    everyone = roster.by_class.get(scope.class_row.id, [])
    start, end = scope.period_range
    figures = analytics.class_analytics(
        index.bundle,
        [s.id for s in everyone],
        start,
        end,
        scope.today,
        period_id=scope.period.id if scope.period else None,
    )
    period = scope.period.name if scope.period else ""
    view = v.analytics_view(figures, everyone, scope.class_row, period, index.lookup)
    return view, v.control_view(scope, everyone, roster.links, facts)


def _needing_logins(roster: Roster, consents: dict[str, str]) -> set[PageKey]:
    """Who should have been given a login: those with a page, families on paper aside."""
    refusing = {gid for gid, state in consents.items() if state in events.ON_PAPER}
    paper = roster.paper_students
    if refusing and not paper:  # a roster loaded without the consents
        paper = events.students_of_refusing_families(refusing)
    people = {(STUDENT, sid) for sid in roster.students if sid not in paper}
    return people | {(GUARDIAN, gid) for gid in roster.guardians if gid not in refusing}


# --- staff pages: the journal, charts, blocks ---------------------------------------------


def _cell(cell: v.Cell) -> str:
    marks, codes = cell
    if not marks and not codes:
        return "<td></td>"
    parts = [f"<b>{escape(m)}</b>" for m in marks] + [f"<i>{escape(c)}</i>" for c in codes]
    return f"<td>{' '.join(parts)}</td>"


def journal_table(journal: v.SubjectJournal, table_id: str) -> Markup:
    """Students × dates of one subject. Built as one string: a class teacher's page holds
    tens of thousands of cells, and a template loop per cell would dominate the build."""
    heads = "".join(f'<th scope="col">{day.day}.{day.month:02}</th>' for day in journal.dates)
    rows = []
    for line in journal.lines:
        cells = "".join(_cell(cell) for cell in line.cells)
        finals = escape(", ".join(line.finals)) if line.finals else ""
        rows.append(
            f'<tr><th scope="row">{escape(line.name)}</th>{cells}'
            f'<td class="num">{average(line.average)}</td><td>{finals}</td></tr>'
        )
    return Markup(
        f'<div class="tw"><table class="jr" id="{table_id}">'
        f'<caption class="sr">Журнал: {escape(journal.subject)}</caption>'
        f'<thead><tr><th scope="col">Ученик</th>{heads}<th scope="col">Ср. балл</th>'
        f'<th scope="col">Итог</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
    )


SPREAD_SERIES = ("«5»", "«4»", "«3»", "«2»")


def class_charts(stats: v.AnalyticsView, prefix: str) -> dict[str, Markup]:
    """The charts of a class's analytics (the page and the PDF report draw the same)."""
    subjects = [s for s in stats.subjects if s.marks]
    return {
        "averages": charts.bar_chart(
            f"{prefix}-avg",
            "Средний балл по предметам",
            [charts.Bar(s.subject, s.average, average(s.average)) for s in subjects],
            maximum=5,
            headers=("Предмет", "Средний балл"),
        ),
        "spread": charts.stacked_bars(
            f"{prefix}-spread",
            "Оценки по предметам",
            [charts.Stack(s.subject, s.spread) for s in subjects],
            series=SPREAD_SERIES,
            headers=("Предмет", *SPREAD_SERIES, "Всего"),
        ),
        "weeks": charts.column_chart(
            f"{prefix}-weeks",
            "Посещаемость по неделям",
            [
                charts.Bar(
                    f"{w.start.day}.{w.start.month:02}", w.attendance, charts.percent(w.attendance)
                )
                for w in stats.weeks
            ],
            maximum=1,
            headers=("Неделя с", "Посещаемость"),
            note="доля уроков, на которых ученики были",
        ),
        "reasons": charts.bar_chart(
            f"{prefix}-reasons",
            "Пропуски и опоздания по причинам",
            [
                charts.Bar(ATTENDANCE_CATEGORIES[c].capitalize(), n, str(n))
                for c, n in stats.absences
            ],
            maximum=max((n for _c, n in stats.absences), default=0) or 1,
            headers=("Причина", "Уроков"),
        ),
    }


def pupil_chart(pupil: v.PupilStat, stats: v.AnalyticsView, chart_id: str) -> Markup:
    labels = [f"{w.start.day}.{w.start.month:02}" for w in stats.weeks]
    return charts.line_chart(
        chart_id,
        f"Средний балл по неделям: {pupil.name}",
        labels,
        [
            charts.Series("ученик", pupil.weekly),
            charts.Series("класс", tuple(w.average for w in stats.weeks)),
        ],
        minimum=2,
        maximum=5,
        label_header="Неделя с",
    )


def pupil_block(pupil: v.PupilStat, stats: v.AnalyticsView, chart_id: str) -> Markup:
    return _render(
        "_pupil_stats.html.j2", p=pupil, stats=stats, chart=pupil_chart(pupil, stats, chart_id)
    )


def school_charts(summaries: Sequence[v.ClassSummary], prefix: str) -> dict[str, Markup]:
    return {
        "averages": charts.bar_chart(
            f"{prefix}-avg",
            "Средний балл по классам",
            [charts.Bar(s.name, s.average, average(s.average)) for s in summaries],
            maximum=5,
            headers=("Класс", "Средний балл"),
        ),
        "attendance": charts.bar_chart(
            f"{prefix}-att",
            "Посещаемость по классам",
            [charts.Bar(s.name, s.attendance, charts.percent(s.attendance)) for s in summaries],
            maximum=1,
            headers=("Класс", "Посещаемость"),
        ),
        "risk": charts.bar_chart(
            f"{prefix}-risk",
            "Ученики в группе риска",
            [charts.Bar(s.name, s.at_risk, str(s.at_risk)) for s in summaries],
            maximum=max((s.at_risk for s in summaries), default=0) or 1,
            headers=("Класс", "Учеников"),
        ),
    }


def render_pages(
    today: dt.date, wanted: set[PageKey] | None = None, *, workers: int = 1
) -> Iterator[tuple[PageKey, str]]:
    """Yield (key, html_fragment) for every page in `wanted` (None: everyone on roll, whatever
    their consent; the builder asks only for guardians who consented, see build.py).
    Work class by class: load one class bundle, render each child section ONCE and reuse it
    in the student page, the guardians' pages and the class teacher page.

    Keys in `wanted` that have no page on `today` (left, paper delivery, unknown) are
    skipped. Pages come out in no particular order, each exactly once. With `workers` > 1
    the classes are rendered by that many processes (see otmetka.site_builder.pages.render_pool).
    """
    build = _build_for(today, wanted)
    todo = build.todo()
    from otmetka.site_builder.pages import render_pool  # it imports this module

    if workers > 1 and len(todo) > 1 and database_url() is not None:
        works = render_pool.class_works(todo, today, wanted, workers)
    else:
        works = map(build.class_work, todo)
    yield from build.run(works)


def _build_for(today: dt.date, wanted: set[PageKey] | None) -> _Build:
    ref = q.reference()
    lookup = v.Lookup.build(ref, today)
    roster = load_roster(today, ref.classes, ref.teachers)
    keys = roster.keys() if wanted is None else set(wanted) & roster.keys()
    return _Build(lookup, roster, keys)


def render_consent_pages(today: dt.date, keys: Iterable[PageKey]) -> Iterator[tuple[PageKey, str]]:
    """Pages of guardians who have not consented yet: what the service is and the consent
    form, with no personal data at all (not even the guardian's name)."""
    _name, _address, short = events.operator()
    acts = _acts("consent", today, consent_html=consent_html())
    page = str(_render("page_consent.html.j2", school_name=short, acts=acts))
    for key in sorted(keys):
        yield key, page


def blocked_page(title: str) -> str:
    """The «доступ заблокирован» page that replaces a page whose login leaked."""
    return str(_render("page_blocked.html.j2", title=title))


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["consent"]:
        sys.exit("usage: python -m otmetka.site_builder.pages.render consent > docs/consent.md")
    sys.stdout.write(consent_document())
