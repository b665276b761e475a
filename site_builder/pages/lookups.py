"""School-wide lookups (names, calendars, the dates that matter to a class) and one class's
bundle indexed for per-student lookups: what every view model of the pages starts from.

Everything is sorted explicitly, because the builder hashes the rendered page to skip
unchanged ones and the same data must always give the same page.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from otmetka.db import analytics, queries, row_types

DAY = dt.timedelta(days=1)
HOMEWORK_DAYS = 7
_GRADING_KINDS = ("quarter", "trimester", "half")
Span = tuple[dt.date, dt.date | None]


# --- school-wide lookups ------------------------------------------------------------------


def short_name(last: str, first: str, middle: str = "") -> str:
    """«Королёва А. П.», as Russian schedules write teachers."""
    initials = " ".join(f"{part[0]}." for part in (first, middle) if part)
    return f"{last} {initials}".strip()


def full_name(last: str, first: str, middle: str = "") -> str:
    return " ".join(part for part in (last, first, middle) if part)


def person_name(row: row_types.GuardianRow | row_types.StudentRow) -> str:
    """With the patronymic: «Иванова Мария Петровна»."""
    return full_name(row.last_name, row.first_name, row.middle_name)


@dataclass(frozen=True)
class Lookup:
    """School-wide names and calendars, built once per build from `queries.Reference`."""

    today: dt.date
    school_name: str
    subjects: dict[str, row_types.SubjectRow]
    teachers: dict[str, row_types.TeacherRow]
    work_kinds: dict[str, str]
    codes: dict[str, row_types.AttendanceCodeRow]
    slot_times: dict[int, tuple[str, str]]
    periods: Sequence[row_types.PeriodRow]
    years: dict[str, row_types.YearRow]
    holidays: Sequence[row_types.HolidayRow]
    classes: dict[str, row_types.ClassRow]

    @classmethod
    def build(cls, ref: queries.Reference, today: dt.date) -> Lookup:
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
    def periods_by_id(self) -> dict[str, row_types.PeriodRow]:
        return {p.id: p for p in self.periods}

    @functools.cached_property
    def _subject_names(self) -> dict[str | None, str]:
        return {None: "", **{sid: row.name for sid, row in self.subjects.items()}}

    def subject(self, subject_id: str | None) -> str:
        """The subject's name; its id when the subject is unknown, "" for none."""
        name = self._subject_names.get(subject_id)
        return (subject_id or "") if name is None else name

    def teacher_short(self, teacher_id: str | None) -> str:
        row = self.teachers.get(teacher_id or "")
        return short_name(row.last_name, row.first_name, row.middle_name) if row else ""

    def teacher_full(self, teacher_id: str | None) -> str:
        row = self.teachers.get(teacher_id or "")
        return full_name(row.last_name, row.first_name, row.middle_name) if row else ""


def current_period(
    periods: Iterable[row_types.PeriodRow], today: dt.date, *, year_id: str = "", grade: int = 0
) -> row_types.PeriodRow | None:
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
    monday = analytics.monday(today)
    return monday, monday + dt.timedelta(days=5)


@dataclass(frozen=True)
class ClassScope:
    """The dates that matter for one class on `today`."""

    class_row: row_types.ClassRow
    today: dt.date
    period: row_types.PeriodRow | None
    year: row_types.YearRow | None
    week_start: dt.date
    week_end: dt.date

    @classmethod
    def build(cls, class_row: row_types.ClassRow, lookup: Lookup) -> ClassScope:
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


def _by(rows: Iterable[row_types.Row], index: int) -> dict[str, list[row_types.Row]]:
    grouped: dict[str, list[row_types.Row]] = defaultdict(list)
    for row in rows:
        grouped[row[index]].append(row)
    return grouped


def valid_on(start: dt.date, end: dt.date | None, day: dt.date) -> bool:
    return start <= day and (end is None or day <= end)


@dataclass
class ClassIndex:
    """A class bundle indexed for per-student lookups; built once per class."""

    bundle: queries.ClassBundle
    scope: ClassScope
    lookup: Lookup
    groups: dict[str, row_types.GroupRow] = field(init=False)
    memberships: dict[str, list[row_types.MembershipRow]] = field(init=False)
    works: dict[str, list[row_types.WorkRow]] = field(init=False)
    works_by_id: dict[str, row_types.WorkRow] = field(init=False)
    marks: dict[str, list[row_types.MarkRow]] = field(init=False)
    attendance: dict[str, list[row_types.AttendanceRow]] = field(init=False)
    homework: dict[str, list[row_types.HomeworkRow]] = field(init=False)
    recommendations: dict[str, list[row_types.RecommendationRow]] = field(init=False)
    group_teachers: dict[str, dict[str, set[str]]] = field(init=False)
    # Views of rows several children show (a mark in the grades and in the week, a group's
    # homework), made once per class by otmetka.site_builder.pages.family: (kind, row id) -> view;
    # also figures many children share, keyed by what they depend on.
    views: dict[tuple[str, Any], Any] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        b, s = self.bundle, self.scope
        self.groups = {g.id: g for g in b.groups}
        self.memberships = _by(b.memberships, 1)
        self.works = _by(b.works, 2)
        self.works_by_id = {w.id: w for w in b.works}
        self.marks = _by(b.marks, 1)
        self.attendance = _by(b.attendance, 1)
        self.homework = _by(b.homework, 2)
        self.recommendations = _by(b.recommendations, 1)
        self.group_teachers = _group_teachers(b, s.today)


def _group_teachers(bundle: queries.ClassBundle, today: dt.date) -> dict[str, dict[str, set[str]]]:
    """Group -> subject -> its usual teachers.

    The timetable template says who teaches a group; where it is missing, the teacher who
    most often gives the group's lessons (the original one when substituted) stands in.
    """
    result: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for entry in bundle.timetable:
        if valid_on(entry.valid_from, entry.valid_to, today):
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


def anchor_of(student_id: str) -> str:
    """A stable HTML id for a student's section that does not show the upstream id."""
    return "c" + hashlib.sha256(student_id.encode("utf-8")).hexdigest()[:10]


def student_sort_key(student: row_types.StudentRow) -> tuple[str, str, str, str]:
    return (student.last_name, student.first_name, student.middle_name, student.id)


def subject_key(index: ClassIndex) -> Callable[[str], tuple[str, str]]:
    return lambda subject_id: (index.lookup.subject(subject_id), subject_id)
