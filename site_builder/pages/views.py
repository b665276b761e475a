"""View models of the personal pages: plain dataclasses built from otmetka.db.queries rows.

No HTML here and no wording beyond names: templates decide how things read. Everything is
sorted explicitly, because the builder hashes the rendered page to skip unchanged ones and
the same data must always give the same page.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from otmetka.db import acts as events
from otmetka.db import analytics, models
from otmetka.db import queries as q

DAY = dt.timedelta(days=1)
HOMEWORK_DAYS = 7
_GRADING_KINDS = ("quarter", "trimester", "half")
_AVERAGED_KINDS = ("regular", "debt")
_ABSENT = ("illness", "excused", "unexcused")
# Order in which attendance categories are counted on the page.
ATTENDANCE_CATEGORIES = ("illness", "excused", "unexcused", "late", "exempt")

Span = tuple[dt.date, dt.date | None]


# --- school-wide lookups ------------------------------------------------------------------


def short_name(last: str, first: str, middle: str = "") -> str:
    """«Королёва А. П.», as Russian schedules write teachers."""
    initials = " ".join(f"{part[0]}." for part in (first, middle) if part)
    return f"{last} {initials}".strip()


def full_name(last: str, first: str, middle: str = "") -> str:
    return " ".join(part for part in (last, first, middle) if part)


@dataclass(frozen=True)
class Lookup:
    """School-wide names and calendars, built once per build from `queries.Reference`."""

    today: dt.date
    school_name: str
    subjects: dict[str, q.SubjectRow]
    teachers: dict[str, q.TeacherRow]
    work_kinds: dict[str, str]
    codes: dict[str, q.AttendanceCodeRow]
    slot_times: dict[int, tuple[str, str]]
    periods: Sequence[q.PeriodRow]
    years: dict[str, q.YearRow]
    holidays: Sequence[q.HolidayRow]
    classes: dict[str, q.ClassRow]

    @classmethod
    def build(cls, ref: q.Reference, today: dt.date) -> Lookup:
        slot_times: dict[int, tuple[str, str]] = {}
        for slot in ref.bell_slots:  # sorted by shift: the first shift wins a shared number
            slot_times.setdefault(slot.number, (slot.start, slot.end))
        school = ref.school
        return cls(
            today=today,
            school_name=(school.short_name or school.name) if school else "",
            subjects={s.id: s for s in ref.subjects},
            teachers={t.id: t for t in ref.teachers},
            work_kinds={k.id: k.name for k in ref.work_kinds},
            codes={c.id: c for c in ref.attendance_codes},
            slot_times=slot_times,
            periods=ref.periods,
            years={y.id: y for y in ref.years},
            holidays=ref.holidays,
            classes={c.id: c for c in ref.classes},
        )

    @functools.cached_property
    def periods_by_id(self) -> dict[str, q.PeriodRow]:
        return {p.id: p for p in self.periods}

    def subject(self, subject_id: str | None) -> str:
        if subject_id is None:
            return ""
        row = self.subjects.get(subject_id)
        return row.name if row else subject_id

    def teacher_short(self, teacher_id: str | None) -> str:
        row = self.teachers.get(teacher_id or "")
        return short_name(row.last_name, row.first_name, row.middle_name) if row else ""

    def teacher_full(self, teacher_id: str | None) -> str:
        row = self.teachers.get(teacher_id or "")
        return full_name(row.last_name, row.first_name, row.middle_name) if row else ""


def current_period(
    periods: Iterable[q.PeriodRow], today: dt.date, *, year_id: str = "", grade: int = 0
) -> q.PeriodRow | None:
    """The grading period containing `today`, else the latest started, else the first.

    Senior classes (10–11) are usually graded by halves while the rest of the school is
    graded by quarters, so when both contain `today` grade 10+ takes the half and everyone
    else the shortest period.
    """
    grading = [p for p in periods if p.kind in _GRADING_KINDS]
    own_year = [p for p in grading if p.academic_year_id == year_id]
    candidates = own_year or grading
    containing = [p for p in candidates if p.start <= today <= p.end]
    if containing:
        halves = [p for p in containing if p.kind == "half"]
        if grade >= 10 and halves:
            return halves[0]
        return min(containing, key=lambda p: (p.end - p.start, p.start, p.id))
    started = [p for p in candidates if p.start <= today]
    if started:
        return max(started, key=lambda p: (p.start, p.end, p.id))
    return min(candidates, key=lambda p: (p.start, p.id)) if candidates else None


def week_of(today: dt.date) -> tuple[dt.date, dt.date]:
    """Monday and Saturday of the week containing `today`."""
    monday = today - dt.timedelta(days=today.weekday())
    return monday, monday + dt.timedelta(days=5)


@dataclass(frozen=True)
class ClassScope:
    """The dates that matter for one class on `today`."""

    class_row: q.ClassRow
    today: dt.date
    period: q.PeriodRow | None
    year: q.YearRow | None
    week_start: dt.date
    week_end: dt.date

    @classmethod
    def build(cls, class_row: q.ClassRow, lookup: Lookup) -> ClassScope:
        today = lookup.today
        period = current_period(
            lookup.periods, today, year_id=class_row.academic_year_id, grade=class_row.grade
        )
        monday, saturday = week_of(today)
        year = lookup.years.get(class_row.academic_year_id)
        return cls(class_row, today, period, year, monday, saturday)

    @property
    def period_range(self) -> tuple[dt.date, dt.date]:
        if self.period is not None:
            return self.period.start, self.period.end
        return self.load_range[0], self.load_range[1]

    @property
    def load_range(self) -> tuple[dt.date, dt.date]:
        """Dates the class bundle must cover: the period, the week and the homework window."""
        starts = [self.week_start, self.today - HOMEWORK_DAYS * DAY]
        ends = [self.week_end, self.today + HOMEWORK_DAYS * DAY]
        if self.period is not None:
            starts.append(self.period.start)
            ends.append(self.period.end)
        return min(starts), max(ends)

    @property
    def year_start(self) -> dt.date:
        start = self.load_range[0]
        return min(self.year.start, start) if self.year else start


# --- one class, indexed -------------------------------------------------------------------


def _by(rows: Iterable[q.Row], index: int) -> dict[str, list[q.Row]]:
    grouped: dict[str, list[q.Row]] = defaultdict(list)
    for row in rows:
        grouped[row[index]].append(row)
    return grouped


def _valid_on(start: dt.date, end: dt.date | None, day: dt.date) -> bool:
    return start <= day and (end is None or day <= end)


@dataclass
class ClassIndex:
    """A class bundle indexed for per-student lookups; built once per class."""

    bundle: q.ClassBundle
    scope: ClassScope
    lookup: Lookup
    groups: dict[str, q.GroupRow] = field(init=False)
    memberships: dict[str, list[q.MembershipRow]] = field(init=False)
    week_lessons: dict[str, list[q.LessonRow]] = field(init=False)
    works: dict[str, list[q.WorkRow]] = field(init=False)
    works_by_id: dict[str, q.WorkRow] = field(init=False)
    marks: dict[str, list[q.MarkRow]] = field(init=False)
    attendance: dict[str, list[q.AttendanceRow]] = field(init=False)
    homework: dict[str, list[q.HomeworkRow]] = field(init=False)
    recommendations: dict[str, list[q.RecommendationRow]] = field(init=False)
    group_teachers: dict[str, dict[str, set[str]]] = field(init=False)

    def __post_init__(self) -> None:
        b, s = self.bundle, self.scope
        self.groups = {g.id: g for g in b.groups}
        self.memberships = _by(b.memberships, 1)
        week = [x for x in b.lessons if s.week_start <= x.date <= s.week_end]
        self.week_lessons = _by(week, 3)
        self.works = _by(b.works, 2)
        self.works_by_id = {w.id: w for w in b.works}
        self.marks = _by(b.marks, 1)
        self.attendance = _by(b.attendance, 1)
        self.homework = _by(b.homework, 2)
        self.recommendations = _by(b.recommendations, 1)
        self.group_teachers = _group_teachers(b, s.today)


def _group_teachers(bundle: q.ClassBundle, today: dt.date) -> dict[str, dict[str, set[str]]]:
    """Group -> subject -> its usual teachers.

    The timetable template says who teaches a group; where it is missing, the teacher who
    most often gives the group's lessons (the original one when substituted) stands in.
    """
    result: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for entry in bundle.timetable:
        if _valid_on(entry.valid_from, entry.valid_to, today):
            result[entry.group_id][entry.subject_id].add(entry.teacher_id)
    # Evidence per (group, subject, usual teacher): lessons, then the last lesson they gave
    # themselves, so that a tie goes to whoever teaches the group now.
    evidence: dict[tuple[str, str], dict[str, tuple[int, dt.date]]] = defaultdict(dict)
    for lesson in bundle.lessons:
        usual = lesson.substitution_original_teacher_id or lesson.teacher_id
        seen = evidence[(lesson.group_id, lesson.subject_id)]
        count, last = seen.get(usual, (0, dt.date.min))
        if usual == lesson.teacher_id:
            last = max(last, lesson.date)
        seen[usual] = (count + 1, last)
    for (group, subject), seen in evidence.items():
        if subject not in result[group]:
            best = max(sorted(seen), key=lambda t: seen[t])
            result[group][subject].add(best)
    return result


# --- view models --------------------------------------------------------------------------


@dataclass(frozen=True)
class MarkView:
    raw: str
    date: dt.date
    weight: float
    kind: str
    title: str
    comment: str


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


@dataclass(frozen=True)
class GradesView:
    period: str
    subjects: list[SubjectGrades]
    average: float | None


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

    @property
    def cancelled(self) -> bool:
        return self.status == "cancelled"

    @property
    def moved_away(self) -> bool:
        return self.status == "moved" or self.moved_to is not None


@dataclass(frozen=True)
class DayView:
    date: dt.date
    lessons: list[LessonView]
    holiday: str


@dataclass(frozen=True)
class TimetableView:
    week_start: dt.date
    week_end: dt.date
    days: list[DayView]


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
    timetable: TimetableView
    tests: TestsView
    teachers: TeachersView
    groups: list[GroupView]
    holidays: list[HolidayView]
    homework: HomeworkListView
    recommendations: list[RecommendationView]


# --- grades -------------------------------------------------------------------------------


def weighted_average(marks: Iterable[q.MarkRow]) -> float | None:
    """Σ(value·w) + Σ(value2·w) over the weights of the numeric parts; None if none."""
    total = weights = 0.0
    for mark in marks:
        for part in (mark.value, mark.value2):
            if part is not None:
                total += part * mark.weight
                weights += mark.weight
    return total / weights if weights else None


def mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def _is_final(mark: q.MarkRow) -> bool:
    if mark.kind == "not_certified":
        return mark.period_id is not None
    return mark.kind in q.FINAL_KINDS


def _mark_view(mark: q.MarkRow, index: ClassIndex) -> MarkView:
    work = index.works_by_id.get(mark.work_id or "")
    title = ""
    if work is not None:
        title = work.title or index.lookup.work_kinds.get(work.kind, "")
    return MarkView(mark.raw_text, mark.date, mark.weight, mark.kind, title, mark.comment)


def _final_view(mark: q.MarkRow, lookup: Lookup) -> tuple[tuple[dt.date, str], FinalView]:
    period = lookup.periods_by_id.get(mark.period_id or "")
    label = period.name if period else ("Год" if mark.kind == "year_final" else "")
    order = (period.end if period else mark.date, mark.id)
    return order, FinalView(label, mark.raw_text)


def grades_view(student_id: str, subjects: set[str], index: ClassIndex) -> GradesView:
    start, end = index.scope.period_range
    current: dict[str, list[q.MarkRow]] = defaultdict(list)
    finals: dict[str, list[tuple[tuple[dt.date, str], FinalView]]] = defaultdict(list)
    for mark in index.marks.get(student_id, ()):
        if _is_final(mark):
            finals[mark.subject_id].append(_final_view(mark, index.lookup))
        elif start <= mark.date <= end:
            current[mark.subject_id].append(mark)
    lines = []
    for subject_id in sorted(subjects | set(current) | set(finals), key=_subject_key(index)):
        marks = current.get(subject_id, [])
        averaged = [m for m in marks if m.kind in _AVERAGED_KINDS]
        lines.append(
            SubjectGrades(
                subject=index.lookup.subject(subject_id),
                marks=[_mark_view(m, index) for m in marks],
                average=weighted_average(averaged),
                finals=[view for _, view in sorted(finals.get(subject_id, []))],
            )
        )
    period = index.scope.period.name if index.scope.period else ""
    return GradesView(period, lines, mean(line.average for line in lines))


def _subject_key(index: ClassIndex) -> Callable[[str], tuple[str, str]]:
    return lambda subject_id: (index.lookup.subject(subject_id), subject_id)


# --- memberships --------------------------------------------------------------------------


def spans_of(student_id: str, index: ClassIndex) -> dict[str, list[Span]]:
    spans: dict[str, list[Span]] = defaultdict(list)
    for membership in index.memberships.get(student_id, ()):
        if membership.group_id in index.groups:
            spans[membership.group_id].append((membership.date_from, membership.date_to))
    return spans


def in_group(spans: dict[str, list[Span]], group_id: str, day: dt.date) -> bool:
    return any(_valid_on(start, end, day) for start, end in spans.get(group_id, ()))


def groups_overlapping(spans: dict[str, list[Span]], start: dt.date, end: dt.date) -> list[str]:
    return sorted(
        group
        for group, ranges in spans.items()
        if any(s <= end and (e is None or e >= start) for s, e in ranges)
    )


def groups_now(spans: dict[str, list[Span]], today: dt.date) -> list[str]:
    """Groups the student is in today; out of term (no group today) the latest ones."""
    now = sorted(g for g in spans if in_group(spans, g, today))
    if now or not spans:
        return now
    latest = max(max(s for s, _ in ranges) for ranges in spans.values())
    return sorted(g for g, ranges in spans.items() if any(s == latest for s, _ in ranges))


def subjects_of_groups(group_ids: Iterable[str], index: ClassIndex) -> set[str]:
    found: set[str] = set()
    for group_id in group_ids:
        group = index.groups[group_id]
        if group.subject_id:
            found.add(group.subject_id)
        found.update(index.group_teachers.get(group_id, {}))
    return found


# --- attendance ---------------------------------------------------------------------------


def attendance_view(student_id: str, index: ClassIndex) -> AttendanceView:
    start, end = index.scope.period_range
    rows = [a for a in index.attendance.get(student_id, ()) if start <= a.date <= end]
    counts = Counter(a.category for a in rows)
    absences = [
        AbsenceView(
            date=a.date,
            slot=a.slot,
            subject=index.lookup.subject(a.subject_id),
            code=a.code,
            code_title=_code_title(a.code, index.lookup),
            category=a.category,
            minutes_late=a.minutes_late,
        )
        for a in rows
        if a.category != "present"
    ]
    absences.sort(key=lambda a: (a.date, a.slot, a.subject), reverse=True)
    return AttendanceView(
        period=index.scope.period.name if index.scope.period else "",
        counts=[(c, counts[c]) for c in ATTENDANCE_CATEGORIES],
        absences=absences,
        missed=sum(counts[c] for c in _ABSENT),
        unexcused=counts["unexcused"],
    )


def _code_title(code: str, lookup: Lookup) -> str:
    row = lookup.codes.get(code)
    return row.title if row else ""


# --- timetable ----------------------------------------------------------------------------


def _slot_ref(day: dt.date | None, slot: int | None) -> tuple[dt.date, int | None] | None:
    return (day, slot) if day is not None else None


def lesson_view(lesson: q.LessonRow, lookup: Lookup) -> LessonView:
    start, end = lookup.slot_times.get(lesson.slot, ("", ""))
    original = lesson.substitution_original_teacher_id
    return LessonView(
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


def holiday_on(day: dt.date, holidays: Sequence[q.HolidayRow], class_id: str) -> str:
    for holiday in holidays:
        if holiday.start <= day <= holiday.end and _holiday_applies(holiday, class_id):
            return holiday.name
    return ""


def _holiday_applies(holiday: q.HolidayRow, class_id: str) -> bool:
    return not holiday.class_unit_ids or class_id in holiday.class_unit_ids


def timetable_view(spans: dict[str, list[Span]], index: ClassIndex) -> TimetableView:
    scope, lookup = index.scope, index.lookup
    by_day: dict[dt.date, list[q.LessonRow]] = defaultdict(list)
    for group_id in spans:
        for lesson in index.week_lessons.get(group_id, ()):
            if in_group(spans, group_id, lesson.date):
                by_day[lesson.date].append(lesson)
    days = []
    for offset in range(6):
        day = scope.week_start + offset * DAY
        lessons = sorted(
            by_day.get(day, []), key=lambda x: (x.slot, lookup.subject(x.subject_id), x.id)
        )
        holiday = holiday_on(day, lookup.holidays, scope.class_row.id)
        days.append(DayView(day, [lesson_view(x, lookup) for x in lessons], holiday))
    return TimetableView(scope.week_start, scope.week_end, days)


# --- tests, teachers, groups, holidays ----------------------------------------------------


def tests_view(spans: dict[str, list[Span]], index: ClassIndex) -> TestsView:
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


def teachers_view(groups: Iterable[str], index: ClassIndex) -> TeachersView:
    lookup = index.lookup
    by_subject: dict[str, set[str]] = defaultdict(set)
    for group_id in groups:
        for subject_id, teacher_ids in index.group_teachers.get(group_id, {}).items():
            by_subject[subject_id].update(lookup.teacher_full(t) for t in teacher_ids)
    lines = [
        TeacherLine(lookup.subject(s), tuple(sorted(n for n in by_subject[s] if n)))
        for s in sorted(by_subject, key=_subject_key(index))
    ]
    class_teacher = lookup.teacher_full(index.scope.class_row.class_teacher_id)
    return TeachersView(class_teacher, lines)


def groups_view(groups: Iterable[str], index: ClassIndex) -> list[GroupView]:
    rows = [index.groups[g] for g in groups if index.groups[g].kind != "whole_class"]
    views = [GroupView(g.name, g.kind, index.lookup.subject(g.subject_id)) for g in rows]
    return sorted(views, key=lambda v: (v.name, v.kind, v.subject))


def holidays_view(scope: ClassScope, lookup: Lookup) -> list[HolidayView]:
    today, year_end = scope.today, scope.year.end if scope.year else None
    return [
        HolidayView(h.name, h.kind, h.start, h.end, h.start <= today)
        for h in lookup.holidays
        if h.end >= today
        and (year_end is None or h.start <= year_end)
        and _holiday_applies(h, scope.class_row.id)
    ]


# --- homework, recommendations ------------------------------------------------------------


def _homework_view(hw: q.HomeworkRow, lookup: Lookup) -> HomeworkView:
    return HomeworkView(
        hw.due_date, hw.assigned_on, lookup.subject(hw.subject_id), hw.text, bool(hw.student_ids)
    )


def homework_view(
    student_id: str, spans: dict[str, list[Span]], index: ClassIndex
) -> HomeworkListView:
    today, lookup = index.scope.today, index.lookup
    first, last = today - HOMEWORK_DAYS * DAY, today + HOMEWORK_DAYS * DAY
    items = [
        hw
        for group_id in spans
        for hw in index.homework.get(group_id, ())
        if first <= hw.due_date <= last
        and in_group(spans, group_id, hw.due_date)
        and (not hw.student_ids or student_id in hw.student_ids)
    ]
    items.sort(key=lambda hw: (hw.due_date, lookup.subject(hw.subject_id), hw.id))
    views = [_homework_view(hw, lookup) for hw in items]
    return HomeworkListView(
        upcoming=[v for v in views if v.due_date >= today],
        recent=[v for v in views if v.due_date < today][::-1],
    )


def recommendations_view(student_id: str, index: ClassIndex) -> list[RecommendationView]:
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


def anchor_of(student_id: str) -> str:
    """A stable HTML id for a student's section that does not show the upstream id."""
    return "c" + hashlib.sha256(student_id.encode("utf-8")).hexdigest()[:10]


