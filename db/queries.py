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
import functools
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import peewee as pw

from otmetka.db import models, row_types
from otmetka.db.connection import chunks, database

Convert = Callable[[Any], Any]


# --- conversion ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)  # a class's rows share a few hundred days
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
    return _made(database.execute(query).fetchall(), make, converters)


def _made(
    rows: list[tuple[Any, ...]], make: type[row_types.Row], converters: dict[int, Convert] | None
) -> list[row_types.Row]:
    if not converters:
        return [make._make(row) for row in rows]  # type: ignore[attr-defined]
    out = []
    for row in rows:
        values = list(row)
        for index, convert in converters.items():
            values[index] = convert(values[index])
        out.append(make._make(values))  # type: ignore[attr-defined]
    return out


def _alive(model: type[models.JournalModel]) -> pw.Expression:
    return model.deleted_at.is_null()


def _columns(model: type[models.JournalModel], row: type[tuple[Any, ...]]) -> list[pw.Field]:
    return [getattr(model, name) for name in row._fields]  # type: ignore[attr-defined]


def _select_alive(
    model: type[models.JournalModel], row: type[row_types.Row]
) -> pw.ModelSelect[Any]:
    return model.select(*_columns(model, row)).where(_alive(model))


def _ordered(
    model: type[models.JournalModel],
    row: type[row_types.Row],
    *where: pw.Expression,
    order: Sequence[Any],
) -> pw.Query:
    """The live rows of `model` that meet `where`, in `order`, as the columns of `row`."""
    return _select_alive(model, row).where(*where).order_by(*order)


def _live(
    model: type[models.JournalModel],
    row: type[row_types.Row],
    *where: pw.Expression,
    order: Sequence[Any],
    converters: dict[int, Convert] | None = None,
) -> list[row_types.Row]:
    """The live rows of `model` that meet `where`, in `order`, as `row` tuples."""
    return _fetch(_ordered(model, row, *where, order=order), row, converters)


# --- school-wide --------------------------------------------------------------------------


def school() -> row_types.SchoolRow | None:
    query = _select_alive(models.School, row_types.SchoolRow).order_by(models.School.id).limit(1)
    rows = _fetch(query, row_types.SchoolRow)
    return rows[0] if rows else None


def academic_years() -> list[row_types.YearRow]:
    y = models.AcademicYear
    return _live(y, row_types.YearRow, order=[y.start], converters={2: _date, 3: _date})


def periods() -> list[row_types.PeriodRow]:
    p = models.Period
    return _live(p, row_types.PeriodRow, order=[p.start, p.id], converters={4: _date, 5: _date})


def holidays() -> list[row_types.HolidayRow]:
    h = models.Holiday
    converters: dict[int, Convert] = {3: _date, 4: _date, 5: _ids}
    return _live(h, row_types.HolidayRow, order=[h.start, h.id], converters=converters)


def bell_slots() -> list[row_types.BellSlotRow]:
    b = models.BellSlot
    return _live(b, row_types.BellSlotRow, order=[b.shift, b.number, b.id])


def subjects() -> list[row_types.SubjectRow]:
    return _live(models.Subject, row_types.SubjectRow, order=[models.Subject.id])


def teachers() -> list[row_types.TeacherRow]:
    t = models.Teacher
    return _live(t, row_types.TeacherRow, order=[t.id], converters={4: _ids})


def work_kinds() -> list[row_types.WorkKindRow]:
    return _live(models.WorkKind, row_types.WorkKindRow, order=[models.WorkKind.id])


def attendance_codes() -> list[row_types.AttendanceCodeRow]:
    codes = models.AttendanceCode
    return _live(codes, row_types.AttendanceCodeRow, order=[codes.id])


def class_units() -> list[row_types.ClassRow]:
    c = models.ClassUnit
    return _live(c, row_types.ClassRow, order=[c.grade, c.name, c.id])


def _active(today: dt.date) -> pw.Expression:
    s = models.Student
    return _alive(s) & (s.left_at.is_null() | (s.left_at > today.isoformat()))


def active_students(today: dt.date) -> list[row_types.StudentRow]:
    """Students on roll on `today` (not left, or leaving later) whose class exists."""
    s, c = models.Student, models.ClassUnit
    query = (
        s.select(*_columns(s, row_types.StudentRow))
        .join(c, on=(c.id == s.class_unit_id))
        .where(_active(today), _alive(c))
        .order_by(s.id)
    )
    return _fetch(query, row_types.StudentRow, {5: _date})


