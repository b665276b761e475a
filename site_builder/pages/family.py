"""View models of the child, as the family sees them: grades, attendance, lessons, tests,
teachers, groups, holidays, homework and recommendations, built from one indexed class (the
weeks of lessons are put together in otmetka.site_builder.pages.week).

No HTML here and no wording beyond names: pages/child_html.py and the templates decide how
things read.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

from otmetka.db import analytics, row_types
from otmetka.site_builder import formatting
from otmetka.site_builder.pages import lookups

AVERAGED_KINDS = ("regular", "debt")
_ABSENT = ("illness", "excused", "unexcused")
# Order in which attendance categories are counted on the page.
ATTENDANCE_CATEGORIES = ("illness", "excused", "unexcused", "late", "exempt")
# Below this a mark or an average is highlighted: a «2» on the five-point scale.
LOW = 3.0


# --- view models --------------------------------------------------------------------------


@dataclass(frozen=True)
class MarkView:
    raw: str
    date: dt.date
    weight: float
    kind: str
    title: str
    comment: str
    low: bool = False  # a «2» (or a «2» in a double mark): highlighted, and said in words


@dataclass(frozen=True)
class FinalView:
    period: str
    raw: str


@dataclass(frozen=True)
class SubjectGrades:
    subject: str
    marks: list[MarkView]
    average: float | None
    finals: list[FinalView]

    @property
    def low(self) -> bool:
        return self.average is not None and self.average < LOW


@dataclass(frozen=True)
class GradesView:
    period: str
    subjects: list[SubjectGrades]
    average: float | None
    without_marks: bool = False  # the first grade is taught without marks


@dataclass(frozen=True)
class AbsenceView:
    date: dt.date
    slot: int
    subject: str
    code: str
    code_title: str
    category: str
    minutes_late: int


@dataclass(frozen=True)
class AttendanceView:
    period: str
    counts: list[tuple[str, int]]
    absences: list[AbsenceView]
    missed: int
    unexcused: int
    lessons: int = 0  # lessons of the period held so far, the child's groups only

    @property
    def present_share(self) -> float | None:
        """Share of the lessons held that the child attended; None before any lesson."""
        if not self.lessons:
            return None
        return max(0, self.lessons - self.missed) / self.lessons


@dataclass(frozen=True)
class LessonView:
    slot: int
    time: str
    subject: str
    teacher: str
    room: str
    topic: str
    status: str
    original_teacher: str | None
    substitution_reason: str
    moved_to: tuple[dt.date, int | None] | None
    moved_from: tuple[dt.date, int | None] | None
    # What the child's week shows with the lesson (otmetka.site_builder.pages.week).
    marks: tuple[MarkView, ...] = ()
    absence: AbsenceView | None = None
    homework: tuple[HomeworkView, ...] = ()

    def with_details(
        self,
        marks: tuple[MarkView, ...],
        absence: AbsenceView | None,
        homework: tuple[HomeworkView, ...],
    ) -> LessonView:
        """The lesson as one child's week shows it. Spelled out: dataclasses.replace looks
        the fields up on every call, tens of thousands of times a build."""
        return LessonView(
            self.slot,
            self.time,
            self.subject,
            self.teacher,
            self.room,
            self.topic,
            self.status,
            self.original_teacher,
            self.substitution_reason,
            self.moved_to,
            self.moved_from,
            marks,
            absence,
            homework,
        )

    @property
    def cancelled(self) -> bool:
        return self.status == "cancelled"

    @property
    def moved_away(self) -> bool:
        return self.status == "moved" or self.moved_to is not None

    @property
    def changed(self) -> bool:
        """Cancelled, moved either way or given by another teacher."""
        return bool(self.cancelled or self.moved_away or self.moved_from or self.original_teacher)


@dataclass(frozen=True)
class WorkView:
    date: dt.date
    subject: str
    kind: str
    title: str
    is_control: bool

    @property
    def label(self) -> str:
        """«Тест: Shopping», or the title alone when it already names the kind."""
        if not self.title:
            return self.kind
        if self.title.casefold().startswith(self.kind.casefold()):
            return self.title
        return f"{self.kind}: {self.title}"

    @property
    def control_badge(self) -> bool:
        """Whether «контрольная» must be said: not when the label already says it."""
        return self.is_control and "контрольн" not in self.label.casefold()


@dataclass(frozen=True)
class TestsView:
    period: str
    upcoming: list[WorkView]
    past: list[WorkView]


@dataclass(frozen=True)
class TeacherLine:
    subject: str
    names: tuple[str, ...]


@dataclass(frozen=True)
class TeachersView:
    class_teacher: str
    lines: list[TeacherLine]


@dataclass(frozen=True)
class GroupView:
    name: str
    kind: str
    subject: str


@dataclass(frozen=True)
class HolidayView:
    name: str
    kind: str
    start: dt.date
    end: dt.date
    current: bool

    @property
    def label(self) -> str:
        """«День Победы (праздник)», «Осенние каникулы»: no word said twice."""
        return formatting.holiday_label(self.name, self.kind)


@dataclass(frozen=True)
class HomeworkView:
    due_date: dt.date
    assigned_on: dt.date
    subject: str
    text: str
    individual: bool


@dataclass(frozen=True)
class HomeworkListView:
    upcoming: list[HomeworkView]
    recent: list[HomeworkView]


@dataclass(frozen=True)
class RecommendationView:
    date: dt.date
    teacher: str
    subject: str
    text: str


@dataclass(frozen=True)
class ChildView:
    student_id: str
    anchor: str
    name: str
    class_name: str
    grades: GradesView
    attendance: AttendanceView
    tests: TestsView
    teachers: TeachersView
    groups: list[GroupView]
    holidays: list[HolidayView]
    homework: HomeworkListView
    recommendations: list[RecommendationView]


# --- grades -------------------------------------------------------------------------------


def is_final(mark: row_types.MarkRow) -> bool:
    if mark.kind == "not_certified":
        return mark.period_id is not None
    return mark.kind in row_types.FINAL_KINDS


def _is_low(mark: row_types.MarkRow) -> bool:
    return mark.scale == "five" and any(
        v is not None and v < LOW for v in (mark.value, mark.value2)
    )


def mark_view(mark: row_types.MarkRow, index: lookups.ClassIndex) -> MarkView:
    view = index.views.get(("mark", mark.id))
    if view is None:
        view = index.views[("mark", mark.id)] = _mark_view(mark, index)
    return cast(MarkView, view)


def _mark_view(mark: row_types.MarkRow, index: lookups.ClassIndex) -> MarkView:
    work = index.works_by_id.get(mark.work_id or "")
    title = ""
    if work is not None:
        title = work.title or index.lookup.work_kinds.get(work.kind, "")
    low = _is_low(mark)
    return MarkView(mark.raw_text, mark.date, mark.weight, mark.kind, title, mark.comment, low)


def _final_view(
    mark: row_types.MarkRow, lookup: lookups.Lookup
) -> tuple[tuple[dt.date, str], FinalView]:
    period = lookup.periods_by_id.get(mark.period_id or "")
    label = period.name if period else ("Год" if mark.kind == "year_final" else "")
    order = (period.end if period else mark.date, mark.id)
    return order, FinalView(label, mark.raw_text)


def grades_view(student_id: str, subjects: set[str], index: lookups.ClassIndex) -> GradesView:
    start, end = index.scope.period_range
    current: dict[str, list[row_types.MarkRow]] = defaultdict(list)
    finals: dict[str, list[tuple[tuple[dt.date, str], FinalView]]] = defaultdict(list)
    for mark in index.marks.get(student_id, ()):
        if is_final(mark):
            finals[mark.subject_id].append(_final_view(mark, index.lookup))
        elif start <= mark.date <= end:
            current[mark.subject_id].append(mark)
    lines = []
    for subject_id in sorted(subjects | set(current) | set(finals), key=lookups.subject_key(index)):
        marks = current.get(subject_id, [])
        averaged = [m for m in marks if m.kind in AVERAGED_KINDS]
        lines.append(
            SubjectGrades(
                subject=index.lookup.subject(subject_id),
                marks=[mark_view(m, index) for m in marks],
                average=analytics.weighted_average(averaged),
                finals=[view for _, view in sorted(finals.get(subject_id, []))],
            )
        )
    period = index.scope.period.name if index.scope.period else ""
    average = analytics.mean(line.average for line in lines)
    unmarked = index.scope.class_row.grade == 1 and not any(x.marks or x.finals for x in lines)
    return GradesView(period, lines, average, unmarked)


# --- memberships --------------------------------------------------------------------------


def spans_of(student_id: str, index: lookups.ClassIndex) -> dict[str, list[lookups.Span]]:
    spans: dict[str, list[lookups.Span]] = defaultdict(list)
    for membership in index.memberships.get(student_id, ()):
        if membership.group_id in index.groups:
            spans[membership.group_id].append((membership.date_from, membership.date_to))
    return spans


def in_group(spans: dict[str, list[lookups.Span]], group_id: str, day: dt.date) -> bool:
    # lookups.valid_on, written out: asked for every lesson of every child's weeks.
    for start, end in spans.get(group_id, ()):
        if start <= day and (end is None or day <= end):
            return True
    return False


def groups_overlapping(
    spans: dict[str, list[lookups.Span]], start: dt.date, end: dt.date
) -> list[str]:
    return sorted(
        group
        for group, ranges in spans.items()
        if any(s <= end and (e is None or e >= start) for s, e in ranges)
    )


def groups_now(spans: dict[str, list[lookups.Span]], today: dt.date) -> list[str]:
    """Groups the student is in today; out of term (no group today) the latest ones."""
    now = sorted(g for g in spans if in_group(spans, g, today))
    if now or not spans:
        return now
    latest = max(max(s for s, _ in ranges) for ranges in spans.values())
    return sorted(g for g, ranges in spans.items() if any(s == latest for s, _ in ranges))


def subjects_of_groups(group_ids: Iterable[str], index: lookups.ClassIndex) -> set[str]:
    found: set[str] = set()
    for group_id in group_ids:
        group = index.groups[group_id]
        if group.subject_id:
            found.add(group.subject_id)
        found.update(index.group_teachers.get(group_id, {}))
    return found


# --- attendance ---------------------------------------------------------------------------


def absence_view(a: row_types.AttendanceRow, lookup: lookups.Lookup) -> AbsenceView:
    return AbsenceView(
        date=a.date,
        slot=a.slot,
        subject=lookup.subject(a.subject_id),
        code=a.code,
        code_title=_code_title(a.code, lookup),
        category=a.category,
        minutes_late=a.minutes_late,
    )


def lessons_held(spans: dict[str, list[lookups.Span]], index: lookups.ClassIndex) -> int:
    """Lessons of the period up to today in the child's groups, neither cancelled nor
    moved away: what the attendance share is of. Counted once for the children of a class
    in the same groups over the same days, as most are."""
    key = ("held", tuple(sorted((group, tuple(ranges)) for group, ranges in spans.items())))
    held = index.views.get(key)
    if held is None:
        held = index.views[key] = _lessons_held(spans, index)
    return cast(int, held)


def _lessons_held(spans: dict[str, list[lookups.Span]], index: lookups.ClassIndex) -> int:
    start, end = index.scope.period_range
    last = min(end, index.scope.today)
    return sum(
        1
        for x in index.bundle.lessons
        if start <= x.date <= last
        and x.status not in ("cancelled", "moved")
        and x.moved_to_date is None
        and in_group(spans, x.group_id, x.date)
    )


def attendance_view(student_id: str, index: lookups.ClassIndex, lessons: int = 0) -> AttendanceView:
    start, end = index.scope.period_range
    rows = [a for a in index.attendance.get(student_id, ()) if start <= a.date <= end]
    counts = Counter(a.category for a in rows)
    absences = [absence_view(a, index.lookup) for a in rows if a.category != "present"]
    absences.sort(key=lambda a: (a.date, a.slot, a.subject), reverse=True)
    return AttendanceView(
        period=index.scope.period.name if index.scope.period else "",
        counts=[(c, counts[c]) for c in ATTENDANCE_CATEGORIES],
        absences=absences,
        missed=sum(counts[c] for c in _ABSENT),
        unexcused=counts["unexcused"],
        lessons=lessons,
    )


def _code_title(code: str, lookup: lookups.Lookup) -> str:
    row = lookup.codes.get(code)
    return row.title if row else ""


# --- tests, teachers, groups, holidays ----------------------------------------------------


def tests_view(spans: dict[str, list[lookups.Span]], index: lookups.ClassIndex) -> TestsView:
    start, end = index.scope.period_range
    lookup = index.lookup
    works = [
        w
        for group_id in spans
        for w in index.works.get(group_id, ())
        if start <= w.date <= end and in_group(spans, group_id, w.date)
    ]
    works.sort(key=lambda w: (w.date, lookup.subject(w.subject_id), w.id))
    views = [
        WorkView(
            w.date,
            lookup.subject(w.subject_id),
            lookup.work_kinds.get(w.kind, w.kind),
            w.title,
            w.is_control,
        )
        for w in works
    ]
    today = index.scope.today
    return TestsView(
        period=index.scope.period.name if index.scope.period else "",
        upcoming=[v for v in views if v.date >= today],
        past=[v for v in views if v.date < today][::-1],
    )


def teachers_view(groups: Iterable[str], index: lookups.ClassIndex) -> TeachersView:
    lookup = index.lookup
    by_subject: dict[str, set[str]] = defaultdict(set)
    for group_id in groups:
        for subject_id, teacher_ids in index.group_teachers.get(group_id, {}).items():
            by_subject[subject_id].update(lookup.teacher_full(t) for t in teacher_ids)
    lines = [
        TeacherLine(lookup.subject(s), tuple(sorted(n for n in by_subject[s] if n)))
        for s in sorted(by_subject, key=lookups.subject_key(index))
    ]
    class_teacher = lookup.teacher_full(index.scope.class_row.class_teacher_id)
    return TeachersView(class_teacher, lines)


def groups_view(groups: Iterable[str], index: lookups.ClassIndex) -> list[GroupView]:
    rows = [index.groups[g] for g in groups if index.groups[g].kind != "whole_class"]
    views = [GroupView(g.name, g.kind, index.lookup.subject(g.subject_id)) for g in rows]
    return sorted(views, key=lambda v: (v.name, v.kind, v.subject))


def holidays_view(scope: lookups.ClassScope, lookup: lookups.Lookup) -> list[HolidayView]:
    today, year_end = scope.today, scope.year.end if scope.year else None
    return [
        HolidayView(h.name, h.kind, h.start, h.end, h.start <= today)
        for h in lookup.holidays
        if h.end >= today
        and (year_end is None or h.start <= year_end)
        and holiday_applies(h, scope.class_row.id)
    ]


def holiday_applies(holiday: row_types.HolidayRow, class_id: str) -> bool:
    return not holiday.class_unit_ids or class_id in holiday.class_unit_ids


# --- homework, recommendations ------------------------------------------------------------


def homework_item(hw: row_types.HomeworkRow, index: lookups.ClassIndex) -> HomeworkView:
    view = index.views.get(("homework", hw.id))
    if view is None:
        subject = index.lookup.subject(hw.subject_id)
        view = HomeworkView(hw.due_date, hw.assigned_on, subject, hw.text, bool(hw.student_ids))
        index.views[("homework", hw.id)] = view
    return cast(HomeworkView, view)


def homework_rows(
    student_id: str,
    spans: dict[str, list[lookups.Span]],
    index: lookups.ClassIndex,
    first: dt.date,
    last: dt.date,
) -> list[row_types.HomeworkRow]:
    """The child's homework due from `first` to `last`, by due date and subject."""
    items = [
        hw
        for group_id in spans
        for hw in index.homework.get(group_id, ())
        if first <= hw.due_date <= last
        and in_group(spans, group_id, hw.due_date)
        and (not hw.student_ids or student_id in hw.student_ids)
    ]
    items.sort(key=lambda hw: (hw.due_date, index.lookup.subject(hw.subject_id), hw.id))
    return items