def child_view(student: q.StudentRow, index: ClassIndex) -> ChildView:
    scope = index.scope
    spans = spans_of(student.id, index)
    now = groups_now(spans, scope.today)
    in_period = groups_overlapping(spans, *scope.period_range)
    return ChildView(
        student_id=student.id,
        anchor=anchor_of(student.id),
        name=full_name(student.last_name, student.first_name),
        class_name=scope.class_row.name,
        grades=grades_view(student.id, subjects_of_groups(in_period, index), index),
        attendance=attendance_view(student.id, index),
        timetable=timetable_view(spans, index),
        tests=tests_view(spans, index),
        teachers=teachers_view(now, index),
        groups=groups_view(now, index),
        holidays=holidays_view(scope, index.lookup),
        homework=homework_view(student.id, spans, index),
        recommendations=recommendations_view(student.id, index),
    )


def student_sort_key(student: q.StudentRow) -> tuple[str, str, str, str]:
    return (student.last_name, student.first_name, student.middle_name, student.id)


# --- staff pages --------------------------------------------------------------------------


@dataclass(frozen=True)
class PupilLine:
    anchor: str
    name: str
    average: float | None
    missed: int
    unexcused: int


@dataclass(frozen=True)
class ClassListView:
    class_name: str
    period: str
    pupils: list[PupilLine]


