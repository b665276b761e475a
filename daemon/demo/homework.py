"""Homework for the lessons of grades 2–11 and teachers' recommendations to pupils."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator

from otmetka.daemon.demo import names, texts
from otmetka.daemon.demo.common import (
    DJ,
    SUBJECT_IDS,
    Json,
    change,
    is_pass_fail,
    iso,
    subject_category,
    timestamp,
)
from otmetka.daemon.demo.lessons import topics_for
from otmetka.daemon.demo.model import Group, Lesson, Pupil, School

LIGHT_HOMEWORK = ("art", "music", "tech", "pe", "proj")


def _fill(rng: random.Random, template: str, **extra: str) -> str:
    """A text template with plausible exercise, page and paragraph numbers."""
    n, p, par = rng.randrange(10, 600), rng.randrange(5, 220), rng.randrange(1, 40)
    return template.format(
        n=n,
        n2=n + rng.randint(1, 5),
        n3=n + rng.randint(6, 12),
        p=p,
        p2=p + rng.randint(1, 4),
        par=par,
        par2=par + rng.randint(1, 3),
        q=rng.randint(2, 6),
        q2=rng.randint(7, 10),
        link=texts.RESH.format(n=rng.randrange(1000, 8000)),
        **extra,
    )


def iter_homework(school: School, rng: random.Random) -> Iterator[Json]:
    """Homework for most lessons of grades 2–11 up to two weeks ahead of as_of."""
    horizon = school.cal.as_of + DJ(days=14)
    for group in school.groups:
        if group.grade < 2:
            continue
        live = [
            school.lessons[li]
            for li in group.lessons
            if school.lessons[li].status in ("held", "scheduled")
        ]
        category = subject_category(group.subject)
        share = 0.3 if category in LIGHT_HOMEWORK else 0.85
        for pos, lesson in enumerate(live):
            if lesson.date > horizon:
                break
            if rng.random() >= share:
                continue
            due = live[pos + 1].date if pos + 1 < len(live) else lesson.date + DJ(days=7)
            text = _fill(rng, rng.choice(texts.HOMEWORK[category]), topic=lesson.base)
            yield _homework(school, group, lesson, due, text, [])
            if rng.random() < 0.03:
                yield from _individual_homework(school, rng, group, lesson, due)


def _individual_homework(
    school: School, rng: random.Random, group: Group, lesson: Lesson, due: dt.date
) -> Iterator[Json]:
    members = [pi for pi in group.members if _present_on(school.pupils[pi], lesson.date)]
    if members:
        chosen = sorted(rng.sample(members, min(len(members), rng.randint(1, 2))))
        text = _fill(rng, rng.choice(texts.INDIVIDUAL_HOMEWORK), topic=lesson.base)
        yield _homework(school, group, lesson, due, text, [school.pupils[i].id for i in chosen])


def _present_on(pupil: Pupil, day: dt.date) -> bool:
    return pupil.left_at is None or pupil.left_at >= day


def _homework(
    school: School, group: Group, lesson: Lesson, due: dt.date, text: str, students: list[str]
) -> Json:
    data: Json = {
        "subject_id": SUBJECT_IDS[group.subject],
        "group_id": group.id,
        "lesson_id": lesson.id,
        "assigned_on": iso(lesson.date),
        "due_date": iso(due),
        "text": text,
    }
    if students:
        data["student_ids"] = students
    ident = f"hw-{lesson.key}" + ("-i" if students else "")
    posted = timestamp(min(lesson.date, school.cal.as_of), "17:00")
    return change("homework", ident, posted, data)


def iter_recommendations(school: School, rng: random.Random) -> Iterator[Json]:
    """Notes from teachers for ~20 % of the pupils still at school."""
    cal = school.cal
    days = [d for d in cal.days if cal.start + DJ(days=14) <= d <= cal.as_of] or [cal.as_of]
    active = [i for i, p in enumerate(school.pupils) if p.left_at is None]
    count = 0
    for pi in sorted(rng.sample(active, round(0.2 * len(active)))):
        for k in range(2 if rng.random() < 0.3 else 1):
            count += 1
            yield _recommendation(school, rng, pi, k, f"rec-{count:04d}", rng.choice(days))


def _recommendation(
    school: School, rng: random.Random, pi: int, k: int, ident: str, day: dt.date
) -> Json:
    pupil = school.pupils[pi]
    absent_share = pupil.absences / max(1, pupil.absences + pupil.attended)
    graded = [
        school.groups[g]
        for g in pupil.groups
        if school.groups[g].grade > 1
        and not is_pass_fail(school.groups[g].subject, school.groups[g].grade)
    ]
    group: Group | None = None
    if k == 0 and absent_share > 0.12:
        kind = "absent"
    elif not graded or rng.random() < 0.25:
        kind = "class"
    else:
        group = rng.choice(graded)
        average = pupil.mark_sum / pupil.mark_weight if pupil.mark_weight else pupil.ability
        kind = "weak" if average < 3.5 else "strong" if average >= 4.5 else "mid"
    return _recommendation_change(school, rng, pupil, group, kind, ident, day)


def _recommendation_change(
    school: School,
    rng: random.Random,
    pupil: Pupil,
    group: Group | None,
    kind: str,
    ident: str,
    day: dt.date,
) -> Json:
    subject = names.SUBJECTS[group.subject][0] if group else ""
    topic = topics_for(group.subject, group.grade)[0] if group else ""
    if group:
        held = [school.lessons[li].base for li in group.lessons if school.lessons[li].date <= day]
        topic = held[-1] if held else topic
    text = _fill(
        rng,
        rng.choice(texts.RECOMMENDATIONS[kind]),
        subject=subject,
        topic=topic,
        name=pupil.human.first,
        weekday=rng.choice(texts.WEEKDAYS_RU),
        missed="пропустил" if pupil.human.male else "пропустила",
    )
    teacher = group.teacher if group else school.classes[pupil.cls].teacher or ""
    data: Json = {"student_id": pupil.id, "teacher_id": teacher}
    if group:
        data["subject_id"] = SUBJECT_IDS[group.subject]
    data.update(date=iso(day), text=text)
    return change("recommendation", ident, timestamp(day, "18:00"), data)
