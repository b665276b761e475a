"""Class analytics: what the class teacher and the deputy head read about a class.

The figures are computed from a `queries.ClassBundle`, the very rows the pages show, so the
analytics of a class costs no statement beyond the bundle the builder loads for the class
anyway (`class_analytics`); `load_class_analytics` loads a bundle for callers without one.

Definitions (the period is the grading period the pages show; "counted" dates run from its
start to today, or to its end when it is over):

- A mark counts when its kind is regular or debt and it has a numeric part; a double mark
  such as «3/5» counts as two marks of its weight, as on the pages.
- Weighted average of a subject for the class: Σ(value·weight) / Σ(weight) over every mark
  of the class's students on roll in that subject. A student's average in a subject is the
  same over their own marks; their overall average is the mean of their subject averages,
  and the class's overall average the mean of its subject averages.
- Spread: how many marks were «5», «4», «3» and «2» (a «1» counts with the «2»; «4-» with
  the «4»); five-point marks only.
- Lessons due: lessons of the student's groups on the counted dates, the student being a
  member that day, neither cancelled nor moved away. Missed: attendance on those lessons in
  the categories illness, excused or unexcused.
- At risk: an average below 3 in a subject; three or more «2» in a row in a subject (by
  date, double marks part by part); 30 % or more of the lessons due missed; «н/а» in the
  period.
- A week is Monday to Sunday; weekly averages weigh the marks dated in that week.

The module also holds the queries of the control tables that no other module offers
(acknowledgements of many guardians at once) and the record of analytics PDFs.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import operator
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from otmetka.db import models, queries, row_types
from otmetka.db.connection import database

DAY = dt.timedelta(days=1)
AVERAGED_KINDS = ("regular", "debt")
ABSENT = ("illness", "excused", "unexcused")
CATEGORIES = ("illness", "excused", "unexcused", "late", "exempt")
NOT_HELD = ("cancelled", "moved")
GRADES = (5, 4, 3, 2)
RISK_AVERAGE = 3.0
RISK_TWOS_IN_ROW = 3
RISK_MISSED_SHARE = 0.30
_NOT_CERTIFIED_TEXTS = {"н/а", "на", "н\\а"}

# Reasons a student is at risk, in the order they are listed.
LOW_AVERAGE, TWOS, MISSED, NOT_CERTIFIED = "low_average", "twos_in_row", "missed", "not_certified"
RISK_ORDER = (NOT_CERTIFIED, LOW_AVERAGE, TWOS, MISSED)


# --- figures ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubjectFigures:
    subject_id: str
    average: float | None
    spread: tuple[int, int, int, int]  # how many «5», «4», «3», «2»
    marks: int  # numeric marks counted (both parts of a double mark)


@dataclass(frozen=True)
class Risk:
    """One reason a student is at risk. `value` is the average (low_average), the longest
    run of «2» (twos_in_row), the share of lessons missed (missed) or the number of «н/а»."""

    kind: str
    subject_id: str | None
    value: float


@dataclass(frozen=True)
class StudentFigures:
    student_id: str
    averages: dict[str, float]  # subject -> weighted average (subjects with marks only)
    overall: float | None
    weekly: tuple[float | None, ...]  # weighted average of each week of the analysis
    absences: dict[str, int]  # category -> lessons, every category of CATEGORIES
    lessons: int  # lessons due
    missed: int
    risks: tuple[Risk, ...]

    @property
    def missed_share(self) -> float | None:
        return self.missed / self.lessons if self.lessons else None


@dataclass(frozen=True)
class WeekFigures:
    start: dt.date  # Monday
    lessons: int  # student-lessons due
    missed: int
    late: int
    average: float | None  # the class's weighted average of the marks of that week

    @property
    def attendance(self) -> float | None:
        return 1 - self.missed / self.lessons if self.lessons else None


@dataclass(frozen=True)
class ClassAnalytics:
    class_id: str
    start: dt.date
    end: dt.date
    counted_to: dt.date
    weeks: tuple[WeekFigures, ...]
    subjects: tuple[SubjectFigures, ...]  # subjects with marks or lessons, by id
    students: tuple[StudentFigures, ...]  # in the order given
    absences: dict[str, int]  # category -> lessons
    subject_average: dict[str, float] = field(default_factory=dict)

    @property
    def average(self) -> float | None:
        return mean(s.average for s in self.subjects)

    @property
    def at_risk(self) -> list[StudentFigures]:
        return [s for s in self.students if s.risks]

    @property
    def lessons(self) -> int:
        return sum(s.lessons for s in self.students)

    @property
    def missed(self) -> int:
        return sum(s.missed for s in self.students)

    @property
    def attendance(self) -> float | None:
        return 1 - self.missed / self.lessons if self.lessons else None

    def student(self, student_id: str) -> StudentFigures | None:
        return next((s for s in self.students if s.student_id == student_id), None)


# --- pieces -------------------------------------------------------------------------------


def grade_of(value: float) -> int:
    """The grade a numeric part stands for: «4-» (3.75 or 4) is a 4; a 1 counts as a 2."""
    return max(2, min(5, math.floor(value + 0.5)))


@functools.lru_cache(maxsize=4096)
def monday(day: dt.date) -> dt.date:
    # Cached: called for every mark and lesson of a school, on a few hundred dates.
    return day - dt.timedelta(days=day.weekday())


def weeks_between(start: dt.date, end: dt.date) -> list[dt.date]:
    """Mondays of the weeks from the one holding `start` to the one holding `end`."""
    first, last = monday(start), monday(end)
    count = (last - first).days // 7 + 1 if last >= first else 0
    return [first + dt.timedelta(weeks=n) for n in range(count)]


def is_not_certified(mark: row_types.MarkRow) -> bool:
    return mark.kind == "not_certified" or mark.raw_text.strip().lower() in _NOT_CERTIFIED_TEXTS


def _parts(mark: row_types.MarkRow) -> list[float]:
    return [p for p in (mark.value, mark.value2) if p is not None]


def weighted_average(marks: Iterable[row_types.MarkRow]) -> float | None:
    """Σ(value·weight) / Σ(weight) over the numeric parts; None without any."""
    total = weights = 0.0
    for mark in marks:  # unrolled: this runs for every mark of the school, many times
        if mark.value is not None:
            total += mark.value * mark.weight
            weights += mark.weight
        if mark.value2 is not None:
            total += mark.value2 * mark.weight
            weights += mark.weight
    return total / weights if weights else None


def mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def spread(marks: Iterable[row_types.MarkRow]) -> tuple[int, int, int, int]:
    counts = [0] * 6  # by grade, 2 to 5
    for mark in marks:  # a loop, not a Counter of a generator: every subject of every class
        if mark.scale == "five":
            for part in (mark.value, mark.value2):
                if part is not None:
                    counts[grade_of(part)] += 1
    return (counts[5], counts[4], counts[3], counts[2])


_IN_DATE_ORDER = operator.attrgetter("date", "id")


def longest_run_of_twos(marks: Sequence[row_types.MarkRow]) -> int:
    """Longest run of «2» among five-point marks taken in date order, part by part."""
    longest = run = 0
    for mark in sorted(marks, key=_IN_DATE_ORDER):
        if mark.scale != "five":
            continue
        for part in (mark.value, mark.value2):
            if part is not None:
                run = run + 1 if grade_of(part) == 2 else 0
                longest = max(longest, run)
    return longest


# --- lessons due --------------------------------------------------------------------------


def _member_spans(bundle: queries.ClassBundle) -> dict[str, list[row_types.MembershipRow]]:
    spans: dict[str, list[row_types.MembershipRow]] = defaultdict(list)
    for row in bundle.memberships:
        spans[row.group_id].append(row)
    return spans


def lessons_due(
    bundle: queries.ClassBundle, students: set[str], start: dt.date, end: dt.date
) -> dict[str, list[row_types.LessonRow]]:
    """Student -> the lessons they were due to attend between `start` and `end`."""
    spans = _member_spans(bundle)
    due: dict[str, list[row_types.LessonRow]] = defaultdict(list)
    for lesson in bundle.lessons:
        if not start <= lesson.date <= end or lesson.status in NOT_HELD:
            continue
        seen = set()
        for span in spans.get(lesson.group_id, ()):
            member = span.date_from <= lesson.date and (
                span.date_to is None or lesson.date <= span.date_to
            )
            if member and span.student_id in students and span.student_id not in seen:
                seen.add(span.student_id)
                due[span.student_id].append(lesson)
    return due


# --- the analysis -------------------------------------------------------------------------


@dataclass
class _Input:
    """The bundle's rows of one analysis, grouped per student."""

    marks: dict[str, list[row_types.MarkRow]]  # counted marks, per student
    not_certified: dict[str, list[row_types.MarkRow]]
    due: dict[str, list[row_types.LessonRow]]
    attendance: dict[str, list[row_types.AttendanceRow]]  # on lessons due, per student
    weeks: list[dt.date]


