"""Lessons of the term with their topics, substitutions, moves and cancellations, and the
assessed works (the test schedule).
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import random

from otmetka.daemon.demo import names, texts
from otmetka.daemon.demo.common import MAX_SLOT, Pick, compact, is_pass_fail, subject_category
from otmetka.daemon.demo.model import Group, Lesson, School, Work


@functools.cache
def topics_for(subject: str, grade: int) -> tuple[str, ...]:
    bands = texts.TOPICS.get(subject, ())
    for first, last, topics in bands:
        if first <= grade <= last:
            return topics
    return bands[-1][2] if bands else ("Повторение",)


@functools.cache
def _topic_step(base: str, step: str) -> str:
    return f"{base}. {step}"


def _topic(group: Group, n: int) -> tuple[str, str]:
    """The n-th lesson's topic: each topic spans several lessons over the school year."""
    topics = topics_for(group.subject, group.grade)
    per_topic = max(1, math.ceil(group.hours * 33 / len(topics)))
    base = topics[(n // per_topic) % len(topics)]
    step = n % per_topic
    if step == 0:
        return base, base
    steps = texts.TOPIC_STEPS.get(subject_category(group.subject), texts.TOPIC_STEPS["science"])
    return _topic_step(base, steps[(step - 1) % len(steps)]), base


def make_lessons(school: School) -> None:
    cal = school.cal
    by_weekday: dict[int, list[tuple[int, int]]] = {d: [] for d in range(1, 6)}
    for g, positions in school.slots.items():
        for weekday, slot in positions:
            by_weekday[weekday].append((slot, g))
    for entries in by_weekday.values():
        entries.sort(key=lambda e: (e[0], school.groups[e[1]].key))
    counters = [0] * len(school.groups)
    for day in cal.days:
        for slot, g in by_weekday[day.isoweekday()]:
            group = school.groups[g]
            if group.grade == 1 and day in cal.grade1_closed:
                continue
            topic, base = _topic(group, counters[g])
            counters[g] += 1
            status = "held" if day <= cal.as_of else "scheduled"
            key = f"{group.key}-{compact(day)}-{slot}"
            lesson = Lesson(
                key,
                f"les-{key}",
                day,
                slot,
                g,
                group.teacher,
                school.teacher[group.teacher].room,
                topic,
                base,
                status,
                cal.quarter_of[day],
            )
            group.lessons.append(len(school.lessons))
            school.lessons.append(lesson)


class _Busy:
    """Who is taken at which real date and slot: for substitutes and moved lessons."""

    def __init__(self, school: School) -> None:
        self.school = school
        self.teachers: set[tuple[str, dt.date, int]] = set()
        self.classes: set[tuple[int, dt.date, int]] = set()
        for lesson in school.lessons:
            self.add(lesson)

    def add(self, lesson: Lesson) -> None:
        self.teachers.add((lesson.teacher, lesson.date, lesson.slot))
        for cls in self.school.groups[lesson.group].classes:
            self.classes.add((cls, lesson.date, lesson.slot))

    def class_free(self, group: Group, day: dt.date, slot: int) -> bool:
        return all((c, day, slot) not in self.classes for c in group.classes)


def _substitutions(school: School, rng: random.Random, busy: _Busy) -> None:
    """Teachers away for 1–5 days (illness, courses…); a free colleague takes each lesson."""
    by_teacher_day: dict[tuple[str, dt.date], list[int]] = {}
    for i, lesson in enumerate(school.lessons):
        by_teacher_day.setdefault((lesson.teacher, lesson.date), []).append(i)
    teaching = [t for t in school.staff if "teacher" in t.roles]
    reasons, days = Pick(names.SUBSTITUTION_REASONS), school.cal.days
    away: set[tuple[str, dt.date]] = set()
    target, done = round(0.03 * len(school.lessons)), 0
    for _ in range(20000):
        if done >= target:
            break
        teacher, start = rng.choice(teaching), rng.randrange(len(days))
        reason = reasons(rng)
        for day in days[start : start + rng.choice((1, 2, 2, 3, 3, 4, 5))]:
            if (teacher.id, day) in away:
                continue
            away.add((teacher.id, day))
            for i in by_teacher_day.get((teacher.id, day), []):
                done += _substitute(school, rng, busy, school.lessons[i], reason, away)


def _substitute(
    school: School,
    rng: random.Random,
    busy: _Busy,
    lesson: Lesson,
    reason: str,
    away: set[tuple[str, dt.date]],
) -> int:
    if lesson.original is not None or lesson.status == "cancelled":
        return 0
    absent = school.teacher[lesson.teacher]
    for pool in (school.specialists(absent.specialty), school.staff):
        free = [
            t.id
            for t in pool
            if "teacher" in t.roles
            and t.id != absent.id
            and (t.id, lesson.date, lesson.slot) not in busy.teachers
            and (t.id, lesson.date) not in away
        ]
        if free:
            substitute = rng.choice(free)
            busy.teachers.add((substitute, lesson.date, lesson.slot))
            lesson.original, lesson.teacher, lesson.reason = absent.id, substitute, reason
            return 1
    lesson.status = "cancelled"  # nobody free: the lesson does not take place
    return 0


def _moves(school: School, rng: random.Random, busy: _Busy) -> None:
    """About 1 % of lessons move to another day, after that day's lessons."""
    lessons = school.lessons
    target = max(1, round(0.01 * len(lessons)))
    day_index = {day: i for i, day in enumerate(school.cal.days)}
    candidates = [
        i
        for i, les in enumerate(lessons)
        if les.original is None and les.status in ("held", "scheduled")
    ]
    moved = 0
    for i in rng.sample(candidates, min(len(candidates), 3 * target)):
        if moved >= target:
            break
        place = _free_place(school, rng, busy, lessons[i], day_index)
        if place is not None:
            _move(school, busy, lessons[i], *place)
            moved += 1


def _free_place(
    school: School, rng: random.Random, busy: _Busy, lesson: Lesson, day_index: dict[dt.date, int]
) -> tuple[dt.date, int] | None:
    group, days = school.groups[lesson.group], school.cal.days
    for offset in rng.sample(range(1, 8), 7):
        at = day_index[lesson.date] + offset
        if at >= len(days) or (group.grade == 1 and days[at] in school.cal.grade1_closed):
            continue
        for slot in range(1, MAX_SLOT + 1):
            if (lesson.teacher, days[at], slot) not in busy.teachers and busy.class_free(
                group, days[at], slot
            ):
                return days[at], slot
    return None


def _move(school: School, busy: _Busy, lesson: Lesson, day: dt.date, slot: int) -> None:
    group = school.groups[lesson.group]
    lesson.status, lesson.moved_to = "moved", (day, slot)
    key = f"{group.key}-{compact(day)}-{slot}"
    status = "held" if day <= school.cal.as_of else "scheduled"
    new = Lesson(
        key,
        f"les-{key}",
        day,
        slot,
        lesson.group,
        lesson.teacher,
        lesson.room,
        lesson.topic,
        lesson.base,
        status,
        school.cal.quarter_of[day],
        moved_from=(lesson.date, lesson.slot),
    )
    group.lessons.append(len(school.lessons))
    school.lessons.append(new)
    busy.add(new)


def _cancellations(school: School, rng: random.Random) -> None:
    lessons = school.lessons
    already = sum(1 for les in lessons if les.status == "cancelled")
    candidates = [
        i
        for i, les in enumerate(lessons)
        if les.original is None and les.moved_from is None and les.status in ("held", "scheduled")
    ]
    count = min(len(candidates), max(1, round(0.01 * len(lessons)) - already))
    for i in rng.sample(candidates, count):
        lessons[i].status = "cancelled"


def disrupt(school: School, rng: random.Random) -> None:
    busy = _Busy(school)
    _substitutions(school, rng, busy)
    _moves(school, rng, busy)
    _cancellations(school, rng)
    for group in school.groups:
        group.lessons.sort(key=lambda i: (school.lessons[i].date, school.lessons[i].slot))


CONTROL_CATEGORIES = ("rus", "math", "science", "eng", "lit", "inf")


def make_works(school: School, rng: random.Random) -> None:
    """1–3 assessed works per group and quarter; those after as_of are the test schedule."""
    for group in school.groups:
        if group.grade == 1 or is_pass_fail(group.subject, group.grade):
            continue  # no marks in the 1st grade; no control works in pass/fail subjects
        by_quarter: dict[int, list[int]] = {}
        for li in group.lessons:
            lesson = school.lessons[li]
            if lesson.status in ("held", "scheduled"):
                by_quarter.setdefault(lesson.quarter, []).append(li)
        for quarter, lessons in by_quarter.items():
            _quarter_works(school, rng, group, quarter, lessons)


def _quarter_works(
    school: School, rng: random.Random, group: Group, quarter: int, lessons: list[int]
) -> None:
    if len(lessons) < 4:
        return
    category = subject_category(group.subject)
    count = rng.randint(1, 3) if group.hours >= 2 else rng.randint(1, 2)
    first = len(lessons) // 5  # not in the first weeks of a quarter
    picks = sorted(rng.sample(range(first, len(lessons)), min(count, len(lessons) - first)))
    for k, pos in enumerate(picks):
        if k == len(picks) - 1 and category in CONTROL_CATEGORIES:
            kind = "dict" if category == "rus" and rng.random() < 0.5 else "kr"
        else:
            kind = rng.choice(texts.WORK_MIX.get(category, ("pr",)))
        lesson = school.lessons[lessons[pos]]
        title = texts.WORK_KINDS[kind][2].format(topic=lesson.base)
        lesson.work = len(school.works)
        key = f"{group.key}-q{quarter + 1}-{k + 1}"
        school.works.append(Work(key, group.idx, lessons[pos], kind, title))
