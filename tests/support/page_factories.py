"""Schools for the page tests: the small school of factories.py with what a page must show
(a cancelled and a moved lesson, homework due this week, a subgroup, a student who left),
and a generated two-class school whose size can grow without changing its shape."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from tests.support.factories import change, envelope, small_school

# Wednesday: the week is 14–19 September 2026; the substituted lesson l-2 is on Monday.
TODAY = dt.date(2026, 9, 16)

HOSTILE_TEXT = (
    "<script>alert(1)</script> [x](javascript:alert(1)) <img src=x onerror=alert(1)> "
    '<iframe src="https://evil.example"></iframe><style>body{display:none}</style> '
    '<a href="JaVaScRiPt:alert(2)" onclick="alert(3)">y</a> <svg onload=alert(4)></svg> **ok**'
)


def _lesson(lesson_id: str, day: str, slot: int, **extra: Any) -> dict[str, Any]:
    data = {
        "date": day,
        "slot": slot,
        "group_id": "g-rus",
        "subject_id": "rus",
        "teacher_id": "t-1",
        "room": "12",
        **extra,
    }
    return change("lesson", lesson_id, data)


def _homework(hw_id: str, group: str, subject: str, due: str, text: str, **extra: Any) -> Any:
    data = {
        "subject_id": subject,
        "group_id": group,
        "assigned_on": "2026-09-14",
        "due_date": due,
        "text": text,
        **extra,
    }
    return change("homework", hw_id, data)


def _calendar_extras() -> list[dict[str, Any]]:
    return [
        change("subject", "eng", {"name": "Английский язык"}),
        change("bell_slot", "b-2", {"number": 2, "start": "09:25", "end": "10:10"}),
        change("work_kind", "sr", {"name": "Самостоятельная работа", "default_weight": 1}),
        change("attendance_code", "Б", {"title": "болел", "category": "illness"}),
        change("attendance_code", "ОП", {"title": "опоздал", "category": "late"}),
        change(
            "holiday",
            "h-2",
            {
                "name": "День народного единства",
                "kind": "holiday",
                "start": "2026-11-04",
                "end": "2026-11-04",
            },
        ),
    ]


def _people_extras() -> list[dict[str, Any]]:
    student = {"last_name": "Сидоров", "first_name": "Пётр", "class_unit_id": "cls-7b"}
    return [
        change("student", "s-4", {**student, "left_at": "2026-09-10"}),
        change("guardian", "g-3", {"last_name": "Сидорова", "first_name": "Нина"}),
        change(
            "guardian_link",
            "gl-4",
            {"guardian_id": "g-3", "student_id": "s-4", "relation": "mother"},
        ),
    ]


def _groups_extras() -> list[dict[str, Any]]:
    rus = {"name": "7Б русский язык", "kind": "whole_class", "subject_id": "rus"}
    eng = {"name": "7Б, английский язык, 1 подгруппа", "kind": "subgroup", "subject_id": "eng"}
    rows = [
        change("group", "g-rus", {**rus, "class_unit_ids": ["cls-7b"]}),
        change("group", "g-eng-1", {**eng, "class_unit_ids": ["cls-7b"]}),
        change(
            "membership",
            "m-eng-1",
            {"group_id": "g-eng-1", "student_id": "s-1", "from": "2026-09-01"},
        ),
    ]
    for n in (1, 2, 3, 4):
        member = {"group_id": "g-rus", "student_id": f"s-{n}", "from": "2026-09-01"}
        rows.append(change("membership", f"m-rus-{n}", member))
    return rows


def _journal_extras() -> list[dict[str, Any]]:
    return [
        _lesson("l-3", "2026-09-15", 2, status="cancelled"),
        _lesson("l-4", "2026-09-16", 1, status="moved", moved_to={"date": "2026-09-18", "slot": 2}),
        _lesson("l-5", "2026-09-18", 2, moved_from={"date": "2026-09-16", "slot": 1}),
        _lesson("l-7", "2026-09-08", 2, status="held", topic="Причастие"),
        change(
            "lesson",
            "l-6",
            {
                "date": "2026-09-17",
                "slot": 1,
                "group_id": "g-eng-1",
                "subject_id": "eng",
                "teacher_id": "t-2",
                "room": "21",
            },
        ),
        change(
            "work",
            "w-2",
            {
                "date": "2026-09-23",
                "group_id": "g-rus",
                "subject_id": "rus",
                "kind": "sr",
                "title": "Причастный оборот",
            },
        ),
        change(
            "mark",
            "mk-4",
            {
                "student_id": "s-1",
                "subject_id": "rus",
                "date": "2026-09-08",
                "lesson_id": "l-7",
                "raw": "зачёт",
                "scale": "pass_fail",
            },
        ),
        change(
            "attendance",
            "a-2",
            {"student_id": "s-2", "lesson_id": "l-7", "code": "Б", "category": "illness"},
        ),
        change(
            "attendance",
            "a-3",
            {
                "student_id": "s-1",
                "lesson_id": "l-2",
                "code": "ОП",
                "category": "late",
                "minutes_late": 5,
            },
        ),
        _homework("hw-2", "g-rus", "rus", "2026-09-18", "Упр. 45, *выучить* правило"),
        _homework("hw-3", "g-rus", "rus", "2026-09-18", "Доклад о причастиях", student_ids=["s-1"]),
        change(
            "recommendation",
            "r-2",
            {
                "student_id": "s-1",
                "teacher_id": "t-1",
                "subject_id": "rus",
                "date": "2026-09-15",
                "text": "Больше читать **вслух**",
            },
        ),
    ]


def _make_deputy(changes: list[dict[str, Any]]) -> None:
    for record in changes:
        if record["type"] == "teacher" and record["id"] == "t-2":
            record["data"]["roles"] = ["teacher", "deputy_head"]


def page_school(*extra: dict[str, Any]) -> dict[str, Any]:
    """The small school plus what the pages must show; t-2 becomes deputy head."""
    document = copy.deepcopy(small_school())
    _make_deputy(document["changes"])
    document["changes"] += [
        *_calendar_extras(),
        *_people_extras(),
        *_groups_extras(),
        *_journal_extras(),
        *extra,
    ]
    return document


def hostile_homework() -> dict[str, Any]:
    return _homework("hw-evil", "g-math", "math", "2026-09-17", HOSTILE_TEXT)


def period_final(raw: str = "4") -> dict[str, Any]:
    data = {
        "student_id": "s-1",
        "subject_id": "math",
        "date": "2026-10-23",
        "period_id": "q1",
        "raw": raw,
        "kind": "period_final",
    }
    return change("mark", "mk-final", data)


# --- a generated school of two classes -----------------------------------------------------


def _class_people(cls: str, size: int) -> list[dict[str, Any]]:
    rows = [
        change("teacher", f"t-{cls}", {"last_name": "Учитель", "first_name": cls.upper()}),
        change(
            "class_unit",
            cls,
            {
                "name": cls.upper(),
                "grade": 5,
                "academic_year_id": "y-2026",
                "class_teacher_id": f"t-{cls}",
            },
        ),
        change(
            "group",
            f"g-{cls}",
            {"name": f"{cls} весь класс", "kind": "whole_class", "class_unit_ids": [cls]},
        ),
    ]
    for n in range(size):
        sid, gid = f"s-{cls}-{n}", f"g-{cls}-{n}"
        rows += [
            change(
                "student",
                sid,
                {"last_name": f"Ученик{n:03}", "first_name": "Имя", "class_unit_id": cls},
            ),
            change("guardian", gid, {"last_name": f"Родитель{n:03}", "first_name": "Имя"}),
            change(
                "guardian_link",
                f"gl-{sid}",
                {"guardian_id": gid, "student_id": sid, "relation": "father"},
            ),
            change(
                "membership",
                f"m-{sid}",
                {"group_id": f"g-{cls}", "student_id": sid, "from": "2026-09-01"},
            ),
        ]
    return rows


def _class_journal(cls: str, size: int) -> list[dict[str, Any]]:
    rows = []
    for day in (7, 8, 14, 15, 16):
        lesson_id = f"l-{cls}-{day}"
        rows.append(
            change(
                "lesson",
                lesson_id,
                {
                    "date": f"2026-09-{day:02}",
                    "slot": 1,
                    "group_id": f"g-{cls}",
                    "subject_id": "math",
                    "teacher_id": f"t-{cls}",
                },
            )
        )
        for n in range(size):
            sid = f"s-{cls}-{n}"
            rows.append(
                change(
                    "mark",
                    f"mk-{lesson_id}-{n}",
                    {
                        "student_id": sid,
                        "subject_id": "math",
                        "date": f"2026-09-{day:02}",
                        "lesson_id": lesson_id,
                        "raw": str(2 + (n + day) % 4),
                    },
                )
            )
        rows.append(
            change(
                "attendance",
                f"a-{lesson_id}",
                {
                    "student_id": f"s-{cls}-0",
                    "lesson_id": lesson_id,
                    "code": "Н",
                    "category": "unexcused",
                },
            )
        )
    rows.append(_homework(f"hw-{cls}", f"g-{cls}", "math", "2026-09-17", "Задача **1**"))
    return rows


def two_class_school(per_class: int) -> dict[str, Any]:
    calendar = [
        c
        for c in small_school()["changes"]
        if c["type"]
        in {
            "school",
            "academic_year",
            "period",
            "holiday",
            "subject",
            "work_kind",
            "attendance_code",
            "bell_slot",
        }
    ]
    changes = list(calendar)
    for cls in ("c5a", "c5b"):
        changes += _class_people(cls, per_class) + _class_journal(cls, per_class)
    return envelope(changes)