def _input(
    bundle: queries.ClassBundle,
    students: set[str],
    start: dt.date,
    end: dt.date,
    counted_to: dt.date,
    period_id: str | None,
) -> _Input:
    marks: dict[str, list[row_types.MarkRow]] = defaultdict(list)
    not_certified: dict[str, list[row_types.MarkRow]] = defaultdict(list)
    for mark in bundle.marks:
        if mark.student_id not in students:
            continue
        in_period = start <= mark.date <= end
        if is_not_certified(mark) and (in_period or (period_id and mark.period_id == period_id)):
            not_certified[mark.student_id].append(mark)
        elif in_period and mark.kind in AVERAGED_KINDS and _parts(mark):
            marks[mark.student_id].append(mark)
    due = lessons_due(bundle, students, start, counted_to)
    due_ids = {sid: {lesson.id for lesson in rows} for sid, rows in due.items()}
    attendance: dict[str, list[row_types.AttendanceRow]] = defaultdict(list)
    for row in bundle.attendance:
        if row.lesson_id in due_ids.get(row.student_id, ()):
            attendance[row.student_id].append(row)
    return _Input(marks, not_certified, due, attendance, weeks_between(start, counted_to))


def _by_subject(marks: Iterable[row_types.MarkRow]) -> dict[str, list[row_types.MarkRow]]:
    grouped: dict[str, list[row_types.MarkRow]] = defaultdict(list)
    for mark in marks:
        grouped[mark.subject_id].append(mark)
    return grouped