def class_list_view(scope: ClassScope, children: Sequence[ChildView]) -> ClassListView:
    pupils = [
        PupilLine(c.anchor, c.name, c.grades.average, c.attendance.missed, c.attendance.unexcused)
        for c in children
    ]
    return ClassListView(scope.class_row.name, scope.period.name if scope.period else "", pupils)


# --- the class journal (teacher page) -----------------------------------------------------

Cell = tuple[tuple[str, ...], tuple[str, ...]]  # (marks as written, attendance codes)
CellIndex = dict[tuple[str, str, dt.date], list[str]]  # (student, subject, day) -> texts
_EMPTY_CELL: Cell = ((), ())


@dataclass(frozen=True)
class JournalLine:
    anchor: str
    name: str
    cells: tuple[Cell, ...]  # one per date of the subject
    average: float | None
    finals: tuple[str, ...]


@dataclass(frozen=True)
class SubjectJournal:
    subject_id: str
    subject: str
    dates: tuple[dt.date, ...]
    lines: tuple[JournalLine, ...]


def _journal_days(index: ClassIndex, start: dt.date, last: dt.date) -> dict[str, set[dt.date]]:
    """Subject -> dates with a lesson held (or scheduled) for the class's groups."""
    days: dict[str, set[dt.date]] = defaultdict(set)
    for lesson in index.bundle.lessons:
        if start <= lesson.date <= last and lesson.status not in ("cancelled", "moved"):
            days[lesson.subject_id].add(lesson.date)
    return days


