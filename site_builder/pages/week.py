"""The child's week as the family reads it first: each lesson of the previous, this and the
next week with its homework, marks and absence, and the week at a glance (new marks and
absences, homework due soon, lessons changed), built from one indexed class.

No HTML here: pages/child_html.py decides how it reads.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from otmetka.db import row_types
from otmetka.site_builder import formatting
from otmetka.site_builder.pages import family, lookups

WEEK = 7 * lookups.DAY
# The glance looks this far back for marks and absences: about a week, the rhythm of
# «Ознакомлен(а)»; page.js singles out what is newer than the last visit on this phone.
GLANCE_DAYS = 7
# The timetable ends on Saturday; Sunday lessons are not a thing here.
SCHOOL_DAYS = 6


@dataclass(frozen=True)
class DayView:
    date: dt.date
    lessons: list[family.LessonView]
    holiday: str


@dataclass(frozen=True)
class TimetableView:
    week_start: dt.date
    week_end: dt.date
    days: list[DayView]


@dataclass(frozen=True)
class WeekView:
    """One week of the child's lessons; `label` says which («Эта неделя»)."""

    label: str
    timetable: TimetableView
    current: bool


@dataclass(frozen=True)
class GlanceMark:
    date: dt.date
    subject: str
    mark: family.MarkView


@dataclass(frozen=True)
class GlanceChange:
    date: dt.date
    lesson: family.LessonView


@dataclass(frozen=True)
class GlanceView:
    """The week at a glance, for the top of the page."""

    since: dt.date
    marks: list[GlanceMark]
    absences: list[family.AbsenceView]
    homework: list[family.HomeworkView]
    changes: list[GlanceChange]

    @property
    def empty(self) -> bool:
        return not (self.marks or self.absences or self.homework or self.changes)


# --- lessons and days ----------------------------------------------------------------------


def _slot_ref(day: dt.date | None, slot: int | None) -> tuple[dt.date, int | None] | None:
    return (day, slot) if day is not None else None


def lesson_view(lesson: row_types.LessonRow, lookup: lookups.Lookup) -> family.LessonView:
    start, end = lookup.slot_times.get(lesson.slot, ("", ""))
    original = lesson.substitution_original_teacher_id
    return family.LessonView(
        slot=lesson.slot,
        time=f"{start}–{end}" if start else "",
        subject=lookup.subject(lesson.subject_id),
        teacher=lookup.teacher_short(lesson.teacher_id),
        room=lesson.room,
        topic=lesson.topic,
        status=lesson.status,
        original_teacher=lookup.teacher_short(original) if original else None,
        substitution_reason=lesson.substitution_reason or "",
        moved_to=_slot_ref(lesson.moved_to_date, lesson.moved_to_slot),
        moved_from=_slot_ref(lesson.moved_from_date, lesson.moved_from_slot),
    )


def holiday_on(day: dt.date, holidays: Sequence[row_types.HolidayRow], class_id: str) -> str:
    for holiday in holidays:
        if holiday.start <= day <= holiday.end and family.holiday_applies(holiday, class_id):
            return formatting.holiday_name(holiday.name)
    return ""


# --- lessons with their homework, marks and absence ---------------------------------------


@dataclass
class _Details:
    """The child's homework, marks and absences keyed by (date, subject) or lesson id."""

    marks: dict[tuple[dt.date, str], list[family.MarkView]]
    absences: dict[str, family.AbsenceView]
    homework: dict[tuple[dt.date, str], list[family.HomeworkView]]


def _details(
    student_id: str, spans: dict[str, list[lookups.Span]], index: lookups.ClassIndex
) -> _Details:
    lookup = index.lookup
    marks: dict[tuple[dt.date, str], list[family.MarkView]] = defaultdict(list)
    for mark in index.marks.get(student_id, ()):
        if not family.is_final(mark):
            marks[(mark.date, mark.subject_id)].append(family.mark_view(mark, index))
    absences = {
        a.lesson_id: family.absence_view(a, lookup)
        for a in index.attendance.get(student_id, ())
        if a.category != "present"
    }
    homework: dict[tuple[dt.date, str], list[family.HomeworkView]] = defaultdict(list)
    for hw in family.homework_rows(student_id, spans, index, *_shown(index)):
        homework[(hw.due_date, hw.subject_id)].append(family.homework_item(hw, index))
    return _Details(marks, absences, homework)


def _loaded(index: lookups.ClassIndex) -> tuple[dt.date, dt.date]:
    return index.scope.load_range


