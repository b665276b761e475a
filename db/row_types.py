"""The row types the read queries return: small NamedTuples, one per table the pages read.

A large school renders hundreds of thousands of marks, and NamedTuples cost far less than
peewee model instances. `Row` stands for any of them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple, TypeVar

Row = TypeVar("Row", bound=tuple[Any, ...])

FINAL_KINDS = ("period_final", "year_final", "not_certified")
# Whose page: (kind, person id), kind one of "guardian", "student", "teacher".
PageKey = tuple[str, str]


class SchoolRow(NamedTuple):
    id: str
    name: str
    short_name: str


class YearRow(NamedTuple):
    id: str
    name: str
    start: dt.date
    end: dt.date


class PeriodRow(NamedTuple):
    id: str
    academic_year_id: str
    kind: str
    name: str
    start: dt.date
    end: dt.date


class HolidayRow(NamedTuple):
    id: str
    name: str
    kind: str
    start: dt.date
    end: dt.date
    class_unit_ids: tuple[str, ...]


class SubjectRow(NamedTuple):
    id: str
    name: str
    short_name: str


class TeacherRow(NamedTuple):
    id: str
    last_name: str
    first_name: str
    middle_name: str
    roles: tuple[str, ...]


class ClassRow(NamedTuple):
    id: str
    name: str
    grade: int
    letter: str
    academic_year_id: str
    class_teacher_id: str | None


class StudentRow(NamedTuple):
    id: str
    last_name: str
    first_name: str
    middle_name: str
    class_unit_id: str
    left_at: dt.date | None


class GuardianRow(NamedTuple):
    id: str
    last_name: str
    first_name: str
    middle_name: str
    delivery: str


class GroupRow(NamedTuple):
    id: str
    name: str
    kind: str
    subject_id: str | None
    class_unit_ids: tuple[str, ...]


class MembershipRow(NamedTuple):
    group_id: str
    student_id: str
    date_from: dt.date
    date_to: dt.date | None


class BellSlotRow(NamedTuple):
    number: int
    start: str
    end: str
    shift: int


class TimetableRow(NamedTuple):
    group_id: str
    subject_id: str
    teacher_id: str
    weekday: int
    slot: int
    room: str
    valid_from: dt.date
    valid_to: dt.date | None


class LessonRow(NamedTuple):
    id: str
    date: dt.date
    slot: int
    group_id: str
    subject_id: str
    teacher_id: str
    room: str
    topic: str
    status: str
    substitution_original_teacher_id: str | None
    substitution_reason: str | None
    moved_from_date: dt.date | None
    moved_from_slot: int | None
    moved_to_date: dt.date | None
    moved_to_slot: int | None


class WorkRow(NamedTuple):
    id: str
    date: dt.date
    group_id: str
    subject_id: str
    kind: str
    title: str
    weight: float
    is_control: bool


class MarkRow(NamedTuple):
    id: str
    student_id: str
    subject_id: str
    date: dt.date
    work_id: str | None
    period_id: str | None
    raw_text: str
    scale: str
    value: float | None
    value2: float | None
    passed: bool | None
    weight: float
    kind: str
    comment: str


class AttendanceRow(NamedTuple):
    """An attendance cell with the date, slot and subject of its lesson."""

    id: str
    student_id: str
    lesson_id: str
    code: str
    category: str
    minutes_late: int
    date: dt.date
    slot: int
    subject_id: str


class HomeworkRow(NamedTuple):
    id: str
    subject_id: str
    group_id: str
    assigned_on: dt.date
    due_date: dt.date
    text: str
    student_ids: tuple[str, ...]


class RecommendationRow(NamedTuple):
    id: str
    student_id: str
    teacher_id: str
    subject_id: str | None
    date: dt.date
    text: str


class WorkKindRow(NamedTuple):
    id: str
    name: str


class AttendanceCodeRow(NamedTuple):
    id: str
    title: str
    category: str