def _cells(
    students: Sequence[q.StudentRow], index: ClassIndex, start: dt.date, last: dt.date
) -> tuple[CellIndex, CellIndex]:
    marks: CellIndex = defaultdict(list)
    codes: CellIndex = defaultdict(list)
    for student in students:
        for mark in index.marks.get(student.id, ()):
            if start <= mark.date <= last and not _is_final(mark):
                marks[(student.id, mark.subject_id, mark.date)].append(mark.raw_text)
        for row in index.attendance.get(student.id, ()):
            if start <= row.date <= last and row.category != "present":
                codes[(student.id, row.subject_id, row.date)].append(row.code)
    return marks, codes


def class_journal(students: Sequence[q.StudentRow], index: ClassIndex) -> list[SubjectJournal]:
    """Every subject of the class in the current period, up to today: students × dates,
    each cell the marks and attendance codes of that day, as written."""
    start, end = index.scope.period_range
    last = min(end, index.scope.today)
    days = _journal_days(index, start, last)
    marks, codes = _cells(students, index, start, last)
    for sid_subject_day in (*marks, *codes):
        days[sid_subject_day[1]].add(sid_subject_day[2])
    own: dict[tuple[str, str], list[q.MarkRow]] = defaultdict(list)
    for student in students:
        for mark in index.marks.get(student.id, ()):
            own[(student.id, mark.subject_id)].append(mark)
    period_id = index.scope.period.id if index.scope.period else None
    journals = []
    for subject_id in sorted(days, key=_subject_key(index)):
        dates = tuple(sorted(days[subject_id]))
        lines = []
        for student in students:
            cells = tuple(_cell(student.id, subject_id, day, marks, codes) for day in dates)
            rows = own.get((student.id, subject_id), [])
            lines.append(_journal_line(student, rows, cells, index, period_id))
        journals.append(
            SubjectJournal(subject_id, index.lookup.subject(subject_id), dates, tuple(lines))
        )
    return journals


