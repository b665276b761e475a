"""A hand-made class for the analytics tests, small enough to compute every figure by hand.

Class 5А, first quarter (1 September – 24 October 2026), looked at on Wednesday
16 September 2026. Four students: Алексеев Антон (s-a), Борисова Белла (s-b), Васильев
Виктор (s-c) and Григорьева Галина (s-d), who left on 5 September and so counts nowhere.
Maths and Russian are taught to the whole class; English is split: s-a and s-b in the
first subgroup, s-c in the second.

Lessons up to today (the cancelled one and the one tomorrow do not count):
- maths: 1, 3, 8, 10, 15 September (14 September cancelled, 17 September still ahead);
- Russian: 2, 9, 16 September;
- English: subgroup 1 on 4 and 11 September, subgroup 2 on 4 September.
So s-a and s-b were due at 10 lessons, s-c at 9: 29 in all; 12, 11 and 6 by week.

Attendance: s-c ill on 8 and 10 September (maths) and away without reason on 9 September
(Russian): 3 of 9 missed; s-a excused on 11 September (English): 1 of 10; s-b late on
15 September. Attendance of the class: 25 of 29.

Marks (weight 1 unless said; «5-» counts 5 under the default rules):
- s-a: maths 5 (1 Sep), 4 ×2 (8 Sep), 5- (15 Sep); Russian 4 (2 Sep), 3/5 (9 Sep);
  English «зачёт» (4 Sep).
- s-b: maths 4 (3 Sep), 5 ×2 (10 Sep); Russian 2 (2 Sep), 3 (9 Sep), 2 (16 Sep);
  English 5 (4 Sep).
- s-c: maths 2 (1 Sep), 2/2 (3 Sep), 3 (15 Sep); Russian 4 (16 Sep); English «н/а».
- s-d: maths 5 (1 Sep), before leaving.

The figures worked out by hand are in tests/db/test_analytics.py, next to the asserts.
"""

from __future__ import annotations

from typing import Any

from tests.support.factories import change, envelope, school_year

CLASS_ID = "cls-5a"
SCHOOL_ID = "sch-5"


def _calendar() -> list[dict[str, Any]]:
    return [
        *school_year(SCHOOL_ID, "Школа №5"),
        change("subject", "math", {"name": "Математика"}),
        change("subject", "rus", {"name": "Русский язык"}),
        change("subject", "eng", {"name": "Английский язык"}),
        change("attendance_code", "Б", {"title": "болел", "category": "illness"}),
        change("attendance_code", "У", {"title": "уважительная", "category": "excused"}),
        change("attendance_code", "Н", {"title": "не был", "category": "unexcused"}),
        change("attendance_code", "ОП", {"title": "опоздал", "category": "late"}),
        change("bell_slot", "b-1", {"number": 1, "start": "08:30", "end": "09:15"}),
    ]


STUDENTS = {
    "s-a": ("Алексеев", "Антон"),
    "s-b": ("Борисова", "Белла"),
    "s-c": ("Васильев", "Виктор"),
    "s-d": ("Григорьева", "Галина"),
}


def _people() -> list[dict[str, Any]]:
    rows = [
        change(
            "teacher",
            "t-5",
            {"last_name": "Дмитриева", "first_name": "Дарья", "middle_name": "Сергеевна"},
        ),
        change(
            "teacher",
            "t-dep",
            {"last_name": "Завучева", "first_name": "Зоя", "roles": ["teacher", "deputy_head"]},
        ),
        change(
            "class_unit",
            CLASS_ID,
            {
                "name": "5А",
                "grade": 5,
                "letter": "А",
                "academic_year_id": "y-2026",
                "class_teacher_id": "t-5",
            },
        ),
    ]
    for sid, (last, first) in STUDENTS.items():
        data: dict[str, Any] = {"last_name": last, "first_name": first, "class_unit_id": CLASS_ID}
        if sid == "s-d":
            data["left_at"] = "2026-09-05"
        rows.append(change("student", sid, data))
    guardians = {
        "g-a": ("Алексеева", "Алла", "s-a", "electronic"),
        "g-b": ("Борисов", "Борис", "s-b", "paper"),
        "g-c": ("Васильева", "Вера", "s-c", "electronic"),
    }
    for gid, (last, first, sid, delivery) in guardians.items():
        rows.append(
            change(
                "guardian",
                gid,
                {"last_name": last, "first_name": first, "delivery": delivery, "phone": ""},
            )
        )
        link = {"guardian_id": gid, "student_id": sid, "relation": "mother"}
        rows.append(change("guardian_link", f"gl-{gid}", link))
    return rows


