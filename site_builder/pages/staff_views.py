"""View models of the staff pages: the class list and journal of the class teacher's page,
the control tables (consents, acknowledgements, paper families, people without a login
slip) and the deputy head's class summaries and breach register.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from otmetka.db import acts as events
from otmetka.db import analytics, models, row_types
from otmetka.site_builder.pages import analysis, family, lookups


def class_anchor(class_id: str) -> str:
    """The id of a class's part of a staff page: the same on every page that links it."""
    return "k" + hashlib.sha256(class_id.encode("utf-8")).hexdigest()[:10]


# --- the class list -----------------------------------------------------------------------


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


def class_list_view(
    scope: lookups.ClassScope, children: Sequence[family.ChildView]
) -> ClassListView:
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


def _journal_days(
    index: lookups.ClassIndex, start: dt.date, last: dt.date
) -> dict[str, set[dt.date]]:
    """Subject -> dates with a lesson held (or scheduled) for the class's groups."""
    days: dict[str, set[dt.date]] = defaultdict(set)
    for lesson in index.bundle.lessons:
        if start <= lesson.date <= last and lesson.status not in ("cancelled", "moved"):
            days[lesson.subject_id].add(lesson.date)
    return days


def _cells(
    students: Sequence[row_types.StudentRow],
    index: lookups.ClassIndex,
    start: dt.date,
    last: dt.date,
) -> tuple[CellIndex, CellIndex]:
    marks: CellIndex = defaultdict(list)
    codes: CellIndex = defaultdict(list)
    for student in students:
        for mark in index.marks.get(student.id, ()):
            if start <= mark.date <= last and not family.is_final(mark):
                marks[(student.id, mark.subject_id, mark.date)].append(mark.raw_text)
        for row in index.attendance.get(student.id, ()):
            if start <= row.date <= last and row.category != "present":
                codes[(student.id, row.subject_id, row.date)].append(row.code)
    return marks, codes


def class_journal(
    students: Sequence[row_types.StudentRow], index: lookups.ClassIndex
) -> list[SubjectJournal]:
    """Every subject of the class in the current period, up to today: students × dates,
    each cell the marks and attendance codes of that day, as written."""
    start, end = index.scope.period_range
    last = min(end, index.scope.today)
    days = _journal_days(index, start, last)
    marks, codes = _cells(students, index, start, last)
    filled = {
        key: (tuple(marks.get(key, ())), tuple(codes.get(key, ()))) for key in (*marks, *codes)
    }
    for sid_subject_day in filled:
        days[sid_subject_day[1]].add(sid_subject_day[2])
    own: dict[tuple[str, str], list[row_types.MarkRow]] = defaultdict(list)
    for student in students:
        for mark in index.marks.get(student.id, ()):
            own[(student.id, mark.subject_id)].append(mark)
    period_id = index.scope.period.id if index.scope.period else None
    journals = []
    for subject_id in sorted(days, key=lookups.subject_key(index)):
        dates = tuple(sorted(days[subject_id]))
        lines = []
        for student in students:
            # Most cells of a journal are empty: those share one tuple, not built per cell.
            cells = tuple(filled.get((student.id, subject_id, day), _EMPTY_CELL) for day in dates)
            rows = own.get((student.id, subject_id), [])
            lines.append(_journal_line(student, rows, cells, index, period_id))
        journals.append(
            SubjectJournal(subject_id, index.lookup.subject(subject_id), dates, tuple(lines))
        )
    return journals


def _journal_line(
    student: row_types.StudentRow,
    own: list[row_types.MarkRow],
    cells: tuple[Cell, ...],
    index: lookups.ClassIndex,
    period_id: str | None,
) -> JournalLine:
    start, end = index.scope.period_range
    counted = [m for m in own if start <= m.date <= end and m.kind in family.AVERAGED_KINDS]
    finals = tuple(m.raw_text for m in own if family.is_final(m) and m.period_id == period_id)
    name = lookups.full_name(student.last_name, student.first_name)
    return JournalLine(
        lookups.anchor_of(student.id), name, cells, analytics.weighted_average(counted), finals
    )


# --- control tables (teacher page) --------------------------------------------------------