def guardians_with_children(today: dt.date) -> list[tuple[row_types.GuardianRow, str]]:
    """(guardian, active child id) for every live link; one row per link, in id order."""
    g, link, s = models.Guardian, models.GuardianLink, models.Student
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
    link = models.GuardianLink
    found: list[tuple[str, str]] = []
    for chunk in chunks(ids):
        query = (
            link.select(link.guardian_id, link.student_id)
            .where(_alive(link), column.in_(chunk))
            .order_by(link.guardian_id, link.student_id)
        )
        found.extend((row[0], row[1]) for row in database.execute(query).fetchall())
    return found


def guardians_of_students(student_ids: Iterable[str]) -> list[tuple[str, str]]:
    """(guardian id, student id) of live links of the given students."""
    return _live_links(models.GuardianLink.student_id, student_ids)


def students_of_guardians(guardian_ids: Iterable[str]) -> set[str]:
    """Ids of the students the given guardians have a live link to."""
    return {sid for _, sid in _live_links(models.GuardianLink.guardian_id, guardian_ids)}


def class_teachers_of_students(student_ids: Iterable[str]) -> dict[str, str]:
    """Student id -> class teacher id, for students whose class has one."""
    s, c = models.Student, models.ClassUnit
    found: dict[str, str] = {}
    for chunk in chunks(student_ids):
        query = (
            s.select(s.id, c.class_teacher_id)
            .join(c, on=(c.id == s.class_unit_id))
            .where(s.id.in_(chunk), _alive(c), c.class_teacher_id.is_null(False))
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


# Each class query is built by peewee once per kind of database, with stand-ins for its
# values, and then run as plain SQL: building and compiling ten queries for each of a big
# school's classes cost a third of loading them.
Build = Callable[..., pw.Query]
_PREPARED: dict[tuple[Build, type], tuple[str, list[tuple[int | None, Any]]]] = {}


def _stand_in(position: int) -> str:
    return f"\x00value {position}\x00"  # no real id or date looks like this


def _prepared(build: Build, count: int) -> tuple[str, list[tuple[int | None, Any]]]:
    """The SQL of `build(*values)` for `count` values, and its parameters: the position of
    the value each stands for, or None and the query's own constant."""
    key = (build, type(database.obj))
    if key not in _PREPARED:
        stand_ins = [_stand_in(n) for n in range(count)]
        sql, params = build(*stand_ins).sql()
        where = {text: n for n, text in enumerate(stand_ins)}
        slots = [(where.get(p) if isinstance(p, str) else None, p) for p in params]
        if {n for n, _ in slots} - {None} != set(range(count)):  # a value peewee changed
            raise RuntimeError(f"{build.__name__}: a value does not reach the SQL as given")
        _PREPARED[key] = sql, slots
    return _PREPARED[key]


def _run(
    build: Build,
    make: type[row_types.Row],
    converters: dict[int, Convert] | None,
    *values: str,
) -> list[row_types.Row]:
    """The rows of `build(*values)`, with the SQL peewee made for it the first time."""
    sql, slots = _prepared(build, len(values))
    params = [constant if n is None else values[n] for n, constant in slots]
    return _made(database.execute_sql(sql, params).fetchall(), make, converters)


def _class_student_ids(class_id: str) -> pw.ModelSelect[Any]:
    s = models.Student
    return s.select(s.id).where(s.class_unit_id == class_id, _alive(s))


def _class_group_ids(class_id: str) -> pw.ModelSelect[Any]:
    ms = models.Membership
    return ms.select(ms.group_id).where(ms.student_id.in_(_class_student_ids(class_id)), _alive(ms))


def _of_students(field: pw.Field, class_id: str) -> pw.Expression:
    """`field` (a student id) names a student of the class."""
    return field.in_(_class_student_ids(class_id))


def _of_groups(field: pw.Field, class_id: str) -> pw.Expression:
    """`field` (a group id) names a group some student of the class belongs to."""
    return field.in_(_class_group_ids(class_id))


def _students_query(class_id: str) -> pw.Query:
    s = models.Student
    return _ordered(s, row_types.StudentRow, s.class_unit_id == class_id, order=[s.id])


def class_students(class_id: str) -> list[row_types.StudentRow]:
    return _run(_students_query, row_types.StudentRow, {5: _date}, class_id)


def _memberships_query(class_id: str) -> pw.Query:
    ms = models.Membership
    order = [ms.student_id, ms.group_id, ms.date_from]
    return _ordered(ms, row_types.MembershipRow, _of_students(ms.student_id, class_id), order=order)


def class_memberships(class_id: str) -> list[row_types.MembershipRow]:
    converters: dict[int, Convert] = {2: _date, 3: _date}
    return _run(_memberships_query, row_types.MembershipRow, converters, class_id)


def _groups_query(class_id: str) -> pw.Query:
    g = models.Group
    return _ordered(g, row_types.GroupRow, _of_groups(g.id, class_id), order=[g.id])


def class_groups(class_id: str) -> list[row_types.GroupRow]:
    return _run(_groups_query, row_types.GroupRow, {4: _ids}, class_id)


def _timetable_query(class_id: str) -> pw.Query:
    t = models.TimetableEntry
    order = [t.group_id, t.weekday, t.slot, t.id]
    return _ordered(t, row_types.TimetableRow, _of_groups(t.group_id, class_id), order=order)


def class_timetable(class_id: str) -> list[row_types.TimetableRow]:
    return _run(_timetable_query, row_types.TimetableRow, {6: _date, 7: _date}, class_id)


def _lessons_query(class_id: str, date_from: str, date_to: str) -> pw.Query:
    lesson = models.Lesson
    where = _of_groups(lesson.group_id, class_id), lesson.date.between(date_from, date_to)
    order = [lesson.date, lesson.slot, lesson.id]
    return _ordered(lesson, row_types.LessonRow, *where, order=order)


def class_lessons(class_id: str, date_from: dt.date, date_to: dt.date) -> list[row_types.LessonRow]:
    converters: dict[int, Convert] = {1: _date, 11: _date, 13: _date}
    dates = date_from.isoformat(), date_to.isoformat()
    return _run(_lessons_query, row_types.LessonRow, converters, class_id, *dates)


def _works_query(class_id: str, date_from: str, date_to: str) -> pw.Query:
    w = models.Work
    where = _of_groups(w.group_id, class_id), w.date.between(date_from, date_to)
    return _ordered(w, row_types.WorkRow, *where, order=[w.date, w.id])


def class_works(class_id: str, date_from: dt.date, date_to: dt.date) -> list[row_types.WorkRow]:
    dates = date_from.isoformat(), date_to.isoformat()
    return _run(_works_query, row_types.WorkRow, {1: _date, 7: bool}, class_id, *dates)


def _marks_query(class_id: str, date_from: str, date_to: str, finals_from: str) -> pw.Query:
    mk = models.Mark
    in_range = mk.date.between(date_from, date_to)
    finals = mk.kind.in_(row_types.FINAL_KINDS) & (mk.date >= finals_from)
    order = [mk.student_id, mk.date, mk.id]
    of_class = _of_students(mk.student_id, class_id)
    return _ordered(mk, row_types.MarkRow, of_class, in_range | finals, order=order)


def class_marks(
    class_id: str, date_from: dt.date, date_to: dt.date, finals_from: dt.date
) -> list[row_types.MarkRow]:
    """Marks of the class dated in the range, plus finals of the year (from `finals_from`)."""
    dates = date_from.isoformat(), date_to.isoformat(), finals_from.isoformat()
    return _run(_marks_query, row_types.MarkRow, {3: _date, 10: _bool}, class_id, *dates)


def _attendance_query(class_id: str, date_from: str, date_to: str) -> pw.Query:
    a, lesson = models.Attendance, models.Lesson
    return (
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
            _of_students(a.student_id, class_id),
            _alive(a),
            _alive(lesson),
            lesson.date.between(date_from, date_to),
        )
        .order_by(a.student_id, lesson.date, lesson.slot, a.id)
    )


