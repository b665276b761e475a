"""A OneRoster bundle as an exchange document being built: the CSV columns behind each
field, the changes with the rows they came from, and the values read from the rows."""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from otmetka.daemon.exchange.oneroster_csv import Bundle, Row

SOURCE = "oneroster"
DEFAULT_WORK_KIND = "oneroster-work"
GUARDIAN_ROLES = {"parent", "guardian", "relative"}
HEAD_ROLES = {"principal"}
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
class Out:
    origin: str
    changes: list[dict[str, Any]] = field(default_factory=list)
    sources: list[tuple[Row, str]] = field(default_factory=list)  # (row, entity) per change
    problems: list[str] = field(default_factory=list)
    # Kept, but the school should look: a guessed class or grade, an ignored column.
    warnings: list[str] = field(default_factory=list)

    def add(self, kind: str, ident: str, row: Row, at: str, data: dict[str, Any]) -> None:
        record = {"type": kind, "id": ident, "op": "upsert", "updated_at": at, "data": data}
        self.changes.append(record)
        self.sources.append((row, kind))

    def delete(self, kind: str, ident: str, row: Row, at: str) -> None:
        self.changes.append({"type": kind, "id": ident, "op": "delete", "updated_at": at})
        self.sources.append((row, kind))

    def problem(self, row: Row, column: str | None, message: str) -> None:
        self.problems.append(f"{self.origin}: {row.where(column)}: {message}")

    def warn(self, row: Row, column: str | None, message: str) -> None:
        self.warnings.append(f"{self.origin}: {row.where(column)}: {message}")


_RECORD = re.compile(
    r"^(?P<origin>.*?): record (?P<index>\d+) \(id '[^']*', type '[^']*'\)"
    r"(?:: field '(?P<field>[^']*)')?(?P<rest>.*)$",
    re.DOTALL,
)


def explain(out: Out, problem: str) -> str:
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
class Ctx:
    bundle: Bundle
    tz: ZoneInfo
    out: Out
    roles: dict[str, str] = field(default_factory=dict)  # user -> role, lower case
    users: dict[str, Row] = field(default_factory=dict)
    courses: dict[str, Row] = field(default_factory=dict)
    classes: dict[str, Row] = field(default_factory=dict)
    homerooms: set[str] = field(default_factory=set)
    homeroom_of: dict[str, str] = field(default_factory=dict)  # student -> homeroom class
    grades: dict[str, int | None] = field(default_factory=dict)  # class -> grade, as inferred
    made_classes: dict[str, dict[str, Any]] = field(default_factory=dict)  # «без класса»
    stored_grades: dict[str, int] | None = None  # class -> grade, read once when needed
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
        moment = parse_moment(text)
        if moment is None:
            self.out.problem(
                row,
                "dateLastModified",
                f"'{text}' is not a date and time; write it as 2026-09-01T08:00:00.000Z",
            )
            return self.bundle.stamp.isoformat()
        # OneRoster writes dateLastModified in UTC.
        return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).isoformat()

    def date(self, row: Row, column: str, *, required: bool = True) -> str | None:
        text = row.get(column)
        if not text:
            if required:
                self.out.problem(row, column, "the date is empty; fill it in (YYYY-MM-DD)")
            return None
        parsed = parse_date(text)
        if parsed is None:
            self.out.problem(row, column, f"'{text}' is not a date; write it as YYYY-MM-DD")
        return parsed


# What a spreadsheet makes of an ISO time when it saves the CSV again.
_MOMENT_PATTERNS = ("%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d.%m.%Y", "%m/%d/%Y %H:%M")


def parse_moment(text: str) -> dt.datetime | None:
    """dateLastModified as exports write it: with or without milliseconds, `Z`, an offset,
    a time at all; or as a spreadsheet saved it again."""
    try:
        return dt.datetime.fromisoformat(text.strip().replace(" ", "T").upper())
    except ValueError:
        pass
    for pattern in _MOMENT_PATTERNS:
        try:
            return dt.datetime.strptime(text.strip(), pattern)
        except ValueError:
            continue
    return None


def parse_date(text: str) -> str | None:
    for candidate, pattern in ((text[:10], "%Y-%m-%d"), (text[:10], "%d.%m.%Y")):
        try:
            return dt.datetime.strptime(candidate, pattern).date().isoformat()
        except ValueError:
            continue
    return None


def person(row: Row) -> dict[str, Any]:
    return {field: row.get(column) for column, field in _PERSON.items()}
