"""Teaching groups: whole classes, subgroups, the elective stream and individual plans, and
the class teacher of each class.
"""

from __future__ import annotations

import random

from otmetka.daemon.demo import names
from otmetka.daemon.demo.common import DJ, is_split
from otmetka.daemon.demo.model import Class, Group, School


def _add_group(
    school: School,
    key: str,
    name: str,
    kind: str,
    subject: str,
    classes: list[int],
    teacher: str,
    hours: int,
    members: list[int],
) -> Group:
    grade = min(school.classes[c].grade for c in classes)
    group = Group(len(school.groups), key, name, kind, subject, classes, teacher, hours, grade)
    group.members = list(members)
    school.groups.append(group)
    return group


def _bundle_teacher(
    school: School, cls: int, specialty: str, part: int, hours: int, avoid: str = ""
) -> str:
    """One teacher per (class, specialty, subgroup): 7Б's algebra and geometry go together."""
    key = (cls, specialty, part)
    teacher = school.bundles.get(key)
    if teacher is None:
        pool = [t for t in school.specialists(specialty) if t.id != avoid]
        teacher = min(pool, key=lambda t: (t.load, t.num))
        school.bundles[key] = teacher
    teacher.load += hours
    return teacher.id


def _class_groups(school: School, cls: Class) -> None:
    for subject, hours in names.CURRICULUM[cls.grade]:
        title = f"{cls.name} — {names.SUBJECTS[subject][0]}"
        if is_split(subject, cls.grade):
            _subgroups(school, cls, subject, hours, title)
            continue
        if cls.grade <= 4 and subject in names.PRIMARY_CORE:
            teacher = cls.teacher or ""
        else:
            teacher = _bundle_teacher(school, cls.idx, names.SPECIALTY[subject], 0, hours)
        key = f"{cls.key}-{subject}"
        _add_group(
            school, key, title, "whole_class", subject, [cls.idx], teacher, hours, cls.pupils
        )


def _subgroups(school: School, cls: Class, subject: str, hours: int, title: str) -> None:
    """Two subgroups by halves of the class list, each with its own teacher, same slots."""
    half = (len(cls.pupils) + 1) // 2
    first = ""
    for part, members in ((1, cls.pupils[:half]), (2, cls.pupils[half:])):
        teacher = _bundle_teacher(school, cls.idx, names.SPECIALTY[subject], part, hours, first)
        first = first or teacher
        _add_group(
            school,
            f"{cls.key}-{subject}-{part}",
            f"{title}, {part} группа",
            "subgroup",
            subject,
            [cls.idx],
            teacher,
            hours,
            members,
        )


def _stream(school: School, rng: random.Random) -> None:
    """An elective across two parallel classes (10А and 10Б, or 10А and 11А)."""
    tenth = [c for c in school.classes if c.grade == 10]
    eleventh = [c for c in school.classes if c.grade == 11]
    pair = tenth[:2] if len(tenth) >= 2 else [tenth[0], eleventh[0]]
    members: list[int] = []
    for cls in pair:
        members.extend([p for p in cls.pupils if rng.random() < 0.6] or cls.pupils[:1])
    teacher = _bundle_teacher(school, pair[0].idx, "hist", 0, 1)
    class_names = ", ".join(c.name for c in pair)
    _add_group(
        school,
        "-".join(c.key for c in pair) + "-fin",
        f"{class_names} — Финансовая грамотность (курс по выбору)",
        "stream",
        "fin",
        [c.idx for c in pair],
        teacher,
        1,
        members,
    )


def _individual_plans(school: School) -> None:
    """Each chosen pupil learns one subject alone with the class's teacher of it."""
    for n, pi in enumerate(school.individual):
        pupil = school.pupils[pi]
        subject = "rus" if n == 0 else "alg" if pupil.grade >= 7 else "math"
        whole = next(
            g
            for g in school.groups
            if g.kind == "whole_class" and g.subject == subject and g.classes == [pupil.cls]
        )
        whole.members.remove(pi)
        school.teacher[whole.teacher].load += 2
        h = pupil.human
        _add_group(
            school,
            f"ip-{pupil.num}-{subject}",
            f"{h.last} {h.first} ({school.classes[pupil.cls].name}) — "
            f"{names.SUBJECTS[subject][0]}, индивидуальный учебный план",
            "individual_plan",
            subject,
            [pupil.cls],
            whole.teacher,
            2,
            [pi],
        )


def _choose_special_pupils(school: School, rng: random.Random) -> None:
    """Who left this year, who learns on an individual plan, who is not certified."""
    cal, pupils = school.cal, school.pupils
    pool = [i for i, p in enumerate(pupils) if 5 <= p.grade <= 9]
    rng.shuffle(pool)
    for pi in pool[: 2 if school.students >= 50 else 1]:
        # Some weeks ago, but after the year began (on September 1 itself: that day).
        earliest = max(cal.start, min(cal.start + DJ(days=3), cal.as_of - DJ(days=1)))
        pupils[pi].left_at = max(cal.as_of - DJ(days=rng.randrange(7, 40)), earliest)
    rest = pool[2:]
    school.individual = rest[:1]
    school.individual += [p for p in rest[1:] if pupils[p].cls != pupils[rest[0]].cls][:1]
    school.uncertified = next(p for p in rest if p not in school.individual)


def _class_teachers(school: School) -> None:
    """A class teacher for grades 5–11: the teacher with most hours in the class."""
    taken = {c.teacher for c in school.classes if c.teacher}
    hours: dict[tuple[int, str], int] = {}
    for g in school.groups:
        if g.kind in ("whole_class", "subgroup"):
            hours[(g.classes[0], g.teacher)] = hours.get((g.classes[0], g.teacher), 0) + g.hours
    free = [t.id for t in school.staff if t.roles == ["teacher"] and t.specialty != "primary"]
    for cls in school.classes:
        if cls.teacher:
            continue
        ranked = sorted((-h, t) for (c, t), h in hours.items() if c == cls.idx)
        choice = next((t for _, t in ranked if t in free and t not in taken), None)
        choice = choice or next((t for t in free if t not in taken), free[0])
        cls.teacher = choice
        taken.add(choice)
    for cls in school.classes:
        roles = school.teacher[cls.teacher or ""].roles
        if "class_teacher" not in roles:
            roles.append("class_teacher")


def make_groups(school: School, rng: random.Random) -> None:
    _choose_special_pupils(school, rng)
    for cls in school.classes:
        _class_groups(school, cls)
    _stream(school, rng)
    _individual_plans(school)
    _class_teachers(school)
    for g in school.groups:
        for pi in g.members:
            school.pupils[pi].groups.append(g.idx)
