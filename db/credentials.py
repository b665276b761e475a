"""Credential rows: who can open which page. Passwords are never stored here."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

import peewee as pw

from otmetka.db import models
from otmetka.db.acts import utc_naive
from otmetka.db.row_types import PageKey

_PEOPLE: dict[str, type[models.PersonModel]] = {
    "guardian": models.Guardian,
    "student": models.Student,
    "teacher": models.Teacher,
}


def active_by_person() -> dict[PageKey, models.Credential]:
    c = models.Credential
    return {(row.person_kind, row.person_id): row for row in c.select().where(c.state == "active")}


def by_login(login: str) -> models.Credential | None:
    c = models.Credential
    return c.get_or_none(c.login == login)


def login_taken(login: str) -> bool:
    return models.Credential.select().where(models.Credential.login == login).exists()


def add(
    *,
    key: PageKey,
    login: str,
    page_id: str,
    salt: bytes,
    derived_key: bytes,
    iterations: int,
    token_hash: str,
    at: dt.datetime,
) -> models.Credential:
    """A new active login from `at` on; an aware `at` is stored as naive UTC like every time."""
    return models.Credential.create(
        login=login,
        person_kind=key[0],
        person_id=key[1],
        page_id=page_id,
        salt=salt,
        derived_key=derived_key,
        kdf_iterations=iterations,
        token_hash=token_hash,
        state="active",
        issued_at=utc_naive(at),
    )


def revoke(credential: models.Credential, at: dt.datetime) -> None:
    """Block the login from `at` on; an aware `at` is stored as naive UTC like every time."""
    credential.state = "revoked"
    credential.revoked_at = utc_naive(at)
    credential.save()


def readdress_all(page_id_of: Callable[[str], str]) -> tuple[int, int]:
    """Give every credential, revoked ones too, the page id `page_id_of(login)` (a new site
    secret); inside the caller's transaction. Returns (credentials, ids changed)."""
    c = models.Credential
    rows = list(c.select(c.login, c.page_id))
    changed = 0
    for row in rows:
        new = page_id_of(row.login)
        if new != row.page_id:
            c.update(page_id=new).where(c.login == row.login).execute()
            changed += 1
    return len(rows), changed


def class_id_by_name(name: str) -> str | None:
    cu = models.ClassUnit
    row = cu.get_or_none(cu.name == name, cu.deleted_at.is_null())
    return row.id if row else None


def people_of_class(class_id: str) -> set[PageKey]:
    """The class's students, their guardians and the class teacher."""
    s, link, cu = models.Student, models.GuardianLink, models.ClassUnit
    students = {r.id for r in s.select(s.id).where(s.class_unit_id == class_id)}
    guardians = {
        r.guardian_id
        for r in link.select(link.guardian_id).where(
            link.student_id.in_(list(students)), link.deleted_at.is_null()
        )
    }
    teacher = cu.get_by_id(class_id).class_teacher_id
    keys = {("student", i) for i in students} | {("guardian", i) for i in guardians}
    return keys | ({("teacher", teacher)} if teacher else set())


def _class_names() -> dict[str, str]:
    cu = models.ClassUnit
    return {row.id: row.name for row in cu.select(cu.id, cu.name)}


def _class_of_people(kind: str, ids: list[str], classes: dict[str, str]) -> dict[str, str]:
    """The class a person belongs with on the list: own, a child's, or the one they lead."""
    if kind == "student":
        s = models.Student
        rows = s.select(s.id, s.class_unit_id).where(s.id.in_(ids))
        return {r.id: classes.get(r.class_unit_id, "") for r in rows}
    if kind == "teacher":
        cu = models.ClassUnit
        led = cu.select(cu.id, cu.class_teacher_id).where(cu.class_teacher_id.in_(ids))
        return {str(r.class_teacher_id): classes.get(r.id, "") for r in led}
    link, s = models.GuardianLink, models.Student
    query = (
        link.select(link.guardian_id, s.class_unit_id)
        .join(s, on=(link.student_id == s.id))
        .where(link.guardian_id.in_(ids))
        .order_by(s.class_unit_id)
        .tuples()
    )
    found: dict[str, str] = {}
    for row in query:
        found.setdefault(str(row[0]), classes.get(str(row[1]), ""))  # type: ignore[index]
    return found


def labels_of(keys: Iterable[PageKey]) -> dict[PageKey, tuple[str, str]]:
    """(full name, class) of each person, for the one-time list of logins and passwords."""
    wanted: dict[str, list[str]] = {}
    for kind, person_id in keys:
        wanted.setdefault(kind, []).append(person_id)
    classes = _class_names()
    labels: dict[PageKey, tuple[str, str]] = {}
    for kind, ids in wanted.items():
        table = _PEOPLE[kind]
        class_of = _class_of_people(kind, ids, classes)
        for row in table.select().where(table.id.in_(ids)):
            full = " ".join(p for p in (row.last_name, row.first_name, row.middle_name) if p)
            labels[(kind, row.id)] = (full, class_of.get(row.id, ""))
    return labels


def demo_people() -> dict[str, PageKey]:
    """A guardian of two children, a student and a class teacher, for the demo's hints."""
    link, cu, cred = models.GuardianLink, models.ClassUnit, models.Credential
    guardian = (
        link.select(link.guardian_id)
        .join(cred, on=((cred.person_id == link.guardian_id) & (cred.person_kind == "guardian")))
        .where(cred.state == "active", link.deleted_at.is_null())
        .group_by(link.guardian_id)
        .having(pw.fn.COUNT(link.student_id) >= 2)
        .order_by(link.guardian_id)
        .first()
    )
    teacher = (
        cu.select().where(cu.class_teacher_id.is_null(False)).order_by(cu.grade.desc()).first()
    )
    student = (
        cred.select()
        .where(cred.person_kind == "student", cred.state == "active")
        .order_by(cred.person_id)
        .first()
    )
    people: dict[str, PageKey] = {}
    if guardian:
        people["родитель двоих детей"] = ("guardian", guardian.guardian_id)
    if student:
        people["ученик"] = ("student", student.person_id)
    if teacher:
        people[f"классный руководитель {teacher.name}"] = ("teacher", teacher.class_teacher_id)
    return people