@dataclass(frozen=True)
class GuardianControl:
    name: str
    children: str
    phone: str  # as the journal gives it; "" if none
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
    today: dt.date
    read_at: dt.datetime | None  # see SchoolFacts
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
    phones: dict[str, str]  # guardian -> phone number
    # When these facts were read (aware UTC), for «данные на»; None for a build of a day
    # that is over (see staff_blocks.data_time).
    read_at: dt.datetime | None


def class_guardians(
    students: Sequence[row_types.StudentRow], links: dict[str, list[row_types.GuardianRow]]
) -> list[tuple[row_types.GuardianRow, list[row_types.StudentRow]]]:
    """The guardians of these students with their children among them, sorted by name."""
    found: dict[str, tuple[row_types.GuardianRow, list[row_types.StudentRow]]] = {}
    for student in students:
        for guardian in links.get(student.id, ()):
            entry = found.setdefault(guardian.id, (guardian, []))
            if student not in entry[1]:
                entry[1].append(student)
    return sorted(found.values(), key=lambda e: (*lookups.student_sort_key(e[0])[:3], e[0].id))  # type: ignore[arg-type]


def _children_text(children: Iterable[row_types.StudentRow]) -> str:
    return "; ".join(lookups.full_name(s.last_name, s.first_name) for s in children)


def control_view(
    scope: lookups.ClassScope,
    students: Sequence[row_types.StudentRow],
    links: dict[str, list[row_types.GuardianRow]],
    facts: SchoolFacts,
) -> ControlView:
    period = scope.period_range if scope.period else None
    acknowledged = analytics.acknowledged(facts.acknowledgements, scope.week_start, period)
    guardians = []
    for guardian, children in class_guardians(students, links):
        ack = acknowledged.get(guardian.id)
        guardians.append(
            GuardianControl(
                name=lookups.person_name(guardian),
                children=_children_text(children),
                phone=facts.phones.get(guardian.id, ""),
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
        today=scope.today,
        read_at=facts.read_at,
        week_start=scope.week_start,
        week_end=scope.week_end,
        period=scope.period.name if scope.period else "",
        guardians=tuple(guardians),
        paper=paper,
        no_slips=_no_slips(students, links, facts),
    )


def _no_slips(
    students: Sequence[row_types.StudentRow],
    links: dict[str, list[row_types.GuardianRow]],
    facts: SchoolFacts,
) -> tuple[NoSlipLine, ...]:
    lines = [
        NoSlipLine("student", lookups.person_name(s))
        for s in students
        if ("student", s.id) in facts.no_slips
    ]
    for guardian, _children in class_guardians(students, links):
        if ("guardian", guardian.id) in facts.no_slips:
            lines.append(NoSlipLine("guardian", lookups.person_name(guardian)))
    return tuple(lines)


# --- the deputy head's page ---------------------------------------------------------------


@dataclass(frozen=True)
class ClassSummary:
    name: str
    anchor: str  # of the class's details on the deputy head's page
    class_teacher: str
    students: int
    average: float | None
    at_risk: int
    attendance: float | None
    guardians: int
    acknowledged: int
    consented: int
    read_at: dt.datetime | None
    subjects: tuple[analysis.SubjectStat, ...]
    risks: tuple[tuple[str, tuple[analysis.RiskView, ...]], ...]  # pupil, why at risk

    @property
    def ack_rate(self) -> float | None:
        return self.acknowledged / self.guardians if self.guardians else None

    @property
    def consent_rate(self) -> float | None:
        return self.consented / self.guardians if self.guardians else None


def class_summary(
    view: analysis.AnalyticsView,
    control: ControlView,
    class_row: row_types.ClassRow,
    lookup: lookups.Lookup,
) -> ClassSummary:
    return ClassSummary(
        name=class_row.name,
        anchor=class_anchor(class_row.id),
        class_teacher=lookup.teacher_full(class_row.class_teacher_id),
        students=len(view.pupils),
        average=view.average,
        at_risk=len(view.at_risk),
        attendance=view.attendance,
        guardians=len(control.guardians),
        acknowledged=control.acknowledged,
        consented=control.consented,
        read_at=control.read_at,
        subjects=view.subjects,
        risks=tuple((p.name, p.risks) for p in view.at_risk),
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
