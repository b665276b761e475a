"""A small hand-made school in exchange format v1, for tests that need exact figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

T0 = "2026-09-01T08:00:00+03:00"


def change(
    kind: str,
    record_id: str,
    data: dict[str, Any] | None = None,
    *,
    op: str = "upsert",
    updated_at: str = T0,
) -> dict[str, Any]:
    record: dict[str, Any] = {"type": kind, "id": record_id, "op": op, "updated_at": updated_at}
    if data is not None:
        record["data"] = data
    return record


def envelope(
    changes: list[dict[str, Any]],
    *,
    mode: str = "full",
    cursor: str = "c1",
    school_id: str = "sch-1",
) -> dict[str, Any]:
    return {
        "format": "otmetka-exchange",
        "version": 1,
        "school_id": school_id,
        "tz": "Europe/Moscow",
        "mode": mode,
        "cursor": cursor,
        "generated_at": "2026-11-20T18:00:00+03:00",
        "changes": changes,
    }


def _people() -> list[dict[str, Any]]:
    return [
        change(
            "teacher",
            "t-1",
            {
                "last_name": "Королёва",
                "first_name": "Анна",
                "middle_name": "Петровна",
                "roles": ["teacher", "class_teacher"],
            },
        ),
        change(
            "teacher",
            "t-2",
            {"last_name": "Семёнов", "first_name": "Фёдор", "middle_name": "Ильич"},
        ),
        change(
            "class_unit",
            "cls-7b",
            {
                "name": "7Б",
                "grade": 7,
                "letter": "Б",
                "academic_year_id": "y-2026",
                "class_teacher_id": "t-1",
            },
        ),
        *[
            change(
                "student",
                f"s-{n}",
                {"last_name": last, "first_name": first, "class_unit_id": "cls-7b"},
            )
            for n, (last, first) in enumerate(
                [("Иванова-Крылова", "Алёна"), ("Иванов", "Артём"), ("Петров", "Иван")], start=1
            )
        ],
        change(
            "guardian",
            "g-1",
            {"last_name": "Иванова", "first_name": "Мария", "email": "maria@example.ru"},
        ),
        change(
            "guardian", "g-2", {"last_name": "Петрова", "first_name": "Ольга", "delivery": "paper"}
        ),
        change(
            "guardian_link",
            "gl-1",
            {"guardian_id": "g-1", "student_id": "s-1", "relation": "mother"},
        ),
        change(
            "guardian_link",
            "gl-2",
            {"guardian_id": "g-1", "student_id": "s-2", "relation": "mother"},
        ),
        change(
            "guardian_link",
            "gl-3",
            {"guardian_id": "g-2", "student_id": "s-3", "relation": "mother"},
        ),
    ]


def school_year(school_id: str, name: str) -> list[dict[str, Any]]:
    """The school, the year 2026/2027 and its first quarter."""
    return [
        change("school", school_id, {"name": name}),
        change(
            "academic_year",
            "y-2026",
            {"name": "2026/2027", "start": "2026-09-01", "end": "2027-05-31"},
        ),
        change(
            "period",
            "q1",
            {
                "academic_year_id": "y-2026",
                "kind": "quarter",
                "name": "1 четверть",
                "start": "2026-09-01",
                "end": "2026-10-24",
            },
        ),
    ]


def _calendar() -> list[dict[str, Any]]:
    return [
        *school_year("sch-1", "Школа №1"),
        change(
            "holiday",
            "h-1",
            {
                "name": "Осенние каникулы",
                "kind": "vacation",
                "start": "2026-10-26",
                "end": "2026-11-03",
            },
        ),
        change("subject", "math", {"name": "Математика"}),
        change("subject", "rus", {"name": "Русский язык"}),
        change("work_kind", "kr", {"name": "Контрольная работа", "default_weight": 2}),
        change("attendance_code", "Н", {"title": "не был", "category": "unexcused"}),
        change("bell_slot", "b-1", {"number": 1, "start": "08:30", "end": "09:15"}),
    ]


def _journal() -> list[dict[str, Any]]:
    lesson = {
        "slot": 1,
        "group_id": "g-math",
        "subject_id": "math",
        "teacher_id": "t-2",
        "status": "held",
    }
    return [
        change(
            "group",
            "g-math",
            {
                "name": "7Б математика",
                "kind": "whole_class",
                "subject_id": "math",
                "class_unit_ids": ["cls-7b"],
            },
        ),
        *[
            change(
                "membership",
                f"m-{n}",
                {"group_id": "g-math", "student_id": f"s-{n}", "from": "2026-09-01"},
            )
            for n in (1, 2, 3)
        ],
        change("lesson", "l-1", {**lesson, "date": "2026-09-07", "topic": "Дроби"}),
        change(
            "lesson",
            "l-2",
            {
                **lesson,
                "date": "2026-09-14",
                "topic": "Проценты",
                "substitution": {"original_teacher_id": "t-1", "reason": "болезнь"},
            },
        ),
        change(
            "work",
            "w-1",
            {
                "date": "2026-09-14",
                "group_id": "g-math",
                "subject_id": "math",
                "lesson_id": "l-2",
                "kind": "kr",
                "weight": 2,
                "is_control": True,
            },
        ),
        change(
            "mark",
            "mk-1",
            {
                "student_id": "s-1",
                "subject_id": "math",
                "date": "2026-09-07",
                "lesson_id": "l-1",
                "raw": "5",
            },
        ),
        change(
            "mark",
            "mk-2",
            {
                "student_id": "s-1",
                "subject_id": "math",
                "date": "2026-09-14",
                "work_id": "w-1",
                "raw": "4-",
                "weight": 2,
            },
        ),
        change(
            "mark",
            "mk-3",
            {
                "student_id": "s-2",
                "subject_id": "math",
                "date": "2026-09-07",
                "lesson_id": "l-1",
                "raw": "3/5",
            },
        ),
        change(
            "attendance",
            "a-1",
            {"student_id": "s-3", "lesson_id": "l-1", "code": "Н", "category": "unexcused"},
        ),
        change(
            "homework",
            "hw-1",
            {
                "subject_id": "math",
                "group_id": "g-math",
                "lesson_id": "l-1",
                "assigned_on": "2026-09-07",
                "due_date": "2026-09-14",
                "text": "**№ 12**, 14",
            },
        ),
        change(
            "recommendation",
            "r-1",
            {
                "student_id": "s-3",
                "teacher_id": "t-2",
                "date": "2026-09-14",
                "text": "Повторить дроби",
            },
        ),
    ]


def small_school(**envelope_args: Any) -> dict[str, Any]:
    return envelope([*_calendar(), *_people(), *_journal()], **envelope_args)


def write_json(path: Path, document: Any) -> Path:
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return path
