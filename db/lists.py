"""Class lists for the spreadsheet round-trip, and the teachers' local corrections.

Only this module knows the layout behind a class list (students, guardians and links,
groups of split subjects, memberships) and the `LocalChange` table. Values of a correction
are kept as text: "" is an empty field (no patronymic, no birth date, no group), dates are
ISO. A field is named as in the journal tables (`last_name`, `phone`…); the group of a
split subject is the field `group:<subject id>` of the student.

States of a correction: pending (applied here, waiting for upstream to take it),
confirmed (upstream now sends the same value), conflict (upstream changed the same field
to something else after the correction: upstream's value stands and `otmetka status`
reports it), superseded (a later correction of the same field replaced it), resolved (a
conflict settled by a later list import).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import peewee as pw

from otmetka.db import journal, models, row_types
from otmetka.db.connection import database

PENDING, CONFIRMED, CONFLICT, SUPERSEDED, RESOLVED = (
    "pending",
    "confirmed",
    "conflict",
    "superseded",
    "resolved",
)
STUDENT, GUARDIAN = "student", "guardian"
GROUP_FIELD = "group:"
SPLIT_KINDS = ("subgroup", "stream")
# Memberships made here (a teacher put a student into a group) carry ids with this prefix:
# upstream never sends them, so they are not evidence of what upstream says.
LOCAL_ID_PREFIX = "otmetka-local-"
STUDENT_FIELDS = ("last_name", "first_name", "middle_name", "birth_date")
GUARDIAN_FIELDS = ("last_name", "first_name", "middle_name", "phone", "email", "delivery")
_CHUNK = 500


def text(value: Any) -> str:
    """How a stored value reads as the text of a correction."""
    if value is None:
        return ""
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


# --- what a class list holds --------------------------------------------------------------


@dataclass(frozen=True)
class ListStudent:
    id: str
    last_name: str
    first_name: str
    middle_name: str
    birth_date: dt.date | None


@dataclass(frozen=True)
class ListGuardian:
    id: str
    last_name: str
    first_name: str
    middle_name: str
    phone: str
    email: str
    delivery: str
    children: tuple[tuple[str, str], ...]  # (student id, relation) in this class


@dataclass(frozen=True)
class ClassList:
    class_row: row_types.ClassRow
    year_start: dt.date | None
    students: list[ListStudent]  # on roll, by name
    guardians: list[ListGuardian]  # of those students, by name
    groups: list[row_types.GroupRow]  # groups of split subjects the class takes part in
    memberships: list[row_types.MembershipRow]  # of the students in those groups (live rows)


def _date(value: Any) -> dt.date | None:
    return None if value in (None, "") else dt.date.fromisoformat(str(value)[:10])


def split_groups(class_id: str) -> list[row_types.GroupRow]:
    """Live groups of split subjects (subgroups, streams) that name the class."""
    g = models.Group
    needle = json.dumps(class_id)  # class_unit_ids is JSON text: match the quoted id
    query = (
        g.select(g.id, g.name, g.kind, g.subject_id, g.class_unit_ids)
        .where(
            g.deleted_at.is_null(),
            g.kind.in_(SPLIT_KINDS),
            g.subject_id.is_null(False),
            g.class_unit_ids.contains(needle),
        )
        .order_by(g.subject_id, g.name, g.id)
    )
    rows = []
    for gid, name, kind, subject_id, ids in database.execute(query).fetchall():
        class_ids = tuple(json.loads(ids or "[]"))
        if class_id in class_ids:
            rows.append(row_types.GroupRow(gid, name, kind, subject_id, class_ids))
    return rows


def _students(class_id: str, today: dt.date) -> list[ListStudent]:
    s = models.Student
    query = (
        s.select(s.id, s.last_name, s.first_name, s.middle_name, s.birth_date)
        .where(
            s.class_unit_id == class_id,
            s.deleted_at.is_null(),
            s.left_at.is_null() | (s.left_at > today.isoformat()),
        )
        .order_by(s.last_name, s.first_name, s.middle_name, s.id)
    )
    return [
        ListStudent(sid, last, first, middle or "", _date(born))
        for sid, last, first, middle, born in database.execute(query).fetchall()
    ]


def _guardians(student_ids: Sequence[str]) -> list[ListGuardian]:
    g, link = models.Guardian, models.GuardianLink
    found: dict[str, tuple[Any, ...]] = {}
    children: dict[str, list[tuple[str, str]]] = {}
    for start in range(0, len(student_ids), _CHUNK):
        query = (
            g.select(g.id, g.last_name, g.first_name, g.middle_name, g.phone, g.email, g.delivery)
            .select_extend(link.student_id, link.relation)
            .join(link, on=(link.guardian_id == g.id))
            .where(
                g.deleted_at.is_null(),
                link.deleted_at.is_null(),
                link.student_id.in_(list(student_ids[start : start + _CHUNK])),
            )
            .order_by(g.id, link.student_id)
        )
        for row in database.execute(query).fetchall():
            found[row[0]] = row[:7]
            children.setdefault(row[0], []).append((row[7], row[8]))
    guardians = [
        ListGuardian(
            gid,
            text(last),
            text(first),
            text(middle),
            text(phone),
            text(email),
            text(delivery),
            children=tuple(sorted(children[gid])),
        )
        for gid, last, first, middle, phone, email, delivery in found.values()
    ]
    return sorted(guardians, key=lambda x: (x.last_name, x.first_name, x.middle_name, x.id))


def memberships_in(
    group_ids: Iterable[str], student_ids: Iterable[str]
) -> list[row_types.MembershipRow]:
    ms = models.Membership
    groups, students = sorted(set(group_ids)), set(student_ids)
    if not groups:
        return []
    query = (
        ms.select(ms.group_id, ms.student_id, ms.date_from, ms.date_to)
        .where(ms.group_id.in_(groups), ms.deleted_at.is_null())
        .order_by(ms.student_id, ms.group_id, ms.date_from, ms.id)
    )
    return [
        row_types.MembershipRow(gid, sid, _date(start), _date(end))  # type: ignore[arg-type]
        for gid, sid, start, end in database.execute(query).fetchall()
        if sid in students
    ]


def class_list(class_row: row_types.ClassRow, today: dt.date) -> ClassList:
    """The class as its list shows it: a fixed number of statements."""
    year = models.AcademicYear.get_or_none(models.AcademicYear.id == class_row.academic_year_id)
    students = _students(class_row.id, today)
    ids = [s.id for s in students]
    groups = split_groups(class_row.id)
    return ClassList(
        class_row=class_row,
        year_start=_date(year.start) if year else None,
        students=students,
        guardians=_guardians(ids),
        groups=groups,
        memberships=memberships_in([g.id for g in groups], ids),
    )


def group_ids_on(
    memberships: Iterable[row_types.MembershipRow], groups: Iterable[str], day: dt.date
) -> str:
    """The value of a `group:` field: the ids of `groups` the memberships hold on `day`,
    sorted and comma-separated ("" for none)."""
    wanted = set(groups)
    held = {
        row.group_id
        for row in memberships
        if row.group_id in wanted
        and row.date_from <= day
        and (row.date_to is None or day <= row.date_to)
    }
    return ",".join(sorted(held))


# --- rows behind a correction -------------------------------------------------------------


def rows(entity: str, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Journal rows (tombstoned too) by id, as the importer's journal module reads them."""
    return journal.rows_by_id(entity, ids)


