"""A realistic, deterministic demo school as one exchange document (format v1, full mode).

`generate_school(students, seed, as_of)` builds what `otmetka demo` imports: classes 1–11,
families with siblings, teachers, a timetable without clashes, a term of lessons with
substitutions, moves and cancellations, works, marks, absences, homework and
recommendations, over the Russian school calendar of the year that contains `as_of`.

Output is a pure function of (students, seed, as_of): every stage draws from its own
`random.Random(f"{seed}:{stage}")`, so a change in one stage does not reshuffle the others,
and no set of strings is ever iterated (string hashing is salted per process).

This module holds the public entry points and the order of the stages; each stage lives in
its own module of this package.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
from collections.abc import Iterator
from pathlib import Path

from otmetka.daemon.demo.common import SCHOOL_ID, Json, timestamp
from otmetka.daemon.demo.entities import (
    emit_groups,
    emit_holidays,
    emit_lessons,
    emit_people,
    emit_school,
    emit_staff,
    emit_timetable,
    emit_vocabularies,
    emit_works,
)
from otmetka.daemon.demo.gradebook import absence_plan, iter_attendance, iter_marks
from otmetka.daemon.demo.groups import make_groups
from otmetka.daemon.demo.homework import iter_homework, iter_recommendations
from otmetka.daemon.demo.lessons import disrupt, make_lessons, make_works
from otmetka.daemon.demo.model import School
from otmetka.daemon.demo.people import make_people, plan_classes
from otmetka.daemon.demo.school_year import make_calendar
from otmetka.daemon.demo.staff import make_staff
from otmetka.daemon.demo.timetable import make_timetable
from otmetka.site_builder import atomic

TZ_NAME = "Europe/Moscow"


def _rng(seed: int, stage: str) -> random.Random:
    # A str seed is hashed with SHA-512 by `random`, so it is stable across processes.
    return random.Random(f"{seed}:{stage}")


def _build(students: int, seed: int, as_of: dt.date) -> School:
    if students < 11:
        raise ValueError("the demo school needs at least 11 students: one class per grade")
    cal = make_calendar(as_of)
    classes = plan_classes(students)
    people = make_people(_rng(seed, "people"), classes, cal.year)
    staff = make_staff(_rng(seed, "staff"), classes, students)
    school = School(students, cal, classes, people.pupils, people.guardians, people.links, staff)
    make_groups(school, _rng(seed, "groups"))
    make_timetable(school, _rng(seed, "timetable"))
    make_lessons(school)
    disrupt(school, _rng(seed, "disruptions"))
    make_works(school, _rng(seed, "works"))
    absence_plan(school, _rng(seed, "absences"))
    return school


def iter_changes(
    students: int = 300, seed: int = 1, as_of: dt.date | None = None
) -> Iterator[Json]:
    """The changes of the demo document, referenced entities first, built lazily."""
    school = _build(students, seed, as_of or dt.date.today())
    yield from emit_school(school)
    yield from emit_vocabularies()
    yield from emit_staff(school)
    yield from emit_holidays(school)
    yield from emit_people(school)
    yield from emit_groups(school)
    yield from emit_timetable(school)
    yield from emit_lessons(school)
    yield from emit_works(school)
    yield from iter_marks(school, _rng(seed, "marks"))
    yield from iter_attendance(school)
    yield from iter_homework(school, _rng(seed, "homework"))
    yield from iter_recommendations(school, _rng(seed, "recommendations"))


def document_header(students: int = 300, seed: int = 1, as_of: dt.date | None = None) -> Json:
    """The envelope of the demo document, without its changes."""
    day = as_of or dt.date.today()
    return {
        "format": "otmetka-exchange",
        "version": 1,
        "school_id": SCHOOL_ID,
        "tz": TZ_NAME,
        "mode": "full",
        "cursor": f"demo-{seed}-{students}",
        "generated_at": timestamp(day, "18:00"),
    }


def generate_school(students: int = 300, seed: int = 1, as_of: dt.date | None = None) -> Json:
    """One exchange document (plain JSON-ready dict) of a demo school with `students` pupils.

    Same (students, seed, as_of) gives byte-identical output; `as_of=None` means today.
    """
    day = as_of or dt.date.today()
    document = document_header(students, seed, day)
    document["changes"] = list(iter_changes(students, seed, day))
    return document


def write_exchange_file(doc: Json, path: str | os.PathLike[str]) -> None:
    """Write the document as compact UTF-8 JSON, atomically, one change at a time.

    The bytes equal `json.dumps(doc, ensure_ascii=False, separators=(",", ":"))` but the
    whole text is never held in memory at once.
    """
    with atomic.atomic_writer(Path(path)) as out:
        out.writelines(_encoded(doc))


def _encoded(doc: Json) -> Iterator[bytes]:
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    header = {key: value for key, value in doc.items() if key != "changes"}
    yield (encode(header)[:-1] + ("," if header else "") + '"changes":[').encode()
    for i, change in enumerate(doc.get("changes", [])):
        yield (("," if i else "") + encode(change)).encode()
    yield b"]}"