def _weekly(marks: Iterable[row_types.MarkRow], weeks: list[dt.date]) -> tuple[float | None, ...]:
    per_week: dict[dt.date, list[row_types.MarkRow]] = defaultdict(list)
    for mark in marks:
        per_week[monday(mark.date)].append(mark)
    return tuple(weighted_average(per_week.get(week, ())) for week in weeks)


def _risks(
    averages: dict[str, float],
    subjects: dict[str, list[row_types.MarkRow]],
    missed_share: float | None,
    not_certified: list[row_types.MarkRow],
) -> tuple[Risk, ...]:
    found = [Risk(LOW_AVERAGE, s, a) for s, a in sorted(averages.items()) if a < RISK_AVERAGE]
    for subject_id, marks in sorted(subjects.items()):
        run = longest_run_of_twos(marks)
        if run >= RISK_TWOS_IN_ROW:
            found.append(Risk(TWOS, subject_id, run))
    if missed_share is not None and missed_share >= RISK_MISSED_SHARE:
        found.append(Risk(MISSED, None, missed_share))
    for subject_id, rows in sorted(_by_subject(not_certified).items()):
        found.append(Risk(NOT_CERTIFIED, subject_id, len(rows)))
    return tuple(sorted(found, key=lambda r: (RISK_ORDER.index(r.kind), r.subject_id or "")))