@dataclass(frozen=True)
class MembershipFull:
    id: str
    group_id: str
    student_id: str
    date_from: dt.date
    date_to: dt.date | None
    updated_at: str
    deleted: bool


def memberships_of(student_ids: Iterable[str], group_ids: Iterable[str]) -> list[MembershipFull]:
    """Every membership row (tombstoned too) of these students in these groups."""
    ms = models.Membership
    students, groups = sorted(set(student_ids)), sorted(set(group_ids))
    found: list[MembershipFull] = []
    for start in range(0, len(students), _CHUNK):
        query = (
            ms.select(
                ms.id,
                ms.group_id,
                ms.student_id,
                ms.date_from,
                ms.date_to,
                ms.updated_at,
                ms.deleted_at,
            )
            .where(ms.student_id.in_(students[start : start + _CHUNK]), ms.group_id.in_(groups))
            .order_by(ms.student_id, ms.group_id, ms.date_from, ms.id)
        )
        for mid, gid, sid, d_from, d_to, updated, deleted in database.execute(query).fetchall():
            found.append(
                MembershipFull(mid, gid, sid, _date(d_from), _date(d_to), updated, bool(deleted))  # type: ignore[arg-type]
            )
    return found


def groups_of_subjects(subject_ids: Iterable[str], class_id: str) -> dict[str, list[str]]:
    """Subject -> ids of the class's split groups in it."""
    wanted = set(subject_ids)
    found: dict[str, list[str]] = {}
    for group in split_groups(class_id):
        if group.subject_id in wanted:
            found.setdefault(group.subject_id or "", []).append(group.id)
    return found


