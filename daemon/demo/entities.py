"""The school, its year, vocabularies, staff, people, groups, timetable, lessons and works
as exchange changes.
"""

from __future__ import annotations

from collections.abc import Iterator

from otmetka.daemon.demo import names, texts
from otmetka.daemon.demo.common import (
    OFFSET,
    SCHOOL_ID,
    SUBJECT_IDS,
    Json,
    change,
    compact,
    iso,
    timestamp,
)
from otmetka.daemon.demo.model import Lesson, School

BELLS = (
    ("08:30", "09:15"),
    ("09:25", "10:10"),
    ("10:30", "11:15"),  # two long breaks for the school canteen
    ("11:35", "12:20"),
    ("12:30", "13:15"),
    ("13:25", "14:10"),
    ("14:20", "15:05"),
    ("15:15", "16:00"),
)


def emit_school(school: School) -> Iterator[Json]:
    setup = school.cal.setup
    head = next(t for t in school.staff if "head" in t.roles)
    yield change(
        "school",
        SCHOOL_ID,
        setup,
        {
            "name": names.SCHOOL_NAME,
            "short_name": names.SCHOOL_SHORT,
            "address": names.SCHOOL_ADDRESS,
            "head_name": head.human.full,
        },
    )
    yield from _emit_year(school)


def _emit_year(school: School) -> Iterator[Json]:
    cal, setup, year = school.cal, school.cal.setup, school.cal.year
    ay = f"ay-{year}"
    yield change(
        "academic_year",
        ay,
        setup,
        {"name": f"{year}/{year + 1}", "start": iso(cal.start), "end": iso(cal.end)},
    )
    for n, (start, end) in enumerate(cal.quarters, 1):
        yield change(
            "period",
            f"per-{year}-q{n}",
            setup,
            {
                "academic_year_id": ay,
                "kind": "quarter",
                "name": f"{n} четверть",
                "start": iso(start),
                "end": iso(end),
            },
        )
    yield change(
        "period",
        f"per-{year}-year",
        setup,
        {
            "academic_year_id": ay,
            "kind": "year",
            "name": f"{year}/{year + 1} учебный год",
            "start": iso(cal.start),
            "end": iso(cal.end),
        },
    )


def emit_vocabularies() -> Iterator[Json]:
    setup = "2020-08-20T10:00:00" + OFFSET  # vocabularies predate any school year
    for subject, (name, short) in names.SUBJECTS.items():
        yield change("subject", SUBJECT_IDS[subject], setup, {"name": name, "short_name": short})
    for kind, (name, weight, _) in texts.WORK_KINDS.items():
        yield change("work_kind", kind, setup, {"name": name, "default_weight": weight})
    for code, title, category in texts.ATTENDANCE_CODES:
        yield change("attendance_code", code, setup, {"title": title, "category": category})


def emit_staff(school: School) -> Iterator[Json]:
    for t in school.staff:
        data = t.human.data() | {
            "email": t.email,
            "phone": t.phone,
            "position": t.position,
            "roles": t.roles,
        }
        yield change("teacher", t.id, school.cal.setup, data)
    for cls in school.classes:
        yield change(
            "class_unit",
            cls.id,
            school.cal.setup,
            {
                "name": cls.name,
                "grade": cls.grade,
                "letter": cls.letter,
                "academic_year_id": f"ay-{school.cal.year}",
                "class_teacher_id": cls.teacher,
            },
        )


def emit_holidays(school: School) -> Iterator[Json]:
    cal, setup = school.cal, school.cal.setup
    first_grade = [c.id for c in school.classes if c.grade == 1]
    for v in cal.vacations:
        data: Json = {
            "name": v.name,
            "kind": "vacation",
            "start": iso(v.start),
            "end": iso(v.end),
        }
        if v.grade1_only:
            data["class_unit_ids"] = first_grade
        yield change("holiday", f"hol-{cal.year}-{v.key}", setup, data)
    for name, start, end in cal.public:
        yield change(
            "holiday",
            f"hol-{compact(start)}",
            setup,
            {"name": name, "kind": "holiday", "start": iso(start), "end": iso(end)},
        )
    if cal.short_day:
        yield change(
            "holiday",
            f"hol-short-{compact(cal.short_day)}",
            setup,
            {
                "name": "Сокращённый предпраздничный день: уроки по 35 минут",
                "kind": "short_day",
                "start": iso(cal.short_day),
                "end": iso(cal.short_day),
            },
        )


