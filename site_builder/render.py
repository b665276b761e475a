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
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import jinja2
from babel.dates import format_date
from markupsafe import Markup

from db import queries as q
from site_builder import views as v
from site_builder.markdown_render import render_markdown

PageKey = tuple[str, str]  # (kind, person_id); kind in {"guardian", "student", "teacher"}

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
        loader=jinja2.PackageLoader("site_builder", "templates"),
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
    )
    env.globals.update(
        mark_kinds=MARK_KINDS,
        categories=ATTENDANCE_CATEGORIES,
        group_kinds=GROUP_KINDS,
        holiday_kinds=HOLIDAY_KINDS,
    )
    return env


def page_css() -> str:
    """The page styles (site_builder/static/page.css), for the shell to inline."""
    return (resources.files("site_builder") / "static" / "page.css").read_text(encoding="utf-8")


def _render(template: str, **context: Any) -> Markup:
    return Markup(environment().get_template(template).render(**context))


def render_child(child: v.ChildView, today: dt.date) -> Markup:
    """One student's section: the same markup on every page that shows the student."""
    return _render("_child.html.j2", c=child, today=today)


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

    @functools.cached_property
    def students(self) -> dict[str, q.StudentRow]:
        return {s.id: s for rows in self.by_class.values() for s in rows}

    def keys(self) -> set[PageKey]:
        keys = {(STUDENT, sid) for rows in self.by_class.values() for sid in _ids(rows)}
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
    today: dt.date, classes: Iterable[q.ClassRow], teachers: Iterable[q.TeacherRow]
) -> Roster:
    by_class = _by_class(q.active_students(today))
    students = {s.id: s for rows in by_class.values() for s in rows}
    guardians: dict[str, q.GuardianRow] = {}
    children: dict[str, list[str]] = defaultdict(list)
    for guardian, student_id in q.guardians_with_children(today):
        if guardian.delivery == "electronic" and student_id in students:
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
    return Roster(by_class, guardians, dict(children), dict(class_teachers), deputies, staff)


def people_with_pages(today: dt.date | None = None) -> set[PageKey]:
    """Everyone who should have a page now: active students (left_at is None or in the
    future), guardians with delivery == "electronic" who have at least one active child,
    teachers who are class teacher of a class or have the deputy_head role.

    `today` defaults to the current date; pass the build's date to keep builds consistent.
    """
    day = today or dt.date.today()
    return load_roster(day, q.class_units(), q.teachers()).keys()


def expand_dirty(dirty: set[tuple[str, str]]) -> set[PageKey] | None:
    """From db DirtyPerson rows (kinds student/guardian/teacher/all) to the pages to rebuild:
    a student -> that student, their guardians, their class teacher; a guardian -> guardian;
    a teacher -> None (rebuild everything, names appear on many pages); ("all", "*") -> None.

    The result may name people who no longer have a page (a student who left, a family that
    moved to paper): `render_pages` skips them, and the builder removes their pages by
    comparing with `people_with_pages()`. An unknown kind also means "rebuild everything".
    """
    if any(kind not in (STUDENT, GUARDIAN) for kind, _ in dirty):
        return None
    students = {pid for kind, pid in dirty if kind == STUDENT}
    pages: set[PageKey] = {(kind, pid) for kind, pid in dirty}
    pages |= {(GUARDIAN, gid) for gid, _ in q.guardians_of_students(students)}
    pages |= {(TEACHER, tid) for tid in q.class_teachers_of_students(students).values()}
    return pages


# --- rendering ----------------------------------------------------------------------------


def _class_anchor(class_id: str) -> str:
    return "k" + hashlib.sha256(class_id.encode("utf-8")).hexdigest()[:10]