def _student(student_id: str, data: _Input) -> StudentFigures:
    marks = data.marks.get(student_id, [])
    subjects = _by_subject(marks)
    averages = {s: a for s, rows in subjects.items() if (a := weighted_average(rows)) is not None}
    counts = Counter(a.category for a in data.attendance.get(student_id, ()))
    lessons = len(data.due.get(student_id, ()))
    missed = sum(counts[c] for c in ABSENT)
    share = missed / lessons if lessons else None
    return StudentFigures(
        student_id=student_id,
        averages=averages,
        overall=mean(averages.values()),
        weekly=_weekly(marks, data.weeks),
        absences={c: counts[c] for c in CATEGORIES},
        lessons=lessons,
        missed=missed,
        risks=_risks(averages, subjects, share, data.not_certified.get(student_id, [])),
    )


def _weeks(data: _Input) -> tuple[WeekFigures, ...]:
    per_day: Counter[dt.date] = Counter()
    for rows in data.due.values():
        per_day.update(lesson.date for lesson in rows)
    lessons: Counter[dt.date] = Counter()
    for day, count in per_day.items():
        lessons[monday(day)] += count
    missed: Counter[dt.date] = Counter()
    late: Counter[dt.date] = Counter()
    for cells in data.attendance.values():
        for row in cells:
            if row.category in ABSENT:
                missed[monday(row.date)] += 1
            elif row.category == "late":
                late[monday(row.date)] += 1
    averages = _weekly([m for rows in data.marks.values() for m in rows], data.weeks)
    return tuple(
        WeekFigures(week, lessons[week], missed[week], late[week], average)
        for week, average in zip(data.weeks, averages, strict=True)
    )


def _subjects(bundle: queries.ClassBundle, data: _Input) -> tuple[SubjectFigures, ...]:
    marks = _by_subject(m for rows in data.marks.values() for m in rows)
    taught = {lesson.subject_id for rows in data.due.values() for lesson in rows}
    return tuple(
        SubjectFigures(
            s, weighted_average(marks.get(s, ())), spread(marks.get(s, ())), _count(marks, s)
        )
        for s in sorted(taught | set(marks))
    )


def _count(marks: dict[str, list[row_types.MarkRow]], subject_id: str) -> int:
    return sum(len(_parts(m)) for m in marks.get(subject_id, ()))


def class_analytics(
    bundle: queries.ClassBundle,
    students: Sequence[str],
    start: dt.date,
    end: dt.date,
    today: dt.date,
    *,
    period_id: str | None = None,
) -> ClassAnalytics:
    """The analytics of the class in `bundle` for the period [start, end] as of `today`.

    `students`: the students to analyse (those on roll), in the order the figures come out.
    The bundle must cover the period (the builder's bundles do). No database access.
    """
    counted_to = min(end, today)  # before `start`: nothing is counted yet
    data = _input(bundle, set(students), start, end, counted_to, period_id)
    subjects = _subjects(bundle, data)
    absences = Counter(a.category for rows in data.attendance.values() for a in rows)
    return ClassAnalytics(
        class_id=bundle.class_id,
        start=start,
        end=end,
        counted_to=counted_to,
        weeks=_weeks(data),
        subjects=subjects,
        students=tuple(_student(sid, data) for sid in students),
        absences={c: absences[c] for c in CATEGORIES},
        subject_average={s.subject_id: s.average for s in subjects if s.average is not None},
    )


def load_class_analytics(
    class_id: str, start: dt.date, end: dt.date, today: dt.date, *, period_id: str | None = None
) -> tuple[queries.ClassBundle, ClassAnalytics]:
    """Load the class's rows for the period (one bundle: a fixed number of statements) and
    analyse the students on roll on `today`, sorted by name."""
    bundle = queries.class_bundle(class_id, start, end, finals_from=start, notes_from=end)
    students = sorted(
        (s for s in bundle.students if s.left_at is None or s.left_at > today),
        key=lambda s: (s.last_name, s.first_name, s.middle_name, s.id),
    )
    ids = [s.id for s in students]
    return bundle, class_analytics(bundle, ids, start, end, today, period_id=period_id)


# --- acknowledgements of many guardians ---------------------------------------------------


