"""What real OneRoster exports leave out, filled in by the documented rules: the grade of a
class whose `grades` is empty, the school year of a class, and the class of a student with
no homeroom enrollment (or of a section with no students), down to the «без класса» classes
that the class lists show for correction."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from otmetka.daemon.exchange.oneroster_csv import Row
from otmetka.daemon.exchange.oneroster_document import Ctx, parse_date
from otmetka.db import outbox as sync_db
from otmetka.db import queries

NO_CLASS = "без класса"
MADE_PREFIX = "oneroster-no-class"
# CEDS grade codes before the first grade; the journal has no grade below 1, so 0.
_EARLY_GRADES = {"IT", "PR", "PK", "TK", "KG"}
_GRADE_IN_TITLE = re.compile(r"(?<!\d)0*(\d{1,2})(?!\d)")

# --- grades ---------------------------------------------------------------------------------


def grade_of_text(text: str) -> int | None:
    """A OneRoster grade code («07», «7», «KG») as the journal's grade; None if it is none."""
    code = text.strip().upper()
    if code in _EARLY_GRADES:
        return 0
    match = re.fullmatch(r"0*(\d{1,2})", code)
    return int(match.group(1)) if match and int(match.group(1)) <= 12 else None


def _first(grades: Iterable[int | None]) -> int | None:
    return next((grade for grade in grades if grade is not None), None)


def _most_common(grades: Iterable[int | None]) -> int | None:
    counted = Counter(grade for grade in grades if grade is not None)
    return counted.most_common(1)[0][0] if counted else None


def _title_grade(title: str) -> int | None:
    numbers = (int(m.group(1)) for m in _GRADE_IN_TITLE.finditer(title))
    return next((n for n in numbers if 1 <= n <= 12), None)


def _user_grade(ctx: Ctx, user: str) -> int | None:
    row = ctx.users.get(user)
    return _first(grade_of_text(g) for g in row.ids("grades")) if row else None


def _stored_grade(ctx: Ctx, class_id: str) -> int | None:
    if ctx.stored_grades is None:
        # «без класса» of no known grade is stored as grade 0, which tells nothing
        ctx.stored_grades = {
            c.id: c.grade
            for c in queries.class_units()
            if not (c.id.startswith(MADE_PREFIX) and c.grade == 0)
        }
    return ctx.stored_grades.get(class_id)


def _grade_of_class(ctx: Ctx, row: Row) -> int | None:
    own = _first(grade_of_text(g) for g in row.ids("grades"))
    if own is not None:
        return own
    course = ctx.courses.get(row.get("courseSourcedId"))
    by_course = _first(grade_of_text(g) for g in course.ids("grades")) if course else None
    if by_course is not None:
        return by_course
    by_title = _title_grade(row.get("title"))
    if by_title is not None:
        return by_title
    students = ctx.students_of.get(row.sourced_id, [])
    by_students = _most_common(_user_grade(ctx, s) for s in students)
    return by_students if by_students is not None else _stored_grade(ctx, row.sourced_id)


def class_grade(ctx: Ctx, row: Row) -> int | None:
    """The grade of a class: its `grades`, else its course's `grades`, its title, the most
    common `grades` of its students, or what an earlier import stored."""
    if row.sourced_id not in ctx.grades:
        ctx.grades[row.sourced_id] = _grade_of_class(ctx, row)
    return ctx.grades[row.sourced_id]


# --- school years -----------------------------------------------------------------------


def _year_start(ctx: Ctx, year: str) -> str:
    row = ctx.sessions.get(year)
    if row is not None:
        return parse_date(row.get("startDate")) or ""
    return str(ctx.made_years.get(year, {}).get("start", ""))


def class_year(ctx: Ctx, row: Row | None) -> str | None:
    """The school year of a class: that of its terms, else the latest of the bundle, else
    the latest already imported."""
    for term in row.ids("termSourcedIds") if row else []:
        if term in ctx.year_of:
            return ctx.year_of[term]
    years = set(ctx.year_of.values())
    if years:
        return max(years, key=lambda year: (_year_start(ctx, year), year))
    stored = sorted(queries.academic_years(), key=lambda year: year.start)
    return stored[-1].id if stored else None


# --- placing students -------------------------------------------------------------------


def _only_homeroom(ctx: Ctx, grade: int | None) -> str | None:
    if grade is None:
        return None
    live = (ctx.classes[i] for i in sorted(ctx.homerooms & set(ctx.classes)))
    found = [r.sourced_id for r in live if not r.deleted and class_grade(ctx, r) == grade]
    return found[0] if len(found) == 1 else None