def _cell(sid: str, subject_id: str, day: dt.date, marks: CellIndex, codes: CellIndex) -> Cell:
    key = (sid, subject_id, day)
    found, coded = marks.get(key), codes.get(key)
    if found is None and coded is None:
        return _EMPTY_CELL  # most cells of a journal: shared, not built
    return (tuple(found or ()), tuple(coded or ()))


def _journal_line(
    student: q.StudentRow,
    own: list[q.MarkRow],
    cells: tuple[Cell, ...],
    index: ClassIndex,
    period_id: str | None,
) -> JournalLine:
    start, end = index.scope.period_range
    counted = [m for m in own if start <= m.date <= end and m.kind in _AVERAGED_KINDS]
    finals = tuple(m.raw_text for m in own if _is_final(m) and m.period_id == period_id)
    name = full_name(student.last_name, student.first_name)
    return JournalLine(anchor_of(student.id), name, cells, weighted_average(counted), finals)


# --- analytics (teacher page, deputy page, PDF reports) -----------------------------------


@dataclass(frozen=True)
class RiskView:
    kind: str  # see otmetka.db.analytics: low_average / twos_in_row / missed / not_certified
    subject: str
    value: float


@dataclass(frozen=True)
class SubjectStat:
    subject: str
    average: float | None
    spread: tuple[int, int, int, int]  # «5», «4», «3», «2»
    marks: int