def _group(group_id: str, name: str, kind: str, subject: str, members: list[str]) -> list[Any]:
    data = {"name": name, "kind": kind, "subject_id": subject, "class_unit_ids": [CLASS_ID]}
    rows = [change("group", group_id, data)]
    for sid in members:
        member = {"group_id": group_id, "student_id": sid, "from": "2026-09-01"}
        rows.append(change("membership", f"m-{group_id}-{sid}", member))
    return rows


def _groups() -> list[dict[str, Any]]:
    return [
        *_group("g-math", "5А математика", "whole_class", "math", ["s-a", "s-b", "s-c", "s-d"]),
        *_group("g-rus", "5А русский язык", "whole_class", "rus", ["s-a", "s-b", "s-c"]),
        *_group("g-eng-1", "5А английский, 1 подгруппа", "subgroup", "eng", ["s-a", "s-b"]),
        *_group("g-eng-2", "5А английский, 2 подгруппа", "subgroup", "eng", ["s-c"]),
    ]


LESSONS = {
    # id: (date, group, subject, status)
    "l-m1": ("2026-09-01", "g-math", "math", "held"),
    "l-m2": ("2026-09-03", "g-math", "math", "held"),
    "l-m3": ("2026-09-08", "g-math", "math", "held"),
    "l-m4": ("2026-09-10", "g-math", "math", "held"),
    "l-mx": ("2026-09-14", "g-math", "math", "cancelled"),
    "l-m5": ("2026-09-15", "g-math", "math", "held"),
    "l-m6": ("2026-09-17", "g-math", "math", "scheduled"),
    "l-r1": ("2026-09-02", "g-rus", "rus", "held"),
    "l-r2": ("2026-09-09", "g-rus", "rus", "held"),
    "l-r3": ("2026-09-16", "g-rus", "rus", "held"),
    "l-e1": ("2026-09-04", "g-eng-1", "eng", "held"),
    "l-e2": ("2026-09-11", "g-eng-1", "eng", "held"),
    "l-e3": ("2026-09-04", "g-eng-2", "eng", "held"),
}

MARKS = [
    # (student, lesson, raw, weight, extra)
    ("s-a", "l-m1", "5", 1, {}),
    ("s-a", "l-m3", "4", 2, {}),
    ("s-a", "l-m5", "5-", 1, {}),
    ("s-a", "l-r1", "4", 1, {}),
    ("s-a", "l-r2", "3/5", 1, {}),
    ("s-a", "l-e1", "зачёт", 1, {"scale": "pass_fail"}),
    ("s-b", "l-m2", "4", 1, {}),
    ("s-b", "l-m4", "5", 2, {}),
    ("s-b", "l-r1", "2", 1, {}),
    ("s-b", "l-r2", "3", 1, {}),
    ("s-b", "l-r3", "2", 1, {}),
    ("s-b", "l-e1", "5", 1, {}),
    ("s-c", "l-m1", "2", 1, {}),
    ("s-c", "l-m2", "2/2", 1, {}),
    ("s-c", "l-m5", "3", 1, {}),
    ("s-c", "l-r3", "4", 1, {}),
    ("s-c", "l-e3", "н/а", 1, {"kind": "not_certified", "period_id": "q1"}),
    ("s-d", "l-m1", "5", 1, {}),
]

ATTENDANCE = [
    # (student, lesson, code, category)
    ("s-c", "l-m3", "Б", "illness"),
    ("s-c", "l-m4", "Б", "illness"),
    ("s-c", "l-r2", "Н", "unexcused"),
    ("s-a", "l-e2", "У", "excused"),
    ("s-b", "l-m5", "ОП", "late"),
]


def _journal() -> list[dict[str, Any]]:
    rows = []
    for lesson_id, (day, group, subject, status) in LESSONS.items():
        data = {
            "date": day,
            "slot": 1,
            "group_id": group,
            "subject_id": subject,
            "teacher_id": "t-5",
            "status": status,
        }
        rows.append(change("lesson", lesson_id, data))
    for n, (sid, lesson_id, raw, weight, extra) in enumerate(MARKS):
        day, _group_id, subject, _status = LESSONS[lesson_id]
        mark = {
            "student_id": sid,
            "subject_id": subject,
            "date": day,
            "lesson_id": lesson_id,
            "raw": raw,
            "weight": weight,
            **extra,
        }
        rows.append(change("mark", f"mk-{n}", mark))
    for n, (sid, lesson_id, code, category) in enumerate(ATTENDANCE):
        row = {"student_id": sid, "lesson_id": lesson_id, "code": code, "category": category}
        rows.append(change("attendance", f"a-{n}", row))
    return rows


def analytics_school(**envelope_args: Any) -> dict[str, Any]:
    """The hand-made class as one exchange document."""
    args = {"school_id": SCHOOL_ID, **envelope_args}
    return envelope([*_calendar(), *_people(), *_groups(), *_journal()], **args)
