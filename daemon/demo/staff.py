"""The teaching staff: how many teachers of each specialty, their names, rooms and contacts."""

from __future__ import annotations

import itertools
import math
import random

from otmetka.daemon.demo import names
from otmetka.daemon.demo.common import SPLIT_FROM, is_split
from otmetka.daemon.demo.model import Class, Teacher
from otmetka.daemon.demo.people import Namer, phone, translit

SPECIALTY_ORDER = ("rus", "math", "eng", "hist", "geo", "bio", "phys", "chem", "inf", "art",
                   "tech", "music", "pe")  # fmt: skip


def _specialty_hours(classes: list[Class]) -> dict[str, int]:
    hours = dict.fromkeys(SPECIALTY_ORDER, 0)
    for cls in classes:
        for subject, count in names.CURRICULUM[cls.grade]:
            if cls.grade <= 4 and subject in names.PRIMARY_CORE:
                continue  # the class teacher of a primary class teaches these
            hours[names.SPECIALTY[subject]] += count * (2 if is_split(subject, cls.grade) else 1)
    hours["hist"] += 1  # the elective stream
    return hours


def _staffing(classes: list[Class], students: int) -> dict[str, int]:
    """Teachers per specialty: enough for ~20 hours a week each, ~1 teacher per 12 students."""
    hours = _specialty_hours(classes)
    need = {s: max(2 if s in SPLIT_FROM else 1, math.ceil(h / 20)) for s, h in hours.items()}
    primary = sum(1 for c in classes if c.grade <= 4)
    for _ in range(max(12, round(students / 12)) - primary - sum(need.values())):
        busiest = max(SPECIALTY_ORDER, key=lambda s: hours[s] / need[s])
        need[busiest] += 1
    return need


def _room(index: int) -> str:
    return f"{2 + index // 20}{index % 20 + 1:02d}"


def _new_teacher(
    namer: Namer, staff: list[Teacher], specialty: str, room: str, roles: list[str]
) -> Teacher:
    share = 0.95 if specialty == "primary" else names.FEMALE_SHARE.get(specialty, 0.85)
    human = namer.adult(namer.rng.random() >= share)
    position = names.POSITIONS.get(specialty, "директор")
    teacher = Teacher(f"{len(staff) + 1:03d}", human, specialty, position, room, roles)
    staff.append(teacher)
    return teacher


def make_staff(rng: random.Random, classes: list[Class], students: int) -> list[Teacher]:
    namer = Namer(rng)
    staff: list[Teacher] = []
    _new_teacher(namer, staff, "head", "Приёмная", ["head"])
    rooms = itertools.count()
    for specialty, count in _staffing(classes, students).items():
        for i in range(count):
            gym = ("Большой спортзал", "Малый спортзал")[i % 2]
            room = gym if specialty == "pe" else _room(next(rooms))
            _new_teacher(namer, staff, specialty, room, ["teacher"])
    deputy = next(t for t in staff if t.specialty == "math")
    deputy.roles = ["teacher", "deputy_head"]
    deputy.position = "заместитель директора по УВР, учитель математики"
    deputy.load = 12  # administrative duties: fewer lessons
    for cls in classes:
        if cls.grade <= 4:
            room = f"1{cls.idx + 1:02d}"
            cls.teacher = _new_teacher(namer, staff, "primary", room, ["teacher"]).id
    _staff_contacts(staff)
    return staff


def _staff_contacts(staff: list[Teacher]) -> None:
    used: set[str] = set()
    for i, teacher in enumerate(staff):
        h = teacher.human
        local = f"{translit(h.last)}.{translit(h.first)[0]}{translit(h.middle)[0]}"
        address, k = f"{local}@example.ru", 2
        while address in used:
            address, k = f"{local}{k}@example.ru", k + 1
        used.add(address)
        teacher.email, teacher.phone = address, phone(500000 + i + 1)
