"""OneRoster 1.1 / 1.2 CSV bundles as a roster and marks source.

A bundle is mapped to one exchange document (see the table in docs/exchange-format.md)
and imported through `importer.import_batch`, so it is validated by the same models
and applied all or nothing in one transaction. Every change remembers the CSV file, row and
columns it came from, and the importer's messages are rewritten to name them:
`roster.zip: results.csv row 14 (sourcedId 'r-7'), column 'score': ...`.

Deltas: rows with `status` `tobedeleted` become tombstones; `dateLastModified` becomes
`updated_at` (rows without it take the bundle's time). Facts a delta does not carry (the
class of a student whose enrollment did not change, the subject of a stored work) are read
from what was imported before.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.exchange import importer
from otmetka.daemon.exchange.oneroster_csv import Bundle, Row, read_bundle
from otmetka.daemon.exchange.reader import BatchError, from_document
from otmetka.db import journal
from otmetka.db import outbox as sync_db

SOURCE = "oneroster"
DEFAULT_WORK_KIND = "oneroster-work"
_GUARDIAN_ROLES = {"parent", "guardian", "relative"}
_HEAD_ROLES = {"principal"}
_PERSON = {"familyName": "last_name", "givenName": "first_name", "middleName": "middle_name"}

# Which CSV column each exchange field comes from, to name it in messages.
COLUMNS: dict[str, dict[str, str]] = {
    "school": {"name": "name"},
    "academic_year": {"name": "title", "start": "startDate", "end": "endDate"},
    "period": {
        "name": "title",
        "start": "startDate",
        "end": "endDate",
        "academic_year_id": "parentSourcedId",
    },
    "subject": {"name": "title"},
    "teacher": {**{v: k for k, v in _PERSON.items()}, "email": "email", "phone": "phone"},
    "student": {v: k for k, v in _PERSON.items()},
    "guardian": {**{v: k for k, v in _PERSON.items()}, "email": "email", "phone": "phone"},
    "guardian_link": {"guardian_id": "agentSourcedIds", "student_id": "agentSourcedIds"},
    "class_unit": {
        "name": "title",
        "grade": "grades",
        "academic_year_id": "termSourcedIds",
    },
    "group": {"name": "title", "subject_id": "courseSourcedId"},
    "membership": {
        "group_id": "classSourcedId",
        "student_id": "userSourcedId",
        "from": "beginDate",
        "to": "endDate",
    },
    "work_kind": {"name": "title", "default_weight": "weight"},
    "work": {
        "date": "dueDate",
        "group_id": "classSourcedId",
        "subject_id": "classSourcedId",
        "kind": "categorySourcedId",
        "title": "title",
    },
    "mark": {
        "student_id": "studentSourcedId",
        "work_id": "lineItemSourcedId",
        "subject_id": "lineItemSourcedId",
        "raw": "score",
        "value": "score",
        "date": "scoreDate",
        "comment": "comment",
    },
}


# --- the document being built ---------------------------------------------------------------


@dataclass
class _Out:
    origin: str
    changes: list[dict[str, Any]] = field(default_factory=list)
    sources: list[tuple[Row, str]] = field(default_factory=list)  # (row, entity) per change
    problems: list[str] = field(default_factory=list)

    def add(self, kind: str, ident: str, row: Row, at: str, data: dict[str, Any]) -> None:
        record = {"type": kind, "id": ident, "op": "upsert", "updated_at": at, "data": data}
        self.changes.append(record)
        self.sources.append((row, kind))

    def delete(self, kind: str, ident: str, row: Row, at: str) -> None:
        self.changes.append({"type": kind, "id": ident, "op": "delete", "updated_at": at})
        self.sources.append((row, kind))

    def problem(self, row: Row, column: str | None, message: str) -> None:
        self.problems.append(f"{self.origin}: {row.where(column)}: {message}")


_RECORD = re.compile(
    r"^(?P<origin>.*?): record (?P<index>\d+) \(id '[^']*', type '[^']*'\)"
    r"(?:: field '(?P<field>[^']*)')?(?P<rest>.*)$",
    re.DOTALL,
)


def explain(out: _Out, problem: str) -> str:
    """An importer message about record N rewritten to name the CSV file, row and column."""
    match = _RECORD.match(problem)
    if match is None or int(match["index"]) >= len(out.sources):
        return problem
    row, kind = out.sources[int(match["index"])]
    name = match["field"] if match["field"] != "data" else None  # "data": the whole record
    column = COLUMNS.get(kind, {}).get(name.split(".")[0]) if name else None
    where = row.where(column)
    if name and column is None:
        where += f", field '{name}'"
    return f"{out.origin}: {where}{match['rest']}"


# --- values ---------------------------------------------------------------------------------


@dataclass
class _Ctx:
    bundle: Bundle
    tz: ZoneInfo
    out: _Out
    roles: dict[str, str] = field(default_factory=dict)  # user -> role, lower case
    classes: dict[str, Row] = field(default_factory=dict)
    homerooms: set[str] = field(default_factory=set)
    homeroom_of: dict[str, str] = field(default_factory=dict)  # student -> homeroom class
    class_teacher: dict[str, str] = field(default_factory=dict)  # homeroom -> teacher
    students_of: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    sessions: dict[str, Row] = field(default_factory=dict)
    year_of: dict[str, str] = field(default_factory=dict)  # session -> academic year id
    made_years: dict[str, dict[str, Any]] = field(default_factory=dict)
    work_dates: dict[str, str] = field(default_factory=dict)
    work_subjects: dict[str, str] = field(default_factory=dict)
    default_kind_used: Row | None = None

    def stamp(self, row: Row) -> str:
        text = row.get("dateLastModified")
        if not text:
            return self.bundle.stamp.isoformat()
        try:
            moment = dt.datetime.fromisoformat(text.replace(" ", "T"))
        except ValueError:
            self.out.problem(row, "dateLastModified", f"'{text}' is not a date and time")
            return self.bundle.stamp.isoformat()
        # OneRoster writes dateLastModified in UTC.
        return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).isoformat()

    def date(self, row: Row, column: str, *, required: bool = True) -> str | None:
        text = row.get(column)
        if not text:
            if required:
                self.out.problem(row, column, "the date is empty; fill it in (YYYY-MM-DD)")
            return None
        parsed = _parse_date(text)
        if parsed is None:
            self.out.problem(row, column, f"'{text}' is not a date; write it as YYYY-MM-DD")
        return parsed


def _parse_date(text: str) -> str | None:
    for candidate, pattern in ((text[:10], "%Y-%m-%d"), (text[:10], "%d.%m.%Y")):
        try:
            return dt.datetime.strptime(candidate, pattern).date().isoformat()
        except ValueError:
            continue
    return None


def _person(row: Row) -> dict[str, Any]:
    return {field: row.get(column) for column, field in _PERSON.items()}


# --- orgs, sessions, courses ----------------------------------------------------------------


def _school(ctx: _Ctx, fallback: str) -> str:
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


def _year_by_parent(ctx: _Ctx, row: Row) -> str | None:
    seen: set[str] = set()
    current: Row | None = row
    while current is not None and current.sourced_id not in seen:
        seen.add(current.sourced_id)
        if current.get("type").lower() == "schoolyear":
            return current.sourced_id
        current = ctx.sessions.get(current.get("parentSourcedId"))
    return None


def _made_year(ctx: _Ctx, row: Row, start: str, end: str) -> str | None:
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


def _sessions(ctx: _Ctx) -> None:
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


def _courses(ctx: _Ctx) -> None:
    for row in ctx.bundle.rows("courses.csv"):
        if row.deleted:
            ctx.out.delete("subject", row.sourced_id, row, ctx.stamp(row))
        else:
            ctx.out.add("subject", row.sourced_id, row, ctx.stamp(row), {"name": row.get("title")})


# --- who is who -----------------------------------------------------------------------------


def _roles(ctx: _Ctx) -> None:
    for row in ctx.bundle.rows("users.csv"):
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
    return "guardian" if role in _GUARDIAN_ROLES else "teacher"


def _enrollment_index(ctx: _Ctx) -> None:
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


def _grade(ctx: _Ctx, row: Row) -> int | None:
    for text in (*row.ids("grades"), row.get("title")):
        if text.upper() in ("KG", "PK", "PR", "TK"):
            return 0
        match = re.match(r"\s*0*(\d{1,2})", text)
        if match:
            return int(match.group(1))
    ctx.out.problem(row, "grades", "cannot tell the grade; put it in 'grades', e.g. 07")
    return None


def _letter(title: str) -> str:
    rest = re.sub(r"^\s*\d+\s*[-‐ ]?\s*", "", title)
    return rest if 0 < len(rest) <= 3 else ""


def _class_year(ctx: _Ctx, row: Row) -> str | None:
    for term in row.ids("termSourcedIds"):
        if term in ctx.year_of:
            return ctx.year_of[term]
    years = sorted({y for y in ctx.year_of.values()})
    if years:
        return years[-1]
    ctx.out.problem(
        row,
        "termSourcedIds",
        "cannot tell the school year of the class; "
        "list its terms in termSourcedIds and include academicSessions.csv",
    )
    return None


def _homeroom(ctx: _Ctx, row: Row, at: str) -> None:
    grade, year = _grade(ctx, row), _class_year(ctx, row)
    if grade is None or year is None:
        return
    ident, title = row.sourced_id, row.get("title")
    data = {"name": title, "grade": grade, "letter": _letter(title), "academic_year_id": year}
    if ident in ctx.class_teacher:
        data["class_teacher_id"] = ctx.class_teacher[ident]
    ctx.out.add("class_unit", ident, row, at, data)
    group = {"name": title, "kind": "whole_class", "class_unit_ids": [ident]}
    ctx.out.add("group", ident, row, at, group)


def _section_classes(ctx: _Ctx, row: Row) -> list[str]:
    students = ctx.students_of.get(row.sourced_id, [])
    stored = sync_db.stored_student_classes(s for s in students if s not in ctx.homeroom_of)
    homes = {ctx.homeroom_of.get(s) or stored.get(s) for s in students} - {None}
    if not homes:
        homes = set(sync_db.stored_group_classes([row.sourced_id]).get(row.sourced_id, []))
    return sorted(h for h in homes if h)


def _section_kind(ctx: _Ctx, row: Row, homes: list[str]) -> str:
    if len(homes) > 1:
        return "stream"
    everyone = set(ctx.students_of.get(homes[0], []))
    enrolled = set(ctx.students_of.get(row.sourced_id, []))
    return "subgroup" if everyone and not everyone <= enrolled else "whole_class"


def _section(ctx: _Ctx, row: Row, at: str) -> None:
    homes = _section_classes(ctx, row)
    if not homes:
        ctx.out.problem(
            row,
            "sourcedId",
            "no student of this class is in a homeroom class, so "
            "otmetka cannot tell which class it belongs to; enrol its students",
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


def _classes(ctx: _Ctx) -> None:
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


def _teacher_roles(ctx: _Ctx, user: str, role: str) -> list[str]:
    roles = ["head"] if role in _HEAD_ROLES else ["teacher"] if role == "teacher" else []
    return [*roles, "class_teacher"] if user in ctx.class_teacher.values() else roles


def _person_data(ctx: _Ctx, row: Row, kind: str, role: str) -> dict[str, Any] | None:
    data = _person(row)
    if kind == "student":
        user = row.sourced_id
        home = ctx.homeroom_of.get(user) or sync_db.stored_student_classes([user]).get(user)
        if home is None:
            ctx.out.problem(
                row,
                "sourcedId",
                "the student has no homeroom class: add an "
                "enrollment in a class with classType homeroom",
            )
            return None
        data["class_unit_id"] = home
        return data
    data.update(email=row.get("email"), phone=row.get("phone") or row.get("sms"))
    if kind == "teacher":
        data["roles"] = _teacher_roles(ctx, row.sourced_id, role)
    return data


def _users(ctx: _Ctx) -> None:
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


def _link_pairs(ctx: _Ctx) -> dict[tuple[str, str], Row]:
    """(guardian, student) pairs from agentSourcedIds on either side."""
    live = {r.sourced_id: r for r in ctx.bundle.rows("users.csv") if not r.deleted}
    kinds = {user: _kind_of_role(role) for user, role in ctx.roles.items()}
    agents = {a for r in live.values() for a in r.ids("agentSourcedIds")} - set(kinds)
    for kind in ("student", "guardian"):
        kinds.update({a: kind for a in journal.existing_ids(kind, agents)})
    pairs: dict[tuple[str, str], Row] = {}
    for user, row in live.items():
        if user not in kinds:
            continue  # a user without a role is reported once, by _users
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


def _links(ctx: _Ctx) -> None:
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


def _dropped_links(ctx: _Ctx, pairs: set[tuple[str, str]]) -> None:
    """A users row lists all its agents: a stored link it no longer lists is deleted."""
    rows = {r.sourced_id: r for r in ctx.bundle.rows("users.csv")}
    described = {u for u, r in rows.items() if r.deleted or r.get("agentSourcedIds")}
    for ident, (guardian, student) in sync_db.stored_guardian_links(described).items():
        if (guardian, student) not in pairs:
            row = rows.get(guardian) or rows[student]
            ctx.out.delete("guardian_link", ident, row, ctx.stamp(row))


def _memberships(ctx: _Ctx) -> None:
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


def _class_start(ctx: _Ctx, row: Row) -> str:
    """An enrollment without beginDate starts with its class's first term (or the bundle)."""
    klass = ctx.classes.get(row.get("classSourcedId"))
    terms = [
        ctx.sessions[t] for t in (klass.ids("termSourcedIds") if klass else []) if t in ctx.sessions
    ]
    starts = [day for t in terms if (day := _parse_date(t.get("startDate")))]
    return min(starts) if starts else ctx.bundle.stamp.date().isoformat()


