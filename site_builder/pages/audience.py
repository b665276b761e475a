"""Who has a page on a given day, and which pages a change of data makes stale.

A page is a person's: active students, guardians on electronic delivery with an active
child, class teachers and deputy heads. Families whose legal representative refused or
withdrew consent are on paper and have none.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from otmetka.db import acts as events
from otmetka.db import analytics, queries, row_types
from otmetka.db.row_types import PageKey
from otmetka.site_builder.pages import lookups

DEPUTY_REFRESH = dt.timedelta(hours=20)

GUARDIAN, STUDENT, TEACHER = "guardian", "student", "teacher"


@dataclass
class Roster:
    """Who has a page on a given day, and what each page is made of."""

    by_class: dict[str, list[row_types.StudentRow]]  # active students, sorted by name
    guardians: dict[str, row_types.GuardianRow]  # electronic delivery, with an active child
    children: dict[str, list[str]]  # guardian -> active children, sorted by name
    class_teachers: dict[str, list[str]]  # teacher -> their classes, in school order
    deputies: set[str]
    teachers: dict[str, row_types.TeacherRow] = field(repr=False)
    # Children of a legal representative who refused or withdrew consent: the family is on
    # paper, so the child's own page goes too (other guardians who consented keep theirs).
    paper_students: set[str] = field(default_factory=set)
    # Student -> every guardian linked to them, whatever the delivery (control tables).
    links: dict[str, list[row_types.GuardianRow]] = field(default_factory=dict, repr=False)

    @functools.cached_property
    def students(self) -> dict[str, row_types.StudentRow]:
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


def _ids(rows: Iterable[row_types.StudentRow]) -> list[str]:
    return [row.id for row in rows]


def _by_class(students: Iterable[row_types.StudentRow]) -> dict[str, list[row_types.StudentRow]]:
    grouped: dict[str, list[row_types.StudentRow]] = defaultdict(list)
    for student in sorted(students, key=lookups.student_sort_key):
        grouped[student.class_unit_id].append(student)
    return dict(grouped)


def load_roster(
    today: dt.date,
    classes: Iterable[row_types.ClassRow],
    teachers: Iterable[row_types.TeacherRow],
    refusing: Collection[str] = (),
) -> Roster:
    """`refusing`: guardians who refused or withdrew consent; they and (as their legal
    representative) their children's own pages are left out."""
    by_class = _by_class(queries.active_students(today))
    students = {s.id: s for rows in by_class.values() for s in rows}
    guardians: dict[str, row_types.GuardianRow] = {}
    children: dict[str, list[str]] = defaultdict(list)
    links: dict[str, list[row_types.GuardianRow]] = defaultdict(list)
    for guardian, student_id in queries.guardians_with_children(today):
        if student_id in students and guardian not in links[student_id]:
            links[student_id].append(guardian)
        electronic = guardian.delivery == "electronic" and guardian.id not in refusing
        if electronic and student_id in students:
            guardians[guardian.id] = guardian
            if student_id not in children[guardian.id]:  # two links to one child
                children[guardian.id].append(student_id)
    for kids in children.values():
        kids.sort(key=lambda sid: lookups.student_sort_key(students[sid]))
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
    return load_roster(today, queries.class_units(), queries.teachers(), refusing)


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
    pages |= {(GUARDIAN, gid) for gid, _ in queries.guardians_of_students(students)}
    in_classes = students | queries.students_of_guardians(guardians)
    pages |= {(TEACHER, tid) for tid in queries.class_teachers_of_students(in_classes).values()}
    if students:
        # A deputy head's page compares every class: redoing it means analysing the whole
        # school, so a change of marks refreshes it at most once in DEPUTY_REFRESH.
        stale = dt.datetime.now(dt.UTC) - DEPUTY_REFRESH
        pages |= {(TEACHER, tid) for tid in analytics.deputy_pages_built_before(stale)}
    return pages
