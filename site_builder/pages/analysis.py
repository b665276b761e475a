"""The analytics of a class (otmetka.db.analytics) as the staff pages and the PDF reports
show them: names instead of ids, in a fixed order.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from otmetka.db import analytics, row_types
from otmetka.site_builder import formatting
from otmetka.site_builder.pages import lookups


@dataclass(frozen=True)
class RiskView:
    kind: str  # see otmetka.db.analytics: low_average / twos_in_row / missed / not_certified
    subject: str
    value: float

    @property
    def text(self) -> str:
        """What the pages and the reports say of it (plain text, to be escaped)."""
        if self.kind == "not_certified":
            return f"«н/а»: {self.subject}"
        if self.kind == "low_average":
            return f"средний балл {formatting.average(self.value)}: {self.subject}"
        if self.kind == "twos_in_row":
            return f"«2» подряд: {int(self.value)} — {self.subject}"
        if self.kind == "missed":
            return f"пропущено {formatting.percent(self.value)} уроков"
        return self.kind


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
    student: row_types.StudentRow,
    class_averages: dict[str, float],
    lookup: lookups.Lookup,
) -> PupilStat:
    subjects = sorted(
        set(figures.averages) | set(class_averages), key=lambda s: (lookup.subject(s), s)
    )
    return PupilStat(
        anchor=lookups.anchor_of(student.id),
        name=lookups.full_name(student.last_name, student.first_name),
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
    students: Sequence[row_types.StudentRow],
    class_row: row_types.ClassRow,
    period: str,
    lookup: lookups.Lookup,
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