@dataclass(frozen=True)
class PupilStat:
    anchor: str
    name: str
    overall: float | None
    lessons: int
    missed: int
    missed_share: float | None
    absences: tuple[tuple[str, int], ...]  # category, lessons
    weekly: tuple[float | None, ...]
    subjects: tuple[tuple[str, float | None, float | None], ...]  # subject, own, class
    risks: tuple[RiskView, ...]


@dataclass(frozen=True)
class WeekStat:
    start: dt.date
    lessons: int
    missed: int
    late: int
    attendance: float | None
    average: float | None


@dataclass(frozen=True)
class AnalyticsView:
    class_id: str
    class_name: str
    period: str
    start: dt.date
    counted_to: dt.date
    average: float | None
    attendance: float | None
    lessons: int
    missed: int
    subjects: tuple[SubjectStat, ...]
    pupils: tuple[PupilStat, ...]
    weeks: tuple[WeekStat, ...]
    absences: tuple[tuple[str, int], ...]

    @property
    def at_risk(self) -> list[PupilStat]:
        return [p for p in self.pupils if p.risks]


def _pupil_stat(
    figures: analytics.StudentFigures,
    student: q.StudentRow,
    class_averages: dict[str, float],
    lookup: Lookup,
) -> PupilStat:
    subjects = sorted(
        set(figures.averages) | set(class_averages), key=lambda s: (lookup.subject(s), s)
    )
    return PupilStat(
        anchor=anchor_of(student.id),
        name=full_name(student.last_name, student.first_name),
        overall=figures.overall,
        lessons=figures.lessons,
        missed=figures.missed,
        missed_share=figures.missed_share,
        absences=tuple(figures.absences.items()),
        weekly=figures.weekly,
        subjects=tuple(
            (lookup.subject(s), figures.averages.get(s), class_averages.get(s)) for s in subjects
        ),
        risks=tuple(RiskView(r.kind, lookup.subject(r.subject_id), r.value) for r in figures.risks),
    )