# --- works and marks ------------------------------------------------------------------------


def _categories(ctx: _Ctx) -> None:
    for row in ctx.bundle.rows("categories.csv"):
        if row.deleted:
            ctx.out.delete("work_kind", row.sourced_id, row, ctx.stamp(row))
            continue
        data: dict[str, Any] = {"name": row.get("title")}
        if row.get("weight"):
            data["default_weight"] = _number(row.get("weight"))
        ctx.out.add("work_kind", row.sourced_id, row, ctx.stamp(row), data)


def _number(text: str) -> float | str:
    try:
        return float(text.replace(",", "."))
    except ValueError:
        return text  # the model rejects it with the column named


def _class_subject(ctx: _Ctx, class_id: str) -> str | None:
    klass = ctx.classes.get(class_id)
    if klass is not None:
        return klass.get("courseSourcedId") or None
    return sync_db.stored_group_subjects([class_id]).get(class_id)


def _line_items(ctx: _Ctx) -> None:
    for row in ctx.bundle.rows("lineItems.csv"):
        at = ctx.stamp(row)
        if row.deleted:
            ctx.out.delete("work", row.sourced_id, row, at)
            continue
        day = ctx.date(row, "dueDate", required=False) or ctx.date(row, "assignDate")
        subject = _class_subject(ctx, row.get("classSourcedId"))
        if subject is None:
            ctx.out.problem(
                row,
                "classSourcedId",
                "the class has no course, so the work has no "
                "subject; set courseSourcedId of the class in classes.csv",
            )
        if day is None or subject is None:
            continue
        kind = row.get("categorySourcedId")
        if not kind:
            kind, ctx.default_kind_used = DEFAULT_WORK_KIND, row
        data = {
            "date": day,
            "group_id": row.get("classSourcedId"),
            "subject_id": subject,
            "kind": kind,
            "title": row.get("title"),
        }
        ctx.work_dates[row.sourced_id], ctx.work_subjects[row.sourced_id] = day, subject
        ctx.out.add("work", row.sourced_id, row, at, data)
    if ctx.default_kind_used is not None:
        row = ctx.default_kind_used
        ctx.out.add(
            "work_kind", DEFAULT_WORK_KIND, row, "2000-01-01T00:00:00+00:00", {"name": "Работа"}
        )