def class_of_students(student_ids: Iterable[str]) -> dict[str, str]:
    s = models.Student
    wanted = sorted(set(student_ids))
    found: dict[str, str] = {}
    for start in range(0, len(wanted), _CHUNK):
        query = s.select(s.id, s.class_unit_id).where(s.id.in_(wanted[start : start + _CHUNK]))
        found.update({sid: cid for sid, cid in database.execute(query).fetchall()})
    return found


def year_start_of_class(class_id: str) -> dt.date | None:
    c, y = models.ClassUnit, models.AcademicYear
    row = (
        y.select(y.start)
        .join(c, on=(c.academic_year_id == y.id))
        .where(c.id == class_id)
        .tuples()
        .first()
    )
    return _date(row[0]) if row else None


# --- corrections --------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    id: int
    entity: str
    entity_id: str
    field: str
    old_value: str
    new_value: str
    created_at: dt.datetime
    author: str
    state: str
    base_updated_at: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.entity, self.entity_id, self.field)

    @property
    def subject_id(self) -> str | None:
        return self.field.removeprefix(GROUP_FIELD) if self.field.startswith(GROUP_FIELD) else None


def _pk() -> Any:
    return models.LocalChange._meta.primary_key


def _change(row: models.LocalChange) -> Change:
    return Change(
        row.get_id(),
        row.entity,
        row.entity_id,
        row.field,
        row.old_value or "",
        row.new_value or "",
        row.created_at,
        row.author,
        row.state,
        row.base_updated_at or "",
    )


def changes(states: Sequence[str] = (PENDING,)) -> list[Change]:
    lc = models.LocalChange
    query = lc.select().where(lc.state.in_(list(states))).order_by(lc.created_at, _pk())
    return [_change(row) for row in query]


def open_changes_of(keys: Iterable[tuple[str, str, str]]) -> dict[tuple[str, str, str], Change]:
    """The pending or conflicting correction of each of these fields (the latest one)."""
    wanted = set(keys)
    return {c.key: c for c in changes((PENDING, CONFLICT)) if c.key in wanted}


def add_change(
    *,
    entity: str,
    entity_id: str,
    field: str,
    old_value: str,
    new_value: str,
    base_updated_at: str,
    author: str,
    at: dt.datetime,
) -> Change:
    row = models.LocalChange.create(
        entity=entity,
        entity_id=entity_id,
        field=field,
        old_value=old_value,
        new_value=new_value,
        created_at=at,
        author=author,
        state=PENDING,
        base_updated_at=base_updated_at,
    )
    return _change(row)


def set_state(change_ids: Iterable[int], state: str) -> None:
    ids = sorted(set(change_ids))
    lc = models.LocalChange
    for start in range(0, len(ids), _CHUNK):
        lc.update(state=state).where(_pk().in_(ids[start : start + _CHUNK])).execute()


def set_base(change_id: int, base_updated_at: str) -> None:
    lc = models.LocalChange
    lc.update(base_updated_at=base_updated_at).where(_pk() == change_id).execute()


def state_counts() -> dict[str, int]:
    lc = models.LocalChange
    query = lc.select(lc.state, pw.fn.COUNT(_pk())).group_by(lc.state)
    return {str(state): int(count) for state, count in database.execute(query).fetchall()}


def person_names(entity: str, ids: Iterable[str]) -> dict[str, str]:
    """Id -> «Фамилия Имя» of students or guardians (tombstoned too)."""
    return {
        pid: " ".join(p for p in (row["last_name"], row["first_name"]) if p)
        for pid, row in rows(entity, ids).items()
    }