def analytics_view(
    figures: analytics.ClassAnalytics,
    students: Sequence[q.StudentRow],
    class_row: q.ClassRow,
    period: str,
    lookup: Lookup,
) -> AnalyticsView:
    """Names and order for the figures of one class (students in the order of `students`)."""
    by_id = {s.id: s for s in students}
    subjects = sorted(figures.subjects, key=lambda s: (lookup.subject(s.subject_id), s.subject_id))
    return AnalyticsView(
        class_id=class_row.id,
        class_name=class_row.name,
        period=period,
        start=figures.start,
        counted_to=figures.counted_to,
        average=figures.average,
        attendance=figures.attendance,
        lessons=figures.lessons,
        missed=figures.missed,
        subjects=tuple(
            SubjectStat(lookup.subject(s.subject_id), s.average, s.spread, s.marks)
            for s in subjects
        ),
        pupils=tuple(
            _pupil_stat(f, by_id[f.student_id], figures.subject_average, lookup)
            for f in figures.students
        ),
        weeks=tuple(
            WeekStat(w.start, w.lessons, w.missed, w.late, w.attendance, w.average)
            for w in figures.weeks
        ),
        absences=tuple(figures.absences.items()),
    )


# --- control tables (teacher page) --------------------------------------------------------


@dataclass(frozen=True)
class GuardianControl:
    name: str
    children: str
    delivery: str  # electronic / paper
    consent: str  # unknown / granted / refused / withdrawn
    ack_channel: str  # electronic / paper / "" (none)
    ack_day: dt.date | None


@dataclass(frozen=True)
class PaperLine:
    name: str
    reason: str  # refused / withdrawn / paper delivery
    since: dt.date | None
    children: str


@dataclass(frozen=True)
class NoSlipLine:
    role: str  # student / guardian
    name: str


@dataclass(frozen=True)
class ControlView:
    week_start: dt.date
    week_end: dt.date
    period: str
    guardians: tuple[GuardianControl, ...]
    paper: tuple[PaperLine, ...]
    no_slips: tuple[NoSlipLine, ...]

    @property
    def acknowledged(self) -> int:
        return sum(1 for g in self.guardians if g.ack_channel)

    @property
    def consented(self) -> int:
        return sum(1 for g in self.guardians if g.consent == "granted")


@dataclass(frozen=True)
class SchoolFacts:
    """School-wide facts the control tables need, loaded once per build."""

    consents: dict[str, str]  # guardian -> consent state (absent: unknown)
    acknowledgements: Sequence[analytics.AckRow]
    paper: Sequence[events.PaperFamily]
    no_slips: set[tuple[str, str]]  # (kind, id) of people not given credentials


def _person_name(row: q.GuardianRow | q.StudentRow) -> str:
    return full_name(row.last_name, row.first_name, row.middle_name)


def class_guardians(
    students: Sequence[q.StudentRow], links: dict[str, list[q.GuardianRow]]
) -> list[tuple[q.GuardianRow, list[q.StudentRow]]]:
    """The guardians of these students with their children among them, sorted by name."""
    found: dict[str, tuple[q.GuardianRow, list[q.StudentRow]]] = {}
    for student in students:
        for guardian in links.get(student.id, ()):
            entry = found.setdefault(guardian.id, (guardian, []))
            if student not in entry[1]:
                entry[1].append(student)
    return sorted(found.values(), key=lambda e: (*student_sort_key(e[0])[:3], e[0].id))  # type: ignore[arg-type]


def _children_text(children: Iterable[q.StudentRow]) -> str:
    return "; ".join(full_name(s.last_name, s.first_name) for s in children)