_FIVE = re.compile(r"^([1-5][+-]?|[1-5]/[1-5])$")
_PASS = {"зачёт", "зачет", "незачёт", "незачет", "не зачтено", "зачтено"}


def _score(text: str) -> dict[str, Any] | None:
    """raw / scale / value of a score as written; None when it is not a mark at all."""
    clean = re.sub(r"^(\d+)[.,]0+$", r"\1", text.strip())
    lowered = clean.lower()
    if _FIVE.match(clean) or lowered == "н/а":
        return {"raw": lowered if lowered == "н/а" else clean, "scale": "five"}
    if lowered in _PASS:
        passed = not lowered.startswith("не")
        return {"raw": "зачёт" if passed else "незачёт", "scale": "pass_fail"}
    number = _number(clean)
    if isinstance(number, float) and len(clean) <= 16:
        return {"raw": clean, "scale": "custom", "value": number}
    return None


def _results(ctx: _Ctx) -> None:
    for row in ctx.bundle.rows("results.csv"):
        at = ctx.stamp(row)
        if row.deleted:
            ctx.out.delete("mark", row.sourced_id, row, at)
            continue
        text = row.get("textScore") or row.get("score")
        if not text:
            continue  # not marked yet (or exempt): nothing to show
        mark = _score(text)
        if mark is None:
            ctx.out.problem(
                row,
                "textScore" if row.get("textScore") else "score",
                f"'{text}' is not a mark otmetka understands (1–5, 4-, зачёт, н/а or a number)",
            )
            continue
        _add_mark(ctx, row, at, mark)


