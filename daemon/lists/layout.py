"""The columns of a class list and the class as it is now, as the values a list shows.

A list holds the students (names, birth date, the group of each split subject) and their
guardians (names, phone, e-mail, delivery of the journal). Every editable value is kept as
the text a correction keeps; `shown` turns one into what its cell shows.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from otmetka.daemon.core.errors import OtmetkaError
from otmetka.db import lists as stored
from otmetka.db import queries, row_types

FORMAT = "otmetka-class-list"
VERSION = 1
SOURCE = "local"
SHEET_STUDENTS, SHEET_GUARDIANS = "Ученики", "Родители"
SHEET_HELP, SHEET_LISTS, SHEET_META = "Как заполнять", "Справочник", "otmetka"
DELIVERY = {"electronic": "электронно", "paper": "на бумаге"}
FIRST_ROW = 2  # row 1 holds the headers


# --- columns ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    header: str
    field: str  # the field a correction names; "" for a column that is only shown
    kind: str  # id, name, middle, date, phone, email, delivery, group, info
    width: int = 18
    subject_id: str = ""


def student_columns(
    groups: Sequence[row_types.GroupRow], subject_names: dict[str, str]
) -> list[Column]:
    columns = [
        Column("Код ученика (не менять)", "id", "id", 16),
        Column("Фамилия", "last_name", "name"),
        Column("Имя", "first_name", "name"),
        Column("Отчество", "middle_name", "middle"),
        Column("Дата рождения", "birth_date", "date", 14),
    ]
    for subject_id in sorted({g.subject_id or "" for g in groups}, key=_by_name(subject_names)):
        name = subject_names.get(subject_id, subject_id)
        field_name = stored.GROUP_FIELD + subject_id
        columns.append(Column(f"{name}: группа", field_name, "group", 30, subject_id))
    return columns


def guardian_columns() -> list[Column]:
    return [
        Column("Код (не менять)", "id", "id", 16),
        Column("Фамилия", "last_name", "name"),
        Column("Имя", "first_name", "name"),
        Column("Отчество", "middle_name", "middle"),
        Column("Телефон", "phone", "phone"),
        Column("Эл. почта", "email", "email", 26),
        Column("Доставка журнала", "delivery", "delivery", 16),
        Column("Дети в классе", "", "info", 36),
    ]


def _by_name(names: dict[str, str]) -> Any:
    return lambda subject_id: (names.get(subject_id, subject_id), subject_id)


RELATIONS = {
    "mother": "мать",
    "father": "отец",
    "grandmother": "бабушка",
    "grandfather": "дедушка",
    "guardian": "опекун",
    "other": "другое",
}


# --- the list as it is now ----------------------------------------------------------------


@dataclass
class Snapshot:
    """A class list now, with every editable value as the text a correction keeps."""

    data: stored.ClassList
    subject_names: dict[str, str]
    day: dt.date  # the day group membership is read on
    students: dict[str, dict[str, str]] = field(default_factory=dict)
    guardians: dict[str, dict[str, str]] = field(default_factory=dict)
    group_names: dict[str, dict[str, str]] = field(default_factory=dict)  # subject: id->name

    @property
    def class_row(self) -> row_types.ClassRow:
        return self.data.class_row

    def columns(self, entity: str) -> list[Column]:
        if entity == stored.STUDENT:
            return student_columns(self.data.groups, self.subject_names)
        return guardian_columns()

    def values(self, entity: str) -> dict[str, dict[str, str]]:
        return self.students if entity == stored.STUDENT else self.guardians


def membership_day(today: dt.date, year_start: dt.date | None) -> dt.date:
    """Groups are read (and changed) as of today, or the first day of a year not started."""
    return max(today, year_start) if year_start else today


def snapshot(class_row: row_types.ClassRow, today: dt.date) -> Snapshot:
    data = stored.class_list(class_row, today)
    names = {s.id: s.name for s in queries.subjects()}
    snap = Snapshot(data, names, membership_day(today, data.year_start))
    for group in data.groups:
        snap.group_names.setdefault(group.subject_id or "", {})[group.id] = group.name
    memberships: dict[str, list[row_types.MembershipRow]] = defaultdict(list)
    for row in data.memberships:
        memberships[row.student_id].append(row)
    for student in data.students:
        values = {f: stored.text(getattr(student, f)) for f in stored.STUDENT_FIELDS}
        mine = memberships[student.id]
        for subject_id, groups in snap.group_names.items():
            values[stored.GROUP_FIELD + subject_id] = stored.group_ids_on(mine, groups, snap.day)
        snap.students[student.id] = values
    for guardian in data.guardians:
        snap.guardians[guardian.id] = {
            f: stored.text(getattr(guardian, f)) for f in stored.GUARDIAN_FIELDS
        }
    return snap


def find_class(class_name: str) -> row_types.ClassRow:
    classes = queries.class_units()
    for row in classes:
        if row.name == class_name:
            return row
    known = ", ".join(c.name for c in classes) or "none yet (import the journal first)"
    raise OtmetkaError(f"no class named «{class_name}»; classes: {known}")


def shown(column: Column, value: str, snap: Snapshot) -> Any:
    """What a cell shows for a stored value (dates as dates, groups and delivery by name)."""
    if column.kind == "date":
        return dt.date.fromisoformat(value) if value else None
    if column.kind == "delivery":
        return DELIVERY.get(value, value)
    if column.kind == "group":
        ids = [i for i in value.split(",") if i]
        return snap.group_names.get(column.subject_id, {}).get(ids[0], ids[0]) if ids else ""
    return value