def _shown(index: lookups.ClassIndex) -> tuple[dt.date, dt.date]:
    """The days the weeks may show (see `weeks_view`): a lesson finds its homework here."""
    monday = index.scope.week_start
    return monday - WEEK, monday + WEEK + (SCHOOL_DAYS - 1) * lookups.DAY


@dataclass
class ClassLessons:
    """The class's lessons by day in timetable order, and each lesson's view: made once per
    class, read for each of its children."""

    index: lookups.ClassIndex
    by_day: dict[dt.date, list[row_types.LessonRow]] = field(init=False)
    views: dict[str, family.LessonView] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        subject = self.index.lookup.subject
        by_day: dict[dt.date, list[row_types.LessonRow]] = defaultdict(list)
        for lesson in self.index.bundle.lessons:
            by_day[lesson.date].append(lesson)
        for rows in by_day.values():
            rows.sort(key=lambda x: (x.slot, subject(x.subject_id), x.id))
        self.by_day = dict(by_day)

    def view(self, lesson: row_types.LessonRow) -> family.LessonView:
        view = self.views.get(lesson.id)
        if view is None:
            view = self.views[lesson.id] = lesson_view(lesson, self.index.lookup)
        return view


def _with_details(
    lesson: row_types.LessonRow, details: _Details, lessons: ClassLessons
) -> family.LessonView:
    view = lessons.view(lesson)
    key = (lesson.date, lesson.subject_id)
    marks, homework = details.marks.get(key), details.homework.get(key)
    absence = details.absences.get(lesson.id)
    if not (marks or homework or absence):
        return view  # shared by the children of the group, and so rendered once
    return view.with_details(tuple(marks or ()), absence, tuple(homework or ()))


def _week(
    monday: dt.date,
    spans: dict[str, list[lookups.Span]],
    details: _Details,
    lessons: ClassLessons,
) -> TimetableView:
    index = lessons.index
    lookup, class_id = index.lookup, index.scope.class_row.id
    last = monday + (SCHOOL_DAYS - 1) * lookups.DAY
    days = []
    for offset in range(SCHOOL_DAYS):
        day = monday + offset * lookups.DAY
        rows = [
            _with_details(x, details, lessons)
            for x in lessons.by_day.get(day, ())
            if family.in_group(spans, x.group_id, day)
        ]
        holiday = holiday_on(day, lookup.holidays, class_id)
        days.append(DayView(day, rows, holiday))
    return TimetableView(monday, last, days)


def weeks_view(
    student_id: str, spans: dict[str, list[lookups.Span]], lessons: ClassLessons
) -> list[WeekView]:
    """This, the previous and the next week (those the class bundle covers whole)."""
    index = lessons.index
    scope = index.scope
    first, last = _loaded(index)
    details = _details(student_id, spans, index)
    wanted = (  # this week first and open, the others a tap away
        ("Эта неделя", scope.week_start, True),
        ("Прошлая неделя", scope.week_start - WEEK, False),
        ("Следующая неделя", scope.week_start + WEEK, False),
    )
    return [
        WeekView(label, _week(monday, spans, details, lessons), current)
        for label, monday, current in wanted
        if current or (first <= monday and monday + (SCHOOL_DAYS - 1) * lookups.DAY <= last)
    ]


# --- the week at a glance -----------------------------------------------------------------


def glance_view(child: family.ChildView, weeks: list[WeekView], today: dt.date) -> GlanceView:
    """New marks and absences of the last days, homework due from today on, lessons of this
    and the next week that were cancelled, moved or given by another teacher."""
    since = today - (GLANCE_DAYS - 1) * lookups.DAY
    marks = [
        GlanceMark(m.date, subject.subject, m)
        for subject in child.grades.subjects
        for m in subject.marks
        if since <= m.date <= today
    ]
    marks.sort(key=lambda g: (g.date, g.subject), reverse=True)
    absences = [a for a in child.attendance.absences if since <= a.date <= today]
    changes = [
        GlanceChange(day.date, lesson)
        for week in weeks
        if week.timetable.week_end >= today
        for day in week.timetable.days
        if day.date >= today
        for lesson in day.lessons
        if lesson.changed
    ]
    return GlanceView(since, marks, absences, child.homework.upcoming, changes)


@dataclass(frozen=True)
class ChildWeek:
    """What the family page shows of a child before the sections: the glance and the weeks."""

    glance: GlanceView
    weeks: list[WeekView]


def child_week(child: family.ChildView, lessons: ClassLessons) -> ChildWeek:
    """`lessons`: the child's class, made once for all its children."""
    spans = family.spans_of(child.student_id, lessons.index)
    weeks = weeks_view(child.student_id, spans, lessons)
    return ChildWeek(glance_view(child, weeks, lessons.index.scope.today), weeks)
