"""Read queries for the pages. Only this module knows which columns the pages read.

Rows come back as small NamedTuples, not peewee model instances: a large school renders
hundreds of thousands of marks, and model instances (plus peewee's strptime-based date
parsing) would cost more than the rendering itself. Tombstoned rows (`deleted_at` set) are
never returned.

Loading is bulk: school-wide vocabularies once (`reference()`), then one `class_bundle()`
per class with a fixed number of statements, whatever the number of students. Class-wide
queries select by subquery (students of the class, their groups) rather than by lists of
ids, so no statement grows with the school and none hits SQLite's variable limit.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import peewee as pw

from otmetka.db import models as m
from otmetka.db import row_types
from otmetka.db.connection import database

Convert = Callable[[Any], Any]


# --- conversion ---------------------------------------------------------------------------


def _date(value: Any) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def _bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def _ids(value: Any) -> tuple[str, ...]:
    return tuple(json.loads(value or "[]"))


def _fetch(
    query: pw.Query, make: type[row_types.Row], converters: dict[int, Convert] | None = None
) -> list[row_types.Row]:
    """Run `query` and build rows, converting the columns named in `converters`.

    The raw cursor skips peewee's per-value converters; dates are ISO text in SQLite and
    `date.fromisoformat` is many times faster than peewee's strptime.
    """
    rows = database.execute(query).fetchall()
    if not converters:
        return [make._make(row) for row in rows]  # type: ignore[attr-defined]
    out = []
    for row in rows:
        values = list(row)
        for index, convert in converters.items():
            values[index] = convert(values[index])
        out.append(make._make(values))  # type: ignore[attr-defined]
    return out


def _alive(model: type[m.JournalModel]) -> pw.Expression:
    return model.deleted_at.is_null()


def _columns(model: type[m.JournalModel], row: type[tuple[Any, ...]]) -> list[pw.Field]:
    return [getattr(model, name) for name in row._fields]  # type: ignore[attr-defined]


def _select_alive(model: type[m.JournalModel], row: type[row_types.Row]) -> pw.ModelSelect[Any]:
    return model.select(*_columns(model, row)).where(_alive(model))


# --- school-wide --------------------------------------------------------------------------


def school() -> row_types.SchoolRow | None:
    query = _select_alive(m.School, row_types.SchoolRow).order_by(m.School.id).limit(1)
    rows = _fetch(query, row_types.SchoolRow)
    return rows[0] if rows else None


def academic_years() -> list[row_types.YearRow]:
    query = _select_alive(m.AcademicYear, row_types.YearRow).order_by(m.AcademicYear.start)
    return _fetch(query, row_types.YearRow, {2: _date, 3: _date})


def periods() -> list[row_types.PeriodRow]:
    query = _select_alive(m.Period, row_types.PeriodRow).order_by(m.Period.start, m.Period.id)
    return _fetch(query, row_types.PeriodRow, {4: _date, 5: _date})


def holidays() -> list[row_types.HolidayRow]:
    query = _select_alive(m.Holiday, row_types.HolidayRow).order_by(m.Holiday.start, m.Holiday.id)
    return _fetch(query, row_types.HolidayRow, {3: _date, 4: _date, 5: _ids})


def bell_slots() -> list[row_types.BellSlotRow]:
    query = _select_alive(m.BellSlot, row_types.BellSlotRow).order_by(
        m.BellSlot.shift, m.BellSlot.number, m.BellSlot.id
    )
    return _fetch(query, row_types.BellSlotRow)


def subjects() -> list[row_types.SubjectRow]:
    return _fetch(
        _select_alive(m.Subject, row_types.SubjectRow).order_by(m.Subject.id), row_types.SubjectRow
    )


def teachers() -> list[row_types.TeacherRow]:
    query = _select_alive(m.Teacher, row_types.TeacherRow).order_by(m.Teacher.id)
    return _fetch(query, row_types.TeacherRow, {4: _ids})


def work_kinds() -> list[row_types.WorkKindRow]:
    return _fetch(
        _select_alive(m.WorkKind, row_types.WorkKindRow).order_by(m.WorkKind.id),
        row_types.WorkKindRow,
    )


def attendance_codes() -> list[row_types.AttendanceCodeRow]:
    query = _select_alive(m.AttendanceCode, row_types.AttendanceCodeRow).order_by(
        m.AttendanceCode.id
    )
    return _fetch(query, row_types.AttendanceCodeRow)


def class_units() -> list[row_types.ClassRow]:
    query = _select_alive(m.ClassUnit, row_types.ClassRow).order_by(
        m.ClassUnit.grade, m.ClassUnit.name, m.ClassUnit.id
    )
    return _fetch(query, row_types.ClassRow)


def _active(today: dt.date) -> pw.Expression:
    s = m.Student
    return _alive(s) & (s.left_at.is_null() | (s.left_at > today.isoformat()))


def active_students(today: dt.date) -> list[row_types.StudentRow]:
    """Students on roll on `today` (not left, or leaving later) whose class exists."""
    s, c = m.Student, m.ClassUnit
    query = (
        s.select(*_columns(s, row_types.StudentRow))
        .join(c, on=(c.id == s.class_unit_id))
        .where(_active(today), _alive(c))
        .order_by(s.id)
    )
    return _fetch(query, row_types.StudentRow, {5: _date})


def guardians_with_children(today: dt.date) -> list[tuple[row_types.GuardianRow, str]]:
    """(guardian, active child id) for every live link; one row per link, in id order."""
    g, link, s = m.Guardian, m.GuardianLink, m.Student
    query = (
        g.select(*_columns(g, row_types.GuardianRow), link.student_id)
        .join(link, on=(link.guardian_id == g.id))
        .join(s, on=(s.id == link.student_id))
        .where(_alive(g), _alive(link), _active(today))
        .order_by(g.id, link.student_id)
    )
    rows = database.execute(query).fetchall()
    return [(row_types.GuardianRow._make(row[:5]), row[5]) for row in rows]


def _live_links(column: pw.Field, ids: Iterable[str]) -> list[tuple[str, str]]:
    """(guardian id, student id) of live guardian links whose `column` is among `ids`."""
    link = m.GuardianLink
    wanted = sorted(set(ids))
    found: list[tuple[str, str]] = []
    for start in range(0, len(wanted), 500):
        query = (
            link.select(link.guardian_id, link.student_id)
            .where(_alive(link), column.in_(wanted[start : start + 500]))
            .order_by(link.guardian_id, link.student_id)
        )
        found.extend((row[0], row[1]) for row in database.execute(query).fetchall())
    return found


def guardians_of_students(student_ids: Iterable[str]) -> list[tuple[str, str]]:
    """(guardian id, student id) of live links of the given students."""
    return _live_links(m.GuardianLink.student_id, student_ids)


def students_of_guardians(guardian_ids: Iterable[str]) -> set[str]:
    """Ids of the students the given guardians have a live link to."""
    return {sid for _, sid in _live_links(m.GuardianLink.guardian_id, guardian_ids)}


def class_teachers_of_students(student_ids: Iterable[str]) -> dict[str, str]:
    """Student id -> class teacher id, for students whose class has one."""
    s, c = m.Student, m.ClassUnit
    wanted = sorted(set(student_ids))
    found: dict[str, str] = {}
    for start in range(0, len(wanted), 500):
        query = (
            s.select(s.id, c.class_teacher_id)
            .join(c, on=(c.id == s.class_unit_id))
            .where(
                s.id.in_(wanted[start : start + 500]), _alive(c), c.class_teacher_id.is_null(False)
            )
        )
        found.update({row[0]: row[1] for row in database.execute(query).fetchall()})
    return found


# --- one class ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassBundle:
    """Everything the pages of one class need, loaded with a fixed number of statements.

    `students` holds every live student of the class, including those who left (their
    marks still belong to the journal); callers pick the active ones.
    """

    class_id: str
    students: list[row_types.StudentRow]
    memberships: list[row_types.MembershipRow]
    groups: list[row_types.GroupRow]
    timetable: list[row_types.TimetableRow]
    lessons: list[row_types.LessonRow]
    works: list[row_types.WorkRow]
    marks: list[row_types.MarkRow]
    attendance: list[row_types.AttendanceRow]
    homework: list[row_types.HomeworkRow]
    recommendations: list[row_types.RecommendationRow]


def _class_student_ids(class_id: str) -> pw.ModelSelect[Any]:
    s = m.Student
    return s.select(s.id).where(s.class_unit_id == class_id, _alive(s))


def _class_group_ids(class_id: str) -> pw.ModelSelect[Any]:
    ms = m.Membership
    return ms.select(ms.group_id).where(ms.student_id.in_(_class_student_ids(class_id)), _alive(ms))


def _between(field: pw.Field, start: dt.date, end: dt.date) -> pw.Expression:
    return field.between(start.isoformat(), end.isoformat())


def class_students(class_id: str) -> list[row_types.StudentRow]:
    s = m.Student
    query = _select_alive(s, row_types.StudentRow).where(s.class_unit_id == class_id).order_by(s.id)
    return _fetch(query, row_types.StudentRow, {5: _date})


def class_memberships(class_id: str) -> list[row_types.MembershipRow]:
    ms = m.Membership
    query = (
        _select_alive(ms, row_types.MembershipRow)
        .where(ms.student_id.in_(_class_student_ids(class_id)))
        .order_by(ms.student_id, ms.group_id, ms.date_from)
    )
    return _fetch(query, row_types.MembershipRow, {2: _date, 3: _date})


def class_groups(class_id: str) -> list[row_types.GroupRow]:
    g = m.Group
    query = (
        _select_alive(g, row_types.GroupRow)
        .where(g.id.in_(_class_group_ids(class_id)))
        .order_by(g.id)
    )
    return _fetch(query, row_types.GroupRow, {4: _ids})


def class_timetable(class_id: str) -> list[row_types.TimetableRow]:
    t = m.TimetableEntry
    query = (
        _select_alive(t, row_types.TimetableRow)
        .where(t.group_id.in_(_class_group_ids(class_id)))
        .order_by(t.group_id, t.weekday, t.slot, t.id)
    )
    return _fetch(query, row_types.TimetableRow, {6: _date, 7: _date})


def class_lessons(class_id: str, date_from: dt.date, date_to: dt.date) -> list[row_types.LessonRow]:
    lesson = m.Lesson
    query = (
        _select_alive(lesson, row_types.LessonRow)
        .where(
            lesson.group_id.in_(_class_group_ids(class_id)),
            _between(lesson.date, date_from, date_to),
        )
        .order_by(lesson.date, lesson.slot, lesson.id)
    )
    return _fetch(query, row_types.LessonRow, {1: _date, 11: _date, 13: _date})


def class_works(class_id: str, date_from: dt.date, date_to: dt.date) -> list[row_types.WorkRow]:
    w = m.Work
    query = (
        _select_alive(w, row_types.WorkRow)
        .where(w.group_id.in_(_class_group_ids(class_id)), _between(w.date, date_from, date_to))
        .order_by(w.date, w.id)
    )
    return _fetch(query, row_types.WorkRow, {1: _date, 7: bool})


def class_marks(
    class_id: str, date_from: dt.date, date_to: dt.date, finals_from: dt.date
) -> list[row_types.MarkRow]:
    """Marks of the class dated in the range, plus finals of the year (from `finals_from`)."""
    mk = m.Mark
    in_range = _between(mk.date, date_from, date_to)
    finals = mk.kind.in_(row_types.FINAL_KINDS) & (mk.date >= finals_from.isoformat())
    query = (
        _select_alive(mk, row_types.MarkRow)
        .where(mk.student_id.in_(_class_student_ids(class_id)), in_range | finals)
        .order_by(mk.student_id, mk.date, mk.id)
    )
    return _fetch(query, row_types.MarkRow, {3: _date, 10: _bool})


def class_attendance(
    class_id: str, date_from: dt.date, date_to: dt.date
) -> list[row_types.AttendanceRow]:
    a, lesson = m.Attendance, m.Lesson
    query = (
        a.select(
            a.id,
            a.student_id,
            a.lesson_id,
            a.code,
            a.category,
            a.minutes_late,
            lesson.date,
            lesson.slot,
            lesson.subject_id,
        )
        .join(lesson, on=(lesson.id == a.lesson_id))
        .where(
            a.student_id.in_(_class_student_ids(class_id)),
            _alive(a),
            _alive(lesson),
            _between(lesson.date, date_from, date_to),
        )
        .order_by(a.student_id, lesson.date, lesson.slot, a.id)
    )
    return _fetch(query, row_types.AttendanceRow, {6: _date})


def class_homework(
    class_id: str, date_from: dt.date, date_to: dt.date
) -> list[row_types.HomeworkRow]:
    h = m.Homework
    query = (
        _select_alive(h, row_types.HomeworkRow)
        .where(h.group_id.in_(_class_group_ids(class_id)), _between(h.due_date, date_from, date_to))
        .order_by(h.due_date, h.id)
    )
    return _fetch(query, row_types.HomeworkRow, {3: _date, 4: _date, 6: _ids})


def class_recommendations(
    class_id: str, date_from: dt.date, date_to: dt.date
) -> list[row_types.RecommendationRow]:
    r = m.Recommendation
    query = (
        _select_alive(r, row_types.RecommendationRow)
        .where(r.student_id.in_(_class_student_ids(class_id)), _between(r.date, date_from, date_to))
        .order_by(r.date.desc(), r.id)
    )
    return _fetch(query, row_types.RecommendationRow, {4: _date})


def class_bundle(
    class_id: str,
    date_from: dt.date,
    date_to: dt.date,
    *,
    finals_from: dt.date | None = None,
    notes_from: dt.date | None = None,
) -> ClassBundle:
    """One class's journal: lessons, works, marks, attendance and homework dated in
    [date_from, date_to]; finals from `finals_from` and recommendations from `notes_from`
    (both default to `date_from`, usually the start of the academic year)."""
    return ClassBundle(
        class_id=class_id,
        students=class_students(class_id),
        memberships=class_memberships(class_id),
        groups=class_groups(class_id),
        timetable=class_timetable(class_id),
        lessons=class_lessons(class_id, date_from, date_to),
        works=class_works(class_id, date_from, date_to),
        marks=class_marks(class_id, date_from, date_to, finals_from or date_from),
        attendance=class_attendance(class_id, date_from, date_to),
        homework=class_homework(class_id, date_from, date_to),
        recommendations=class_recommendations(class_id, notes_from or date_from, date_to),
    )


# --- everything school-wide, in one call --------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """School-wide data every page needs, loaded once per build."""

    school: row_types.SchoolRow | None
    years: Sequence[row_types.YearRow]
    periods: Sequence[row_types.PeriodRow]
    holidays: Sequence[row_types.HolidayRow]
    bell_slots: Sequence[row_types.BellSlotRow]
    subjects: Sequence[row_types.SubjectRow]
    teachers: Sequence[row_types.TeacherRow]
    work_kinds: Sequence[row_types.WorkKindRow]
    attendance_codes: Sequence[row_types.AttendanceCodeRow]
    classes: Sequence[row_types.ClassRow]


def reference() -> Reference:
    return Reference(
        school=school(),
        years=academic_years(),
        periods=periods(),
        holidays=holidays(),
        bell_slots=bell_slots(),
        subjects=subjects(),
        teachers=teachers(),
        work_kinds=work_kinds(),
        attendance_codes=attendance_codes(),
        classes=class_units(),
    )