def made_class(ctx: Ctx, cause: Row, grade: int | None, year: str) -> str:
    """The «без класса» class of a grade (or of no known grade) in a school year."""
    ident = f"{MADE_PREFIX}-{year}" if grade is None else f"{MADE_PREFIX}-{year}-{grade}"
    name = NO_CLASS if grade is None else f"{grade} {NO_CLASS}"
    data = {"name": name, "grade": grade or 0, "letter": "", "academic_year_id": year}
    ctx.made_classes.setdefault(ident, {"row": cause, "data": data})
    return ident


def class_name(ctx: Ctx, class_id: str) -> str:
    made = ctx.made_classes.get(class_id)
    if made is not None:
        return f"«{made['data']['name']}»"
    row = ctx.classes.get(class_id)
    return f"'{row.get('title')}'" if row is not None else f"'{class_id}'"


def _student_grade(ctx: Ctx, row: Row, enrolled: list[str]) -> int | None:
    own = _user_grade(ctx, row.sourced_id)
    if own is not None:
        return own
    grades = [class_grade(ctx, ctx.classes[c]) for c in enrolled if c in ctx.classes]
    # A delta need not repeat a class: the grades of the classes it was stored under.
    stored = sync_db.stored_group_classes(c for c in enrolled if c not in ctx.classes)
    grades += [_stored_grade(ctx, home) for homes in stored.values() for home in homes]
    return _most_common(grades)


def _place(ctx: Ctx, row: Row, enrolled: list[str]) -> None:
    grade = _student_grade(ctx, row, enrolled)
    home = _only_homeroom(ctx, grade)
    if home is None:
        first = next((ctx.classes[c] for c in enrolled if c in ctx.classes), None)
        year = class_year(ctx, first)
        if year is None:
            ctx.out.problem(
                row,
                "sourcedId",
                "the student has no homeroom class and the bundle names no school year "
                "to place the student in; add an enrollment in a class with classType "
                "homeroom, or academicSessions.csv",
            )
            return
        home = made_class(ctx, row, grade, year)
        rule = "its grade" if grade is not None else "no grade known"
    else:
        rule = f"the only homeroom class of grade {grade}"
    ctx.homeroom_of[row.sourced_id] = home
    ctx.students_of[home].append(row.sourced_id)
    ctx.out.warn(
        row,
        "sourcedId",
        f"the student has no homeroom enrollment; placed in {class_name(ctx, home)} "
        f"({rule}): enrol the student in a homeroom class in the export, "
        "or move the student in the school's system",
    )


def place_students(ctx: Ctx) -> None:
    """Give a class to every student of users.csv without a homeroom enrollment, by the rule
    in docs/exchange-format.md; a class stored by an earlier import stays."""
    students = [
        r
        for r in ctx.users.values()
        if not r.deleted
        and ctx.roles.get(r.sourced_id) == "student"
        and r.sourced_id not in ctx.homeroom_of
    ]
    stored = sync_db.stored_student_classes(r.sourced_id for r in students)
    enrolled: dict[str, list[str]] = {}
    for class_id, members in ctx.students_of.items():
        for student in members:
            enrolled.setdefault(student, []).append(class_id)
    for row in students:
        kept = stored.get(row.sourced_id)
        if kept is None or kept.startswith(MADE_PREFIX):
            _place(ctx, row, enrolled.get(row.sourced_id, []))


def place_section(ctx: Ctx, row: Row) -> list[str]:
    """A section with no student in a class: under its grade's only homeroom or «без класса»."""
    grade, year = class_grade(ctx, row), class_year(ctx, row)
    home = _only_homeroom(ctx, grade) or (made_class(ctx, row, grade, year) if year else None)
    if home is None:
        return []
    ctx.out.warn(
        row,
        "sourcedId",
        f"no student of this class is in a class; shown under {class_name(ctx, home)} "
        "until its students are enrolled",
    )
    return [home]


# A made class is the same whatever bundle makes it (its id names its year and grade), so
# one fixed time: importing it again from another bundle changes nothing.
_MADE_AT = "2000-01-01T00:00:00+00:00"


def add_made_classes(ctx: Ctx) -> None:
    for ident, made in ctx.made_classes.items():
        ctx.out.add("class_unit", ident, made["row"], _MADE_AT, made["data"])