def control_view(
    scope: ClassScope,
    students: Sequence[q.StudentRow],
    links: dict[str, list[q.GuardianRow]],
    facts: SchoolFacts,
) -> ControlView:
    period = scope.period_range if scope.period else None
    acknowledged = analytics.acknowledged(facts.acknowledgements, scope.week_start, period)
    guardians = []
    for guardian, children in class_guardians(students, links):
        ack = acknowledged.get(guardian.id)
        guardians.append(
            GuardianControl(
                name=_person_name(guardian),
                children=_children_text(children),
                delivery=guardian.delivery,
                consent=facts.consents.get(guardian.id, "unknown"),
                ack_channel=ack.channel if ack else "",
                ack_day=ack.day if ack else None,
            )
        )
    ids = {s.id for s in students}
    paper = tuple(
        PaperLine(
            f.name,
            f.reason,
            f.since.date() if f.since else None,
            "; ".join(name for sid, name, _cls in f.children if sid in ids),
        )
        for f in facts.paper
        if any(sid in ids for sid, _name, _cls in f.children)
    )
    return ControlView(
        week_start=scope.week_start,
        week_end=scope.week_end,
        period=scope.period.name if scope.period else "",
        guardians=tuple(guardians),
        paper=paper,
        no_slips=_no_slips(students, links, facts),
    )


def _no_slips(
    students: Sequence[q.StudentRow], links: dict[str, list[q.GuardianRow]], facts: SchoolFacts
) -> tuple[NoSlipLine, ...]:
    lines = [
        NoSlipLine("student", _person_name(s))
        for s in students
        if ("student", s.id) in facts.no_slips
    ]
    for guardian, _children in class_guardians(students, links):
        if ("guardian", guardian.id) in facts.no_slips:
            lines.append(NoSlipLine("guardian", _person_name(guardian)))
    return tuple(lines)


# --- the deputy head's page ---------------------------------------------------------------


@dataclass(frozen=True)
class ClassSummary:
    name: str
    class_teacher: str
    students: int
    average: float | None
    at_risk: int
    attendance: float | None
    guardians: int
    acknowledged: int
    consented: int

    @property
    def ack_rate(self) -> float | None:
        return self.acknowledged / self.guardians if self.guardians else None

    @property
    def consent_rate(self) -> float | None:
        return self.consented / self.guardians if self.guardians else None


def class_summary(
    view: AnalyticsView, control: ControlView, class_row: q.ClassRow, lookup: Lookup
) -> ClassSummary:
    return ClassSummary(
        name=class_row.name,
        class_teacher=lookup.teacher_full(class_row.class_teacher_id),
        students=len(view.pupils),
        average=view.average,
        at_risk=len(view.at_risk),
        attendance=view.attendance,
        guardians=len(control.guardians),
        acknowledged=control.acknowledged,
        consented=control.consented,
    )


@dataclass(frozen=True)
class BreachLine:
    number: int
    login: str
    who: str
    role: str  # guardian / student / teacher
    received: dt.datetime  # school time
    deadline: dt.datetime  # school time
    state: str  # open / overdue / closed
    new_login: str


def school_offset(deadline_utc: dt.datetime) -> dt.timedelta:
    """The school's UTC offset, read off a breach deadline: the deadline is stored in UTC
    but is always the end (23:59:59.999999) of a day in school time, so it carries it."""
    end = dt.timedelta(hours=23, minutes=59, seconds=59, microseconds=999999)
    at = deadline_utc.time()
    seconds = dt.timedelta(hours=at.hour, minutes=at.minute, seconds=at.second)
    offset = (end - seconds - dt.timedelta(microseconds=at.microsecond)) % dt.timedelta(days=1)
    if offset > dt.timedelta(hours=14):
        offset -= dt.timedelta(days=1)
    return dt.timedelta(minutes=round(offset.total_seconds() / 60))


def breach_lines(
    reports: Iterable[models.BreachReport], names: dict[tuple[str, str], str], today: dt.date
) -> list[BreachLine]:
    """The breach register, newest first, in school time."""
    lines = []
    for report in reports:
        offset = school_offset(report.deadline)
        received, deadline = report.received_at + offset, report.deadline + offset
        state = report.state
        if state == "open" and deadline.date() < today:
            state = "overdue"
        credential = report.credential
        key = (credential.person_kind, credential.person_id)
        lines.append(
            BreachLine(
                report.id,
                credential.login,
                names.get(key, ""),
                credential.person_kind,
                received,
                deadline,
                state,
                report.new_login,
            )
        )
    return sorted(lines, key=lambda line: (line.received, line.number), reverse=True)