def _student_name(student: q.StudentRow) -> str:
    return v.full_name(student.last_name, student.first_name, student.middle_name)


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
        self.sections: dict[str, Markup] = {}
        self.class_blocks: dict[str, Markup] = {}

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

    def run(self) -> Iterator[tuple[PageKey, str]]:
        yield from self.lone_teacher_pages()
        for class_id in self.lookup.classes:
            students = self.needed(class_id)
            if students or class_id in self.taught:
                yield from self.class_pages(class_id, students)

    def needed(self, class_id: str) -> list[q.StudentRow]:
        students = self.roster.by_class.get(class_id, [])
        if class_id in self.taught:
            return students
        return [s for s in students if s.id in self.students or s.id in self.readers]

    def class_pages(
        self, class_id: str, students: list[q.StudentRow]
    ) -> Iterator[tuple[PageKey, str]]:
        scope = v.ClassScope.build(self.lookup.classes[class_id], self.lookup)
        start, end = scope.load_range
        bundle = q.class_bundle(
            class_id, start, end, finals_from=scope.year_start, notes_from=scope.year_start
        )
        index = v.ClassIndex(bundle, scope, self.lookup)
        children = [v.child_view(s, index) for s in students]
        sections = [render_child(child, self.lookup.today) for child in children]
        for student, section in zip(students, sections, strict=True):
            if student.id in self.students:
                yield (STUDENT, student.id), self.student_page(student, scope, section)
            if student.id in self.readers:
                self.sections[student.id] = section
        if class_id in self.taught:
            list_view = v.class_list_view(scope, children)
            self.class_blocks[class_id] = _render(
                "_class.html.j2", cls=list_view, sections=sections, anchor=_class_anchor(class_id)
            )
        yield from self.guardian_pages([s.id for s in students])
        yield from self.teacher_pages(class_id)

    def student_page(self, student: q.StudentRow, scope: v.ClassScope, section: Markup) -> str:
        context = self.header(
            _student_name(student), f"Дневник ученика, {scope.class_row.name}", [], ""
        )
        return str(_render("page_student.html.j2", section=section, **context))

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
        return str(_render("page_guardian.html.j2", sections=sections, **context))

    def child_label(self, student: q.StudentRow) -> str:
        """As the child's section heading says it: «Иванов Артём, 7Б»."""
        name = v.full_name(student.last_name, student.first_name)
        return f"{name}, {self.lookup.classes[student.class_unit_id].name}"

    def lone_teacher_pages(self) -> Iterator[tuple[PageKey, str]]:
        """Deputies who lead no class: their page needs no class data."""
        for tid in sorted(t for t, classes in self.teachers.items() if not classes):
            yield (TEACHER, tid), self.teacher_page(tid)

    def teacher_pages(self, class_id: str) -> Iterator[tuple[PageKey, str]]:
        for tid in sorted(self.taught.get(class_id, ())):
            self.teachers[tid].discard(class_id)
            if not self.teachers[tid]:
                yield (TEACHER, tid), self.teacher_page(tid)
        self.class_blocks.pop(class_id, None)  # every teacher waiting for it has it now

    def teacher_page(self, tid: str) -> str:
        roster, lookup = self.roster, self.lookup
        teacher = roster.teachers[tid]
        class_ids = roster.class_teachers.get(tid, [])
        names = ", ".join(lookup.classes[c].name for c in class_ids)
        roles = [f"Классный руководитель {names}"] if class_ids else []
        if tid in roster.deputies:
            roles.append("Заместитель руководителя")
        nav = [(_class_anchor(c), f"Класс {lookup.classes[c].name}") for c in class_ids]
        title = v.full_name(teacher.last_name, teacher.first_name, teacher.middle_name)
        context = self.header(title, "; ".join(roles), nav, "Классы")
        school_classes = []
        if tid in roster.deputies:
            active = [s for rows in roster.by_class.values() for s in rows]
            school_classes = v.school_classes_view(lookup, active)
        blocks = [self.class_blocks[c] for c in class_ids]
        page = _render(
            "page_teacher.html.j2", school_classes=school_classes, class_blocks=blocks, **context
        )
        return str(page)


def render_pages(
    today: dt.date, wanted: set[PageKey] | None = None
) -> Iterator[tuple[PageKey, str]]:
    """Yield (key, html_fragment) for every page in `wanted` (None = people_with_pages()).
    Work class by class: load one class bundle, render each child section ONCE and reuse it
    in the student page, the guardians' pages and the class teacher page.

    Keys in `wanted` that have no page on `today` (left, paper delivery, unknown) are
    skipped. Pages come out in no particular order, each exactly once.
    """
    ref = q.reference()
    lookup = v.Lookup.build(ref, today)
    roster = load_roster(today, ref.classes, ref.teachers)
    keys = roster.keys() if wanted is None else set(wanted) & roster.keys()
    yield from _Build(lookup, roster, keys).run()