def _add_mark(ctx: _Ctx, row: Row, at: str, mark: dict[str, Any]) -> None:
    work = row.get("lineItemSourcedId")
    if work not in ctx.work_subjects:
        stored = sync_db.stored_work_subjects([work]).get(work)
        if stored is not None:
            ctx.work_subjects[work], ctx.work_dates[work] = stored
    subject, day = ctx.work_subjects.get(work), ctx.work_dates.get(work)
    day = ctx.date(row, "scoreDate", required=False) or day
    if subject is None or day is None:
        ctx.out.problem(
            row,
            "lineItemSourcedId",
            f"line item '{work}' is neither in lineItems.csv nor already imported",
        )
        return
    data = {
        "student_id": row.get("studentSourcedId"),
        "subject_id": subject,
        "date": day,
        "work_id": work,
        **mark,
    }
    if row.get("comment"):
        data["comment"] = row.get("comment")
    ctx.out.add("mark", row.sourced_id, row, at, data)


# --- the whole bundle -----------------------------------------------------------------------


def to_document(bundle: Bundle, *, tz: str, school_id: str) -> tuple[dict[str, Any], _Out]:
    """The bundle as one exchange document, and where each of its changes came from."""
    ctx = _Ctx(bundle, ZoneInfo(tz), _Out(bundle.origin))
    school = _school(ctx, school_id)
    _sessions(ctx)
    _courses(ctx)
    _roles(ctx)
    _enrollment_index(ctx)
    _classes(ctx)
    _users(ctx)
    _links(ctx)
    _memberships(ctx)
    _categories(ctx)
    _line_items(ctx)
    _results(ctx)
    if ctx.out.problems:
        raise BatchError(bundle.origin, ctx.out.problems)
    stamp = bundle.stamp.isoformat()
    document = {
        "format": "otmetka-exchange",
        "version": 1,
        "school_id": school,
        "tz": tz,
        "mode": "delta" if bundle.delta else "full",
        "cursor": f"oneroster {bundle.origin} {stamp}",
        "generated_at": stamp,
        "changes": ctx.out.changes,
    }
    return document, ctx.out


def import_bundle(
    path: Path,
    rules: MarkRules,
    *,
    tz: str,
    school_id: str,
    progress: importer.Progress | None = None,
) -> importer.ImportResult:
    """Import a OneRoster bundle (folder or zip), all or nothing."""
    bundle = read_bundle(path, ZoneInfo(tz))
    document, out = to_document(bundle, tz=tz, school_id=school_id)
    raw = from_document(document, bundle.origin)
    try:
        return importer.import_batch(raw, rules, source=SOURCE, progress=progress)
    except BatchError as error:
        raise BatchError(bundle.origin, [explain(out, p) for p in error.problems]) from None