def homework_view(
    student_id: str, spans: dict[str, list[lookups.Span]], index: lookups.ClassIndex
) -> HomeworkListView:
    today = index.scope.today
    first, last = (
        today - lookups.HOMEWORK_DAYS * lookups.DAY,
        today + lookups.HOMEWORK_DAYS * lookups.DAY,
    )
    items = homework_rows(student_id, spans, index, first, last)
    views = [homework_item(hw, index) for hw in items]
    return HomeworkListView(
        upcoming=[v for v in views if v.due_date >= today],
        recent=[v for v in views if v.due_date < today][::-1],
    )


def recommendations_view(student_id: str, index: lookups.ClassIndex) -> list[RecommendationView]:
    lookup = index.lookup
    rows = sorted(
        index.recommendations.get(student_id, ()), key=lambda r: (r.date, r.id), reverse=True
    )
    return [
        RecommendationView(
            r.date, lookup.teacher_short(r.teacher_id), lookup.subject(r.subject_id), r.text
        )
        for r in rows
    ]


# --- the child ----------------------------------------------------------------------------


def child_view(student: row_types.StudentRow, index: lookups.ClassIndex) -> ChildView:
    scope = index.scope
    spans = spans_of(student.id, index)
    now = groups_now(spans, scope.today)
    in_period = groups_overlapping(spans, *scope.period_range)
    return ChildView(
        student_id=student.id,
        anchor=lookups.anchor_of(student.id),
        name=lookups.full_name(student.last_name, student.first_name),
        class_name=scope.class_row.name,
        grades=grades_view(student.id, subjects_of_groups(in_period, index), index),
        attendance=attendance_view(student.id, index, lessons_held(spans, index)),
        tests=tests_view(spans, index),
        teachers=teachers_view(now, index),
        groups=groups_view(now, index),
        holidays=holidays_view(scope, index.lookup),
        homework=homework_view(student.id, spans, index),
        recommendations=recommendations_view(student.id, index),
    )