def class_attendance(
    class_id: str, date_from: dt.date, date_to: dt.date
) -> list[row_types.AttendanceRow]:
    dates = date_from.isoformat(), date_to.isoformat()
    return _run(_attendance_query, row_types.AttendanceRow, {6: _date}, class_id, *dates)


def _homework_query(class_id: str, date_from: str, date_to: str) -> pw.Query:
    h = models.Homework
    where = _of_groups(h.group_id, class_id), h.due_date.between(date_from, date_to)
    return _ordered(h, row_types.HomeworkRow, *where, order=[h.due_date, h.id])


def class_homework(
    class_id: str, date_from: dt.date, date_to: dt.date
) -> list[row_types.HomeworkRow]:
    converters: dict[int, Convert] = {3: _date, 4: _date, 6: _ids}
    dates = date_from.isoformat(), date_to.isoformat()
    return _run(_homework_query, row_types.HomeworkRow, converters, class_id, *dates)


def _recommendations_query(class_id: str, date_from: str, date_to: str) -> pw.Query:
    r = models.Recommendation
    where = _of_students(r.student_id, class_id), r.date.between(date_from, date_to)
    return _ordered(r, row_types.RecommendationRow, *where, order=[r.date.desc(), r.id])


def class_recommendations(
    class_id: str, date_from: dt.date, date_to: dt.date
) -> list[row_types.RecommendationRow]:
    dates = date_from.isoformat(), date_to.isoformat()
    return _run(_recommendations_query, row_types.RecommendationRow, {4: _date}, class_id, *dates)


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