def emit_people(school: School) -> Iterator[Json]:
    setup = school.cal.setup
    for p in school.pupils:
        data = p.human.data() | {
            "class_unit_id": school.classes[p.cls].id,
            "birth_date": iso(p.birth),
        }
        stamp = setup
        if p.left_at is not None:
            data["left_at"], stamp = iso(p.left_at), timestamp(p.left_at, "12:00")
        yield change("student", p.id, stamp, data)
    for g in school.guardians:
        data = g.human.data() | {"email": g.email, "phone": g.phone, "delivery": g.delivery}
        yield change("guardian", f"grd-{g.num}", setup, data)
    for gi, pi in school.links:
        g, p = school.guardians[gi], school.pupils[pi]
        yield change(
            "guardian_link",
            f"gl-{g.num}-{p.num}",
            setup,
            {
                "guardian_id": f"grd-{g.num}",
                "student_id": p.id,
                "relation": g.relation,
                "is_legal_representative": g.legal,
            },
        )


def emit_groups(school: School) -> Iterator[Json]:
    cal, setup = school.cal, school.cal.setup
    for g in school.groups:
        yield change(
            "group",
            g.id,
            setup,
            {
                "name": g.name,
                "kind": g.kind,
                "subject_id": SUBJECT_IDS[g.subject],
                "class_unit_ids": [school.classes[c].id for c in g.classes],
            },
        )
    for g in school.groups:
        for pi in g.members:
            p = school.pupils[pi]
            data = {"group_id": g.id, "student_id": p.id, "from": iso(cal.start)}
            if p.left_at is not None:
                data["to"] = iso(p.left_at)
            yield change("membership", f"mem-{g.key}-{p.num}", setup, data)


def emit_timetable(school: School) -> Iterator[Json]:
    cal, setup = school.cal, school.cal.setup
    for n, (start, end) in enumerate(BELLS, 1):
        yield change("bell_slot", f"bell-{n}", setup, {"number": n, "start": start, "end": end})
    for g, positions in school.slots.items():
        group = school.groups[g]
        for weekday, slot in positions:
            yield change(
                "timetable_entry",
                f"tt-{group.key}-{weekday}-{slot}",
                setup,
                {
                    "group_id": group.id,
                    "subject_id": SUBJECT_IDS[group.subject],
                    "teacher_id": group.teacher,
                    "weekday": weekday,
                    "slot": slot,
                    "room": school.teacher[group.teacher].room,
                    "valid_from": iso(cal.start),
                    "valid_to": iso(cal.end),
                },
            )


def _lesson_stamp(school: School, lesson: Lesson) -> str:
    if lesson.date <= school.cal.as_of:
        return timestamp(lesson.date, "15:30")
    changed = bool(lesson.original or lesson.moved_from or lesson.moved_to)
    changed = changed or lesson.status == "cancelled"
    return timestamp(school.cal.as_of, "12:00") if changed else school.cal.setup


def _lesson_data(school: School, lesson: Lesson) -> Json:
    group = school.groups[lesson.group]
    data: Json = {
        "date": iso(lesson.date),
        "slot": lesson.slot,
        "group_id": group.id,
        "subject_id": SUBJECT_IDS[group.subject],
        "teacher_id": lesson.teacher,
        "room": lesson.room,
        "topic": lesson.topic,
        "status": lesson.status,
    }
    if lesson.original:
        data["substitution"] = {"original_teacher_id": lesson.original, "reason": lesson.reason}
    if lesson.moved_from:
        data["moved_from"] = {"date": iso(lesson.moved_from[0]), "slot": lesson.moved_from[1]}
    if lesson.moved_to:
        data["moved_to"] = {"date": iso(lesson.moved_to[0]), "slot": lesson.moved_to[1]}
    return data


def emit_lessons(school: School) -> Iterator[Json]:
    order = sorted(
        range(len(school.lessons)),
        key=lambda i: (school.lessons[i].date, school.lessons[i].slot, school.lessons[i].key),
    )
    for i in order:
        lesson = school.lessons[i]
        yield change(
            "lesson", lesson.id, _lesson_stamp(school, lesson), _lesson_data(school, lesson)
        )


def emit_works(school: School) -> Iterator[Json]:
    cal = school.cal
    for work in school.works:
        lesson, group = school.lessons[work.lesson], school.groups[work.group]
        weight = texts.WORK_KINDS[work.kind][1]
        planned = min(cal.quarters[lesson.quarter][0], cal.as_of)
        yield change(
            "work",
            f"wrk-{work.key}",
            timestamp(planned, "09:00"),
            {
                "date": iso(lesson.date),
                "group_id": group.id,
                "subject_id": SUBJECT_IDS[group.subject],
                "lesson_id": lesson.id,
                "kind": work.kind,
                "title": work.title,
                "weight": weight,
                "is_control": work.kind in ("kr", "dict"),
            },
        )