@dataclass(frozen=True)
class Acknowledged:
    """A guardian's acknowledgement: how, and the date of what they acknowledged (the data
    date of the page, or the date signed on a paper extract)."""

    channel: str  # electronic / paper
    day: dt.date


def _ack_day(channel: str, payload: dict[str, object]) -> tuple[dt.date, dt.date] | None:
    """(date acknowledged, Monday of the week shown) of one event's payload."""
    try:
        if channel == "paper":
            day = dt.date.fromisoformat(str(payload["date"]))
            return day, monday(day)
        shown = payload["shown"]
        assert isinstance(shown, dict)
        return dt.date.fromisoformat(str(shown["as_of"])), dt.date.fromisoformat(
            str(shown["week_start"])
        )
    except (KeyError, ValueError, AssertionError):
        return None


@dataclass(frozen=True)
class AckRow:
    guardian_id: str
    channel: str
    day: dt.date  # the data date of the page, or the date signed on paper
    week: dt.date  # Monday of the week the page showed (of `day` for paper)


def acknowledgement_rows(since: dt.date) -> list[AckRow]:
    """Valid acknowledgements made from `since` on (a day early, for time zones), oldest
    first: one statement for the whole school."""
    e = models.Event
    query = (
        e.select(e.guardian_id, e.channel, e.payload)
        .where(
            e.kind == "acknowledgement",
            e.invalid == False,  # noqa: E712
            e.guardian_id.is_null(False),
            e.occurred_at >= dt.datetime.combine(since - DAY, dt.time()),
        )
        .order_by(e.occurred_at, e.received_at, e.event_id)
    )
    found = []
    for guardian_id, channel, payload in database.execute(query).fetchall():
        days = _ack_day(channel, json.loads(payload))
        if days is not None:
            found.append(AckRow(str(guardian_id), str(channel), *days))
    return found


def acknowledged(
    rows: Iterable[AckRow], week_start: dt.date, period: tuple[dt.date, dt.date] | None
) -> dict[str, Acknowledged]:
    """Guardian -> their latest acknowledgement of the current week: of the page of the
    week starting `week_start`, or on paper signed that week or within `period` (paper
    extracts go out once a period)."""
    found: dict[str, Acknowledged] = {}
    for row in rows:
        in_period = period is not None and period[0] <= row.day <= period[1]
        if row.week == week_start or (row.channel == "paper" and in_period):
            found[row.guardian_id] = Acknowledged(row.channel, row.day)
    return found


# --- the deputy heads' pages ------------------------------------------------------------------


def deputy_pages_built_before(moment: dt.datetime) -> set[str]:
    """Teachers with the deputy head role whose page was last built before `moment` (UTC)."""
    b, t = models.BuildManifest, models.Teacher
    query = (
        b.select(b.person_id)
        .join(t, on=(t.id == b.person_id))
        .where(
            b.person_kind == "teacher",
            b.built_at < moment.replace(tzinfo=None),
            t.deleted_at.is_null(),
            t.roles.contains('"deputy_head"'),
        )
    )
    return {str(row[0]) for row in database.execute(query).fetchall()}


# --- analytics PDFs -----------------------------------------------------------------------

SCHOOL = "school"


@dataclass(frozen=True)
class ReportRow:
    scope: str  # a class id, or SCHOOL
    path: str
    pdf_sha256: str
    pages: int
    created_at: dt.datetime


def record_report(scope: str, path: str, pdf_sha256: str, pages: int, at: dt.datetime) -> None:
    models.AnalyticsReport.create(
        scope=scope, path=path, pdf_sha256=pdf_sha256, pages=pages, created_at=at
    )


def latest_reports() -> dict[str, ReportRow]:
    """Scope (class id or SCHOOL) -> its most recent analytics PDF."""
    r = models.AnalyticsReport
    latest: dict[str, ReportRow] = {}
    for row in r.select().order_by(r.created_at, r.id):
        latest[row.scope] = ReportRow(
            row.scope, row.path, row.pdf_sha256, row.pages, row.created_at
        )
    return latest
