"""OneRoster roster files mapped to exchange changes: orgs, sessions and courses, who is
who, classes and sections, people, guardians and memberships."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from otmetka.daemon.exchange import oneroster_placing
from otmetka.daemon.exchange.oneroster_csv import Row
from otmetka.daemon.exchange.oneroster_document import (
    GUARDIAN_ROLES,
    HEAD_ROLES,
    Ctx,
    parse_date,
    person,
)
from otmetka.db import journal
from otmetka.db import outbox as sync_db

# --- orgs, sessions, courses ----------------------------------------------------------------


def school(ctx: Ctx, fallback: str) -> str:
    schools = [r for r in ctx.bundle.rows("orgs.csv") if r.get("type").lower() == "school"]
    live = [r for r in schools if not r.deleted]
    if len(live) > 1:
        ids = ", ".join(r.sourced_id for r in live)
        ctx.out.problem(live[1], "type", f"the bundle holds several schools ({ids}); export one")
    for row in live[:1]:
        ctx.out.add("school", row.sourced_id, row, ctx.stamp(row), {"name": row.get("name")})
        return row.sourced_id
    known = sorted(journal.school_ids_seen())
    return known[0] if known else fallback


def _period_kind(row: Row, start: str, end: str) -> str:
    if row.get("type").lower() == "semester":
        return "half"
    days = (dt.date.fromisoformat(end) - dt.date.fromisoformat(start)).days
    return (
        "quarter"
        if days <= 100
        else "trimester"
        if days <= 130
        else "half"
        if days <= 200
        else "year"
    )


def _year_by_parent(ctx: Ctx, row: Row) -> str | None:
    seen: set[str] = set()
    current: Row | None = row
    while current is not None and current.sourced_id not in seen:
        seen.add(current.sourced_id)
        if current.get("type").lower() == "schoolyear":
            return current.sourced_id
        current = ctx.sessions.get(current.get("parentSourcedId"))
    return None


def _made_year(ctx: Ctx, row: Row, start: str, end: str) -> str | None:
    """The school year named in the term's `schoolYear` column; made from its terms when
    the export left the schoolYear session out."""
    label = row.get("schoolYear")
    if not label.isdigit():
        return None
    for other in ctx.sessions.values():
        if other.get("type").lower() == "schoolyear" and other.get("schoolYear") == label:
            return other.sourced_id
    ident = f"oneroster-year-{label}"
    year = ctx.made_years.setdefault(
        ident, {"row": row, "name": f"{int(label) - 1}/{label}", "start": start, "end": end}
    )
    year["start"], year["end"] = min(year["start"], start), max(year["end"], end)
    return ident


def sessions(ctx: Ctx) -> None:
    rows = ctx.bundle.rows("academicSessions.csv")
    ctx.sessions = {r.sourced_id: r for r in rows}
    for row in rows:
        kind = "academic_year" if row.get("type").lower() == "schoolyear" else "period"
        if row.deleted:
            ctx.out.delete(kind, row.sourced_id, row, ctx.stamp(row))
            continue
        start, end = ctx.date(row, "startDate"), ctx.date(row, "endDate")
        if start is None or end is None:
            continue
        data: dict[str, Any] = {"name": row.get("title"), "start": start, "end": end}
        if kind == "academic_year":
            ctx.year_of[row.sourced_id] = row.sourced_id
        else:
            year = _year_by_parent(ctx, row) or _made_year(ctx, row, start, end)
            if year is None:
                ctx.out.problem(
                    row,
                    "parentSourcedId",
                    "no schoolYear session above this term and no "
                    "schoolYear column; add the school year to academicSessions.csv",
                )
                continue
            ctx.year_of[row.sourced_id] = year
            data.update(academic_year_id=year, kind=_period_kind(row, start, end))
        ctx.out.add(kind, row.sourced_id, row, ctx.stamp(row), data)
    for ident, made in ctx.made_years.items():
        cause = made.pop("row")
        ctx.out.add("academic_year", ident, cause, ctx.bundle.stamp.isoformat(), made)


def courses(ctx: Ctx) -> None:
    for row in ctx.bundle.rows("courses.csv"):
        ctx.courses[row.sourced_id] = row
        if row.deleted:
            ctx.out.delete("subject", row.sourced_id, row, ctx.stamp(row))
        else:
            ctx.out.add("subject", row.sourced_id, row, ctx.stamp(row), {"name": row.get("title")})


# --- who is who -----------------------------------------------------------------------------


def roles(ctx: Ctx) -> None:
    ctx.users = {r.sourced_id: r for r in ctx.bundle.rows("users.csv")}
    for row in ctx.users.values():
        if row.get("role"):
            ctx.roles[row.sourced_id] = row.get("role").lower()
    # 1.2 keeps roles in roles.csv; a primary role beats a secondary one.
    ranked = sorted(
        ctx.bundle.rows("roles.csv"), key=lambda r: r.get("roleType").lower() == "primary"
    )
    for row in ranked:
        if not row.deleted and row.get("role"):
            ctx.roles[row.get("userSourcedId")] = row.get("role").lower()


def _kind_of_role(role: str) -> str:
    if role == "student":
        return "student"
    return "guardian" if role in GUARDIAN_ROLES else "teacher"


def enrollment_index(ctx: Ctx) -> None:
    ctx.classes = {r.sourced_id: r for r in ctx.bundle.rows("classes.csv")}
    ctx.homerooms = {i for i, r in ctx.classes.items() if r.get("classType").lower() == "homeroom"}
    unknown = {r.get("classSourcedId") for r in ctx.bundle.rows("enrollments.csv")} - set(
        ctx.classes
    )
    ctx.homerooms |= journal.existing_ids("class_unit", unknown)
    for row in ctx.bundle.rows("enrollments.csv"):
        if row.deleted:
            continue
        role, class_id, user = (
            row.get("role").lower(),
            row.get("classSourcedId"),
            row.get("userSourcedId"),
        )
        if role == "student":
            ctx.students_of[class_id].append(user)
            if class_id in ctx.homerooms:
                ctx.homeroom_of[user] = class_id
        elif (
            role == "teacher"
            and class_id in ctx.homerooms
            and (row.get("primary").lower() == "true" or class_id not in ctx.class_teacher)
        ):
            ctx.class_teacher[class_id] = user


# --- classes --------------------------------------------------------------------------------


def _grade(ctx: Ctx, row: Row) -> int:
    grade = oneroster_placing.class_grade(ctx, row)
    if grade is None:
        ctx.out.warn(
            row,
            "grades",
            "cannot tell the grade from 'grades', the course, the title or the students; "
            "the class is kept with grade 0: put the grade in 'grades', e.g. 07",
        )
    return grade or 0


def _letter(title: str) -> str:
    rest = re.sub(r"^\s*\d+\s*[-‐ ]?\s*", "", title)
    return rest if 0 < len(rest) <= 3 else ""


def _class_year(ctx: Ctx, row: Row) -> str | None:
    year = oneroster_placing.class_year(ctx, row)
    if year is None:
        ctx.out.problem(
            row,
            "termSourcedIds",
            "cannot tell the school year of the class; "
            "list its terms in termSourcedIds and include academicSessions.csv",
        )
    return year


def _homeroom(ctx: Ctx, row: Row, at: str) -> None:
    grade, year = _grade(ctx, row), _class_year(ctx, row)
    if year is None:
        return
    ident, title = row.sourced_id, row.get("title")
    data = {"name": title, "grade": grade, "letter": _letter(title), "academic_year_id": year}
    if ident in ctx.class_teacher:
        data["class_teacher_id"] = ctx.class_teacher[ident]
    ctx.out.add("class_unit", ident, row, at, data)
    group = {"name": title, "kind": "whole_class", "class_unit_ids": [ident]}
    ctx.out.add("group", ident, row, at, group)


def _section_classes(ctx: Ctx, row: Row) -> list[str]:
    students = ctx.students_of.get(row.sourced_id, [])
    stored = sync_db.stored_student_classes(s for s in students if s not in ctx.homeroom_of)
    homes = {ctx.homeroom_of.get(s) or stored.get(s) for s in students} - {None}
    if not homes:
        homes = set(sync_db.stored_group_classes([row.sourced_id]).get(row.sourced_id, []))
    return sorted(h for h in homes if h)


def _section_kind(ctx: Ctx, row: Row, homes: list[str]) -> str:
    if len(homes) > 1:
        return "stream"
    everyone = set(ctx.students_of.get(homes[0], []))
    enrolled = set(ctx.students_of.get(row.sourced_id, []))
    return "subgroup" if everyone and not everyone <= enrolled else "whole_class"


def _section(ctx: Ctx, row: Row, at: str) -> None:
    homes = _section_classes(ctx, row) or oneroster_placing.place_section(ctx, row)
    if not homes:
        ctx.out.problem(
            row,
            "sourcedId",
            "no student of this class is in a homeroom class and the bundle names no "
            "school year, so otmetka cannot tell which class it belongs to; enrol its students",
        )
        return
    data = {
        "name": row.get("title"),
        "kind": _section_kind(ctx, row, homes),
        "class_unit_ids": homes,
    }
    if row.get("courseSourcedId"):
        data["subject_id"] = row.get("courseSourcedId")
    ctx.out.add("group", row.sourced_id, row, at, data)


def classes(ctx: Ctx) -> None:
    for row in ctx.classes.values():
        at = ctx.stamp(row)
        if row.deleted:
            if row.sourced_id in ctx.homerooms:
                ctx.out.delete("class_unit", row.sourced_id, row, at)
            ctx.out.delete("group", row.sourced_id, row, at)
        elif row.sourced_id in ctx.homerooms:
            _homeroom(ctx, row, at)
        else:
            _section(ctx, row, at)


# --- people ---------------------------------------------------------------------------------


def _teacher_roles(ctx: Ctx, user: str, role: str) -> list[str]:
    roles = ["head"] if role in HEAD_ROLES else ["teacher"] if role == "teacher" else []
    return [*roles, "class_teacher"] if user in ctx.class_teacher.values() else roles


def _person_data(ctx: Ctx, row: Row, kind: str, role: str) -> dict[str, Any] | None:
    data = person(row)
    if kind == "student":
        user = row.sourced_id
        home = ctx.homeroom_of.get(user) or sync_db.stored_student_classes([user]).get(user)
        if home is None:
            return None  # placing could not place the student and said why
        data["class_unit_id"] = home
        return data
    data.update(email=row.get("email"), phone=row.get("phone") or row.get("sms"))
    if kind == "teacher":
        data["roles"] = _teacher_roles(ctx, row.sourced_id, role)
    return data


def users(ctx: Ctx) -> None:
    for row in ctx.bundle.rows("users.csv"):
        role = ctx.roles.get(row.sourced_id, "")
        at = ctx.stamp(row)
        if row.deleted:
            kinds = [_kind_of_role(role)] if role else ["student", "teacher", "guardian"]
            for kind in kinds:
                ctx.out.delete(kind, row.sourced_id, row, at)
            continue
        if not role:
            ctx.out.problem(
                row,
                "role",
                "the user has no role (users.csv 'role' in 1.1, roles.csv in 1.2); give one",
            )
            continue
        kind = _kind_of_role(role)
        data = _person_data(ctx, row, kind, role)
        if data is not None:
            ctx.out.add(kind, row.sourced_id, row, at, data)


def _link_pairs(ctx: Ctx) -> dict[tuple[str, str], Row]:
    """(guardian, student) pairs from agentSourcedIds on either side."""
    live = {r.sourced_id: r for r in ctx.bundle.rows("users.csv") if not r.deleted}
    kinds = {user: _kind_of_role(role) for user, role in ctx.roles.items()}
    agents = {a for r in live.values() for a in r.ids("agentSourcedIds")} - set(kinds)
    for kind in ("student", "guardian"):
        kinds.update({a: kind for a in journal.existing_ids(kind, agents)})
    pairs: dict[tuple[str, str], Row] = {}
    for user, row in live.items():
        if user not in kinds:
            continue  # a user without a role is reported once, by users
        for agent in row.ids("agentSourcedIds"):
            pair = _pair(kinds.get(user), user, kinds.get(agent), agent)
            if pair is None:
                ctx.out.problem(
                    row,
                    "agentSourcedIds",
                    f"'{agent}' is not a "
                    f"{'student' if kinds.get(user) == 'guardian' else 'guardian'} "
                    "in this bundle or already imported",
                )
            else:
                pairs.setdefault(pair, row)
    return pairs


def _pair(
    kind: str | None, user: str, agent_kind: str | None, agent: str
) -> tuple[str, str] | None:
    if kind == "guardian" and agent_kind == "student":
        return user, agent
    if kind == "student" and agent_kind == "guardian":
        return agent, user
    return None


def links(ctx: Ctx) -> None:
    pairs = _link_pairs(ctx)
    for (guardian, student), row in pairs.items():
        role = ctx.roles.get(guardian, "guardian")
        data = {
            "guardian_id": guardian,
            "student_id": student,
            "relation": "guardian" if role == "guardian" else "other",
            "is_legal_representative": role != "relative",
        }
        ctx.out.add("guardian_link", f"{guardian}~{student}", row, ctx.stamp(row), data)
    _dropped_links(ctx, set(pairs))


def _dropped_links(ctx: Ctx, pairs: set[tuple[str, str]]) -> None:
    """A users row lists all its agents: a stored link it no longer lists is deleted."""
    rows = {r.sourced_id: r for r in ctx.bundle.rows("users.csv")}
    described = {u for u, r in rows.items() if r.deleted or r.get("agentSourcedIds")}
    for ident, (guardian, student) in sync_db.stored_guardian_links(described).items():
        if (guardian, student) not in pairs:
            row = rows.get(guardian) or rows[student]
            ctx.out.delete("guardian_link", ident, row, ctx.stamp(row))


def memberships(ctx: Ctx) -> None:
    for row in ctx.bundle.rows("enrollments.csv"):
        at = ctx.stamp(row)
        if row.deleted:
            if row.get("role").lower() in ("student", ""):
                ctx.out.delete("membership", row.sourced_id, row, at)
            continue
        if row.get("role").lower() != "student":
            continue  # teachers: the class teacher of a homeroom is taken above
        begin = ctx.date(row, "beginDate", required=False) or _class_start(ctx, row)
        data: dict[str, Any] = {
            "group_id": row.get("classSourcedId"),
            "student_id": row.get("userSourcedId"),
            "from": begin,
        }
        end = ctx.date(row, "endDate", required=False)
        if end:
            data["to"] = end
        ctx.out.add("membership", row.sourced_id, row, at, data)


def _class_start(ctx: Ctx, row: Row) -> str:
    """An enrollment without beginDate starts with its class's first term (or the bundle)."""
    klass = ctx.classes.get(row.get("classSourcedId"))
    terms = [
        ctx.sessions[t] for t in (klass.ids("termSourcedIds") if klass else []) if t in ctx.sessions
    ]
    starts = [day for t in terms if (day := parse_date(t.get("startDate")))]
    return min(starts) if starts else ctx.bundle.stamp.date().isoformat()
