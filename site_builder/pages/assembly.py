"""Pages assembled class by class: one bundle of queries per class, each student's section
rendered once and reused on the student's page, the guardians' pages and the class
teacher's page; the pages that gather several classes come out as soon as their last
class is done.

A class's work (`ClassWork`) is small and plain, so it can come back from a worker process
(otmetka.site_builder.pages.render_pool).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from otmetka.db import acts as events
from otmetka.db import queries, row_types
from otmetka.site_builder import attachments, templating
from otmetka.site_builder.pages import (
    analysis,
    audience,
    child_html,
    consent_text,
    family,
    lookups,
    staff_blocks,
    staff_views,
    week,
)


def acts_context(role: str, today: dt.date, **extra: Any) -> dict[str, Any]:
    return {
        "role": role,
        "as_of": today,
        "consent_version": consent_text.CONSENT_TEXT_VERSION,
        **extra,
    }


@dataclass
class ClassWork:
    """What one class gives the pages; small enough to come back from a worker process."""

    class_id: str
    students: list[str]  # the class's students rendered, in order
    pages: list[tuple[audience.PageKey, str]] = field(default_factory=list)  # students' own pages
    sections: dict[str, Markup] = field(default_factory=dict)  # those guardians wait for
    glances: dict[str, Markup] = field(default_factory=dict)  # the same children's glances
    summary: staff_views.ClassSummary | None = None  # for the deputy heads
    block: Markup | None = None  # for the class teachers


class PageBuild:
    """One run of `render_pages`: what is wanted, and what is still waited for."""

    def __init__(
        self, lookup: lookups.Lookup, roster: audience.Roster, keys: set[audience.PageKey]
    ) -> None:
        self.lookup, self.roster = lookup, roster
        self.students = {pid for kind, pid in keys if kind == audience.STUDENT}
        # guardian -> children not rendered yet; student -> guardians waiting for them
        self.waiting = {
            gid: set(roster.children[gid]) for kind, gid in keys if kind == audience.GUARDIAN
        }
        self.readers: dict[str, set[str]] = defaultdict(set)
        for gid, kids in self.waiting.items():
            for sid in kids:
                self.readers[sid].add(gid)
        # teacher -> classes not rendered yet; class -> teachers waiting for it
        self.teachers = {
            pid: set(roster.class_teachers.get(pid, ()))
            for kind, pid in keys
            if kind == audience.TEACHER
        }
        self.taught: dict[str, set[str]] = defaultdict(set)
        for tid, classes in self.teachers.items():
            for cid in classes:
                self.taught[cid].add(tid)
        # Deputy heads compare every class: their pages come after the last class.
        self.deputies = sorted(t for t in self.teachers if t in roster.deputies)
        self.summaries: list[staff_views.ClassSummary] = []
        self.sections: dict[str, Markup] = {}
        self.glances: dict[str, Markup] = {}
        # What the guardians' pages say was acknowledged last, on any phone or on paper.
        self.acknowledged = events.last_acknowledgements(self.waiting) if self.waiting else {}
        self.class_blocks: dict[str, Markup] = {}
        self.staff = staff_blocks.StaffData.load(lookup, roster) if self.teachers else None
        # The class's latest printed extracts, linked from the class teacher's page.
        names = {cid: row.name for cid, row in lookup.classes.items()}
        self.files = attachments.class_files(names) if self.taught else {}

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

    def last_pages(self) -> Iterator[tuple[audience.PageKey, str]]:
        """The pages that wait for every class (the deputy heads'): after `take` has had the
        work of each class of `todo()`."""
        for tid in self.deputies:
            yield (audience.TEACHER, tid), self.teacher_page(tid)

    def needed(self, class_id: str) -> list[row_types.StudentRow]:
        students = self.roster.by_class.get(class_id, [])
        if class_id in self.taught:
            return students
        return [s for s in students if s.id in self.students or s.id in self.readers]

    def class_work(self, class_id: str) -> ClassWork:
        """The heavy part of a class: one bundle, each child's section rendered once, its
        students' pages, and what the staff pages take from it."""
        students = self.needed(class_id)
        scope = lookups.ClassScope.build(self.lookup.classes[class_id], self.lookup)
        start, end = scope.load_range
        bundle = queries.class_bundle(
            class_id, start, end, finals_from=scope.year_start, notes_from=scope.year_start
        )
        index = lookups.ClassIndex(bundle, scope, self.lookup)
        children = [family.child_view(s, index) for s in students]
        lessons = week.ClassLessons(index)
        weeks = [week.child_week(child, lessons) for child in children]
        today = self.lookup.today
        items = child_html.ChildItems()
        pairs = list(zip(children, weeks, strict=True))
        rendered = [child_html.section(c, w.weeks, today, items) for c, w in pairs]
        sections = [section.whole for section in rendered]
        glances = [child_html.glance(c, w.glance) for c, w in pairs]
        work = ClassWork(class_id, [s.id for s in students])
        for student, section, glance in zip(students, sections, glances, strict=True):
            if student.id in self.students:
                page = self.student_page(student, scope, glance, section)
                work.pages.append(((audience.STUDENT, student.id), page))
            if student.id in self.readers:
                work.sections[student.id] = section
                work.glances[student.id] = glance
        if class_id in self.taught or self.deputies:
            staff = self.class_staff(scope, index)
            if self.deputies:
                work.summary = staff_views.class_summary(*staff, scope.class_row, self.lookup)
            if class_id in self.taught:
                brief = [section.brief for section in rendered]
                work.block = self.class_block(scope, index, children, brief, staff)
        return work

    def take(self, work: ClassWork) -> Iterator[tuple[audience.PageKey, str]]:
        """A class's pages, and the pages of guardians and teachers it was the last for."""
        yield from work.pages
        self.sections.update(work.sections)
        self.glances.update(work.glances)
        if work.summary is not None:
            self.summaries.append(work.summary)
        if work.block is not None:
            self.class_blocks[work.class_id] = work.block
        yield from self.guardian_pages(work.students)
        yield from self.teacher_pages(work.class_id)

    def class_staff(
        self, scope: lookups.ClassScope, index: lookups.ClassIndex
    ) -> tuple[analysis.AnalyticsView, staff_views.ControlView]:
        assert self.staff is not None
        return staff_blocks.class_staff(scope, index, self.roster, self.staff.facts)

    def class_block(
        self,
        scope: lookups.ClassScope,
        index: lookups.ClassIndex,
        children: list[family.ChildView],
        sections: list[Markup],
        staff: tuple[analysis.AnalyticsView, staff_views.ControlView],
    ) -> Markup:
        assert self.staff is not None
        class_id = scope.class_row.id
        anchor = staff_blocks.class_anchor(class_id)
        stats, control = staff
        pupils = {p.anchor: p for p in stats.pupils}
        journal = staff_views.class_journal(self.roster.by_class.get(class_id, []), index)
        return templating.fragment(
            "_class.html.j2",
            cls=staff_views.class_list_view(scope, children),
            sections=sections,
            anchor=anchor,
            extracts_file=self.files.get(class_id),
            report_file=self.staff.reports.get(class_id),
            journal=[
                (j.subject, staff_blocks.journal_table(j, f"{anchor}-j{n}"))
                for n, j in enumerate(journal)
            ],
            stats=stats,
            charts=staff_blocks.class_charts(stats, anchor),
            control=control,
            pupil_blocks=[
                staff_blocks.pupil_block(pupils[c.anchor], stats, f"{anchor}-{c.anchor}")
                for c in children
            ],
        )

    def student_page(
        self,
        student: row_types.StudentRow,
        scope: lookups.ClassScope,
        glance: Markup,
        section: Markup,
    ) -> str:
        context = self.header(
            lookups.person_name(student), f"Дневник ученика, {scope.class_row.name}", [], ""
        )
        acts = acts_context(audience.STUDENT, self.lookup.today)
        page = templating.fragment(
            "page_student.html.j2", glance=glance, section=section, acts=acts, **context
        )
        return str(page)

    def guardian_pages(self, done: list[str]) -> Iterator[tuple[audience.PageKey, str]]:
        ready = set()
        for sid in done:
            for gid in self.readers.get(sid, ()):
                self.waiting[gid].discard(sid)
                if not self.waiting[gid]:
                    ready.add(gid)
        for gid in sorted(ready):
            yield (audience.GUARDIAN, gid), self.guardian_page(gid)
            for sid in self.roster.children[gid]:
                self.release(sid, gid)

    def release(self, student_id: str, guardian_id: str) -> None:
        """A guardian page is out: keep the section only while another guardian waits."""
        self.readers[student_id].discard(guardian_id)
        if not self.readers[student_id]:
            del self.readers[student_id]
            self.sections.pop(student_id, None)
            self.glances.pop(student_id, None)

    def guardian_page(self, gid: str) -> str:
        guardian = self.roster.guardians[gid]
        kids = [self.roster.students[sid] for sid in self.roster.children[gid]]
        nav = [(lookups.anchor_of(s.id), self.child_label(s)) for s in kids]
        title = lookups.full_name(guardian.last_name, guardian.first_name, guardian.middle_name)
        context = self.header(title, "Страница родителя (законного представителя)", nav, "Дети")
        sections = [self.sections[s.id] for s in kids]
        glances = [self.glances[s.id] for s in kids]
        last = self.acknowledged.get(gid)
        monday, saturday = lookups.week_of(self.lookup.today)
        acts = acts_context(
            audience.GUARDIAN,
            self.lookup.today,
            last_ack=last,
            week_start=monday,
            week_end=saturday,
        )
        page = templating.fragment(
            "page_guardian.html.j2", glances=glances, sections=sections, acts=acts, **context
        )
        return str(page)

    def child_label(self, student: row_types.StudentRow) -> str:
        """As the child's section heading says it: «Иванов Артём, 7Б»."""
        name = lookups.full_name(student.last_name, student.first_name)
        return f"{name}, {self.lookup.classes[student.class_unit_id].name}"

    def teacher_pages(self, class_id: str) -> Iterator[tuple[audience.PageKey, str]]:
        for tid in sorted(self.taught.get(class_id, ())):
            self.teachers[tid].discard(class_id)
            if not self.teachers[tid] and tid not in self.deputies:
                yield (audience.TEACHER, tid), self.teacher_page(tid)
        if not self.taught.get(class_id, set()) & set(self.deputies):
            self.class_blocks.pop(class_id, None)  # every teacher waiting for it has it now

    def teacher_page(self, tid: str) -> str:
        roster, lookup = self.roster, self.lookup
        teacher = roster.teachers[tid]
        class_ids = roster.class_teachers.get(tid, [])
        names = ", ".join(lookup.classes[c].name for c in class_ids)
        roles = [f"Классный руководитель {names}"] if class_ids else []
        deputy = tid in roster.deputies
        nav = [(staff_blocks.class_anchor(c), f"Класс {lookup.classes[c].name}") for c in class_ids]
        if deputy:
            roles.append("Заместитель руководителя")
            nav = [("otm-school", "Классы школы"), ("otm-breaches", "Нарушения"), *nav]
        title = lookups.full_name(teacher.last_name, teacher.first_name, teacher.middle_name)
        context = self.header(title, "; ".join(roles), nav, "Разделы")
        blocks = [self.class_blocks[c] for c in class_ids]
        acts = acts_context(audience.TEACHER, lookup.today)
        if not deputy:
            return str(
                templating.fragment(
                    "page_teacher.html.j2", class_blocks=blocks, acts=acts, **context
                )
            )
        school = self.school_context(tid)
        page = templating.fragment(
            "page_deputy.html.j2", class_blocks=blocks, acts=acts, **school, **context
        )
        return str(page)

    def school_context(self, tid: str) -> dict[str, Any]:
        assert self.staff is not None
        report = self.staff.reports.get(attachments.SCHOOL)
        return {
            "summaries": self.summaries,
            "school_charts": staff_blocks.school_charts(self.summaries, "otm-school"),
            "breaches": self.staff.breach_lines(self.lookup),
            "report_file": attachments.for_reader(report, tid) if report else None,
        }


def build_for(today: dt.date, wanted: set[audience.PageKey] | None) -> PageBuild:
    ref = queries.reference()
    lookup = lookups.Lookup.build(ref, today)
    roster = audience.load_roster(today, ref.classes, ref.teachers)
    keys = roster.keys() if wanted is None else set(wanted) & roster.keys()
    return PageBuild(lookup, roster, keys)
