"""A realistic, deterministic demo school as one exchange document (format v1, full mode).

`generate_school(students, seed, as_of)` builds what `otmetka demo` imports: classes 1–11,
families with siblings, teachers, a timetable without clashes, a term of lessons with
substitutions, moves and cancellations, works, marks, absences, homework and
recommendations, over the Russian school calendar of the year that contains `as_of`.

Output is a pure function of (students, seed, as_of): every stage draws from its own
`random.Random(f"{seed}:{stage}")`, so a change in one stage does not reshuffle the others,
and no set of strings is ever iterated (string hashing is salted per process).
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import json
import math
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import holidays

from otmetka.daemon.demo import names as N

SCHOOL_ID = "demo-school"
TZ_NAME = "Europe/Moscow"
OFFSET = "+03:00"
CLASS_SIZE = 25
LETTERS = "АБВГДЕЖЗИКЛМНОПРСТ"  # Ё and Й are never used as class letters
MAX_SLOT = 8
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
SPLIT_FROM = {"eng": 2, "inf": 7}  # subjects taught in two subgroups from this grade on
SPECIALTY_ORDER = ("rus", "math", "eng", "hist", "geo", "bio", "phys", "chem", "inf", "art",
                   "tech", "music", "pe")  # fmt: skip
SINGLE_ABSENCES = (("Н", 35), ("У", 20), ("УП", 20), ("НП", 25))
CATEGORY_OF_CODE = {code: category for code, _, category in N.ATTENDANCE_CODES}
DJ = dt.timedelta

Json = dict[str, Any]


# --- small helpers -------------------------------------------------------------------------


@functools.cache
def _iso(day: dt.date) -> str:
    """ISO date; cached so the many marks of one day share one string."""
    return day.isoformat()


@functools.cache
def _stamp(day: dt.date, hhmm: str) -> str:
    return f"{day.isoformat()}T{hhmm}:00{OFFSET}"


def _change(kind: str, ident: str, updated_at: str, data: Json) -> Json:
    return {"type": kind, "id": ident, "op": "upsert", "updated_at": updated_at, "data": data}


def _rng(seed: int, stage: str) -> random.Random:
    # A str seed is hashed with SHA-512 by `random`, so it is stable across processes.
    return random.Random(f"{seed}:{stage}")


class _Pick:
    """Weighted choice from a (names, weights) list, optionally avoiding some names."""

    def __init__(self, table: tuple[tuple[str, ...], tuple[int, ...]]) -> None:
        self.names = table[0]
        self.cum = list(itertools.accumulate(table[1]))

    def __call__(self, rng: random.Random, avoid: Sequence[str] = ()) -> str:
        while True:
            name = rng.choices(self.names, cum_weights=self.cum)[0]
            if name not in avoid:
                return name


def gendered_surname(masculine: str, male: bool) -> str:
    """Иванов -> Иванова, Островский -> Островская, Толстой -> Толстая, Черных stays."""
    if male:
        return masculine
    if "-" in masculine:
        return "-".join(gendered_surname(part, False) for part in masculine.split("-"))
    for ending, feminine in (("ский", "ская"), ("цкий", "цкая"), ("ой", "ая"), ("ый", "ая")):
        if masculine.endswith(ending):
            return masculine[: -len(ending)] + feminine
    if masculine.endswith(("ов", "ев", "ёв", "ин", "ын")):
        return masculine + "а"
    return masculine


def translit(text: str) -> str:
    """ASCII spelling for e-mail addresses: «Семёнова» -> «semenova»."""
    return "".join(N.TRANSLIT.get(ch, "") for ch in text.lower())


def _sort_key(text: str) -> str:
    # Code-point order puts ё after я; a class list sorts it as е.
    return text.replace("ё", "е").replace("Ё", "Е")


def _phone(number: int) -> str:
    """Fake but well-formed numbers: +7 900 000-12-34."""
    return f"+7 900 {number // 10000:03d}-{number // 100 % 100:02d}-{number % 100:02d}"


def _poisson(rng: random.Random, lam: float) -> int:
    limit, k, product = math.exp(-lam), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


# --- calendar ------------------------------------------------------------------------------


@dataclass
class _Vacation:
    key: str
    name: str
    start: dt.date
    end: dt.date
    grade1_only: bool = False


@dataclass
class _Calendar:
    year: int
    as_of: dt.date
    quarters: list[tuple[dt.date, dt.date]]
    term_end: dt.date
    vacations: list[_Vacation]
    public: list[tuple[str, dt.date, dt.date]]
    closed: frozenset[dt.date]
    grade1_closed: frozenset[dt.date]
    days: list[dt.date]  # school days from September 1 through term_end
    short_day: dt.date | None
    quarter_of: dict[dt.date, int] = field(default_factory=dict)

    @property
    def start(self) -> dt.date:
        return self.quarters[0][0]

    @property
    def end(self) -> dt.date:
        return self.quarters[-1][1]

    @property
    def setup(self) -> str:
        """When the year was set up upstream: the stamp of everything static."""
        return _stamp(self.start - DJ(days=4), "10:00")


def _days(first: dt.date, last: dt.date) -> Iterator[dt.date]:
    for offset in range((last - first).days + 1):
        yield first + DJ(days=offset)


def _quarters(year: int) -> list[tuple[dt.date, dt.date]]:
    d = dt.date
    return [
        (d(year, 9, 1), d(year, 10, 25)),
        (d(year, 11, 4), d(year, 12, 28)),
        (d(year + 1, 1, 12), d(year + 1, 3, 27)),
        (d(year + 1, 4, 6), d(year + 1, 5, 31)),
    ]


def _vacations(year: int) -> list[_Vacation]:
    d = dt.date
    return [
        _Vacation("autumn", "Осенние каникулы", d(year, 10, 26), d(year, 11, 3)),
        _Vacation("winter", "Зимние каникулы", d(year, 12, 29), d(year + 1, 1, 11)),
        _Vacation(
            "grade1",
            "Дополнительные каникулы для 1-х классов",
            d(year + 1, 2, 14),
            d(year + 1, 2, 22),
            grade1_only=True,
        ),
        _Vacation("spring", "Весенние каникулы", d(year + 1, 3, 28), d(year + 1, 4, 5)),
    ]


def _public_holidays(first: dt.date, last: dt.date) -> list[tuple[str, dt.date, dt.date]]:
    """Public holidays and transferred days off, consecutive days merged into one entry."""
    table = holidays.country_holidays("RU", years=[first.year, last.year], language="ru")
    merged: list[tuple[list[str], dt.date, dt.date]] = []
    for day, name in sorted(table.items()):
        if not first <= day <= last:
            continue
        if merged and merged[-1][2] + DJ(days=1) == day:
            names, start, _ = merged[-1]
            merged[-1] = ([*names, name] if name not in names else names, start, day)
        else:
            merged.append(([name], day, day))
    return [(", ".join(names), start, end) for names, start, end in merged]


def _calendar(as_of: dt.date) -> _Calendar:
    year = as_of.year if as_of >= dt.date(as_of.year, 9, 1) else as_of.year - 1
    quarters = _quarters(year)
    # Lessons run through the quarter that contains as_of (in a vacation: the next one).
    term_end = next((end for _, end in quarters if as_of <= end), quarters[-1][1])
    vacations = _vacations(year)
    public = _public_holidays(quarters[0][0], quarters[-1][1])
    closed = {day for v in vacations if not v.grade1_only for day in _days(v.start, v.end)}
    closed.update(day for _, start, end in public for day in _days(start, end))
    grade1 = {day for v in vacations if v.grade1_only for day in _days(v.start, v.end)}
    days = [d for d in _days(quarters[0][0], term_end) if d.weekday() < 5 and d not in closed]
    cal = _Calendar(
        year,
        as_of,
        quarters,
        term_end,
        vacations,
        public,
        frozenset(closed),
        frozenset(grade1),
        days,
        _short_day(year, closed),
    )
    cal.quarter_of = {day: _quarter_index(quarters, day) for day in days}
    return cal


def _quarter_index(quarters: list[tuple[dt.date, dt.date]], day: dt.date) -> int:
    return next((i for i, (_, end) in enumerate(quarters) if day <= end), len(quarters) - 1)


def _short_day(year: int, closed: set[dt.date]) -> dt.date | None:
    """The school day before International Women's Day: lessons of 35 minutes."""
    day = dt.date(year + 1, 3, 7)
    for _ in range(10):
        if day.weekday() < 5 and day not in closed:
            return day
        day -= DJ(days=1)
    return None


# --- people --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Human:
    last: str
    first: str
    middle: str
    male: bool

    def data(self) -> Json:
        return {"last_name": self.last, "first_name": self.first, "middle_name": self.middle}

    @property
    def full(self) -> str:
        return f"{self.last} {self.first} {self.middle}"


class _Namer:
    """Russian names with their generational frequencies and correct gendered forms."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.boys, self.girls = _Pick(N.BOYS), _Pick(N.GIRLS)
        self.men, self.women = _Pick(N.MEN), _Pick(N.WOMEN)
        self.old_men, self.grandmothers = _Pick(N.OLD_MEN), _Pick(N.GRANDMOTHERS)
        self.surnames = _Pick(N.SURNAMES)

    def surname(self) -> str:
        return self.surnames(self.rng)

    def double_surname(self) -> str:
        first = self.surname()
        return f"{first}-{self.surnames(self.rng, avoid=(first,))}"

    def patronymic(self, father: str, male: bool) -> str:
        return N.PATRONYMICS[father][0 if male else 1]

    def adult(self, male: bool, surname: str | None = None, old: bool = False) -> _Human:
        if old:
            first = self.old_men(self.rng) if male else self.grandmothers(self.rng)
        else:
            first = self.men(self.rng) if male else self.women(self.rng)
        last = gendered_surname(surname or self.surname(), male)
        return _Human(last, first, self.patronymic(self.old_men(self.rng), male), male)

    def child(self, male: bool, surname: str, father: str, avoid: Sequence[str]) -> _Human:
        first = self.boys(self.rng, avoid) if male else self.girls(self.rng, avoid)
        return _Human(gendered_surname(surname, male), first, self.patronymic(father, male), male)


@dataclass(slots=True)
class _Guardian:
    human: _Human
    relation: str
    legal: bool
    num: str = ""
    email: str = ""
    phone: str = ""
    delivery: str = "electronic"


@dataclass(slots=True)
class _Pupil:
    human: _Human
    cls: int
    grade: int
    family: int
    num: str = ""
    id: str = ""  # "stu-" + num, kept so that marks share one string
    birth: dt.date = dt.date(2000, 1, 1)
    ability: float = 4.0
    left_at: dt.date | None = None
    groups: list[int] = field(default_factory=list)
    guardians: list[int] = field(default_factory=list)
    # filled while marks are generated; recommendations read them
    mark_sum: float = 0.0
    mark_weight: float = 0.0
    absences: int = 0
    attended: int = 0


@dataclass(slots=True)
class _Class:
    idx: int
    grade: int
    letter: str
    size: int
    pupils: list[int] = field(default_factory=list)
    teacher: str | None = None

    @property
    def key(self) -> str:
        return f"{self.grade}{N.TRANSLIT[self.letter.lower()]}"

    @property
    def id(self) -> str:
        return f"cls-{self.key}"

    @property
    def name(self) -> str:
        return f"{self.grade}{self.letter}"


def _grade_sizes(students: int) -> dict[int, int]:
    """Students per grade: fuller primary school, fewer seniors (many leave after 9th)."""
    weight = {g: 1.1 if g <= 4 else 1.0 if g <= 9 else 0.55 for g in range(1, 12)}
    total = sum(weight.values())
    raw = {g: students * w / total for g, w in weight.items()}
    sizes = {g: max(1, int(r)) for g, r in raw.items()}
    order = sorted(raw, key=lambda g: (-(raw[g] - int(raw[g])), g))
    for i in itertools.count():
        rest = students - sum(sizes.values())
        if rest == 0:
            break
        g = order[i % len(order)]
        if rest > 0:
            sizes[g] += 1
        elif sizes[g] > 1:
            sizes[g] -= 1
    return sizes


def _plan_classes(students: int) -> list[_Class]:
    classes: list[_Class] = []
    for grade, size in _grade_sizes(students).items():
        count = max(1, min(size, round(size / CLASS_SIZE), len(LETTERS)))
        for i in range(count):
            share = size // count + (1 if i < size % count else 0)
            classes.append(_Class(len(classes), grade, LETTERS[i], share))
    return classes


def _group_siblings(rng: random.Random, grades: list[int]) -> list[list[int]]:
    """Split student places into families; ~15 % of families have two or three children."""
    pool = list(range(len(grades)))
    rng.shuffle(pool)
    multi = round(len(grades) * 0.15 / 1.17)  # 1.17 children per family on average
    families: list[list[int]] = []
    for f in range(multi):
        members = [pool.pop()]
        for _ in range(2 if f < round(multi * 0.12) else 1):
            taken = [grades[m] for m in members]  # siblings are never in the same grade
            j = next((k for k in range(len(pool) - 1, -1, -1) if grades[pool[k]] not in taken), -1)
            if j >= 0:
                members.append(pool.pop(j))
        families.append(members)
    families.extend([place] for place in pool)
    return families


def _guardian_roles(rng: random.Random) -> tuple[str, ...]:
    r = rng.random()
    if r < 0.62:
        return ("mother", "father")
    if r < 0.86:
        return ("mother",)
    if r < 0.91:
        return ("father",)
    if r < 0.95:
        return ("mother", "grandmother")
    return ("grandmother",) if r < 0.975 else ("guardian",)


def _family_guardians(namer: _Namer, surname: str, father: str) -> list[_Guardian]:
    rng, roles = namer.rng, _guardian_roles(namer.rng)
    result: list[_Guardian] = []
    for role in roles:
        if role == "father":
            middle = namer.patronymic(namer.old_men(rng), True)
            result.append(_Guardian(_Human(surname, father, middle, True), "father", True))
        elif role == "mother":
            own = surname if "-" in surname or rng.random() < 0.9 else namer.surname()
            result.append(_Guardian(namer.adult(False, own), "mother", True))
        elif role == "grandmother":
            alone = len(roles) == 1  # then she is the legal guardian of the child
            result.append(_Guardian(namer.adult(False, surname, old=True), "grandmother", alone))
        else:
            result.append(_Guardian(namer.adult(rng.random() < 0.2), "guardian", True))
    return result


@dataclass
class _People:
    pupils: list[_Pupil]
    guardians: list[_Guardian]
    links: list[tuple[int, int]]  # (guardian index, pupil index)


def _make_people(rng: random.Random, classes: list[_Class], year: int) -> _People:
    namer = _Namer(rng)
    places = [c.idx for c in classes for _ in range(c.size)]
    families = _group_siblings(rng, [classes[p].grade for p in places])
    doubles = set(rng.sample(range(len(families)), max(1, round(0.02 * len(families)))))
    pupils: list[_Pupil] = []
    family_guardians: list[list[_Guardian]] = []
    for f, members in enumerate(families):
        surname = namer.double_surname() if f in doubles else namer.surname()
        father = namer.men(rng)
        taken: list[str] = []
        for place in members:
            child = namer.child(rng.random() < 0.5, surname, father, taken)
            taken.append(child.first)
            pupils.append(_Pupil(child, places[place], classes[places[place]].grade, f))
        family_guardians.append(_family_guardians(namer, surname, father))
    pupils = _number_pupils(rng, pupils, classes, year)
    return _link_families(rng, pupils, family_guardians)


def _number_pupils(
    rng: random.Random, pupils: list[_Pupil], classes: list[_Class], year: int
) -> list[_Pupil]:
    """Order as in a class journal (class, then alphabet) and give ids in that order."""
    pupils.sort(key=lambda p: (p.cls, _sort_key(p.human.full)))
    for i, pupil in enumerate(pupils):
        pupil.num = f"{i + 1:04d}"
        pupil.id = f"stu-{pupil.num}"
        classes[pupil.cls].pupils.append(i)
        late = 365 if rng.random() < 0.05 else 0  # started school a year later
        pupil.birth = dt.date(year - pupil.grade - 6, 3, 1) + DJ(days=rng.randrange(365) - late)
        pupil.ability = min(5.8, max(2.85, rng.gauss(4.0, 0.55)))
    return pupils


def _link_families(
    rng: random.Random, pupils: list[_Pupil], family_guardians: list[list[_Guardian]]
) -> _People:
    children: dict[int, list[int]] = {}
    for i, pupil in enumerate(pupils):
        children.setdefault(pupil.family, []).append(i)
    guardians: list[_Guardian] = []
    links: list[tuple[int, int]] = []
    for family, kids in children.items():  # in the order of each family's first child
        for guardian in family_guardians[family]:
            for child in kids:
                links.append((len(guardians), child))
                pupils[child].guardians.append(len(guardians))
            guardians.append(guardian)
    _contact_details(rng, guardians)
    return _People(pupils, guardians, links)


def _contact_details(rng: random.Random, guardians: list[_Guardian]) -> None:
    """~10 % without e-mail, ~5 % on paper delivery; fake phones and example.* addresses."""
    count = len(guardians)
    no_email = set(rng.sample(range(count), round(0.10 * count)))
    paper = set(rng.sample(range(count), round(0.05 * count)))
    used: set[str] = set()
    for i, guardian in enumerate(guardians):
        guardian.num = f"{i + 1:04d}"
        guardian.phone = _phone(i + 1) if rng.random() < 0.97 else ""
        guardian.email = "" if i in no_email else _email(rng, guardian.human, used)
        guardian.delivery = "paper" if i in paper else "electronic"


def _email(rng: random.Random, human: _Human, used: set[str]) -> str:
    first, last = translit(human.first), translit(human.last)
    year = rng.randrange(75, 100)
    local = (
        f"{first}.{last}",
        f"{last}.{first[0]}{year}",
        f"{first[0]}{last}{rng.randrange(1, 100)}",
        f"{last}{year}",
    )[rng.randrange(4)]
    domain = "example.ru" if rng.random() < 0.7 else "example.com"
    address, k = f"{local}@{domain}", 2
    while address in used:
        address, k = f"{local}{k}@{domain}", k + 1
    used.add(address)
    return address


# --- staff and groups ----------------------------------------------------------------------


@dataclass(slots=True)
class _Teacher:
    num: str
    human: _Human
    specialty: str
    position: str
    room: str
    roles: list[str]
    email: str = ""
    phone: str = ""
    load: int = 0  # weekly hours, to spread groups evenly

    @property
    def id(self) -> str:
        return f"tch-{self.num}"


@dataclass(slots=True)
class _Group:
    idx: int
    key: str
    name: str
    kind: str
    subject: str
    classes: list[int]
    teacher: str
    hours: int
    grade: int
    members: list[int] = field(default_factory=list)
    lessons: list[int] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"grp-{self.key}"


def _is_split(subject: str, grade: int) -> bool:
    return grade >= SPLIT_FROM.get(subject, 99)


def _is_pass_fail(subject: str, grade: int) -> bool:
    """Subjects assessed as «зачёт»/«незачёт» rather than on the five-point scale."""
    return subject in ("orkse", "odnknr", "fin") or (subject in ("music", "art") and grade >= 7)


def _specialty_hours(classes: list[_Class]) -> dict[str, int]:
    hours = dict.fromkeys(SPECIALTY_ORDER, 0)
    for cls in classes:
        for subject, count in N.CURRICULUM[cls.grade]:
            if cls.grade <= 4 and subject in N.PRIMARY_CORE:
                continue  # the class teacher of a primary class teaches these
            hours[N.SPECIALTY[subject]] += count * (2 if _is_split(subject, cls.grade) else 1)
    hours["hist"] += 1  # the elective stream
    return hours


def _staffing(classes: list[_Class], students: int) -> dict[str, int]:
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
    namer: _Namer, staff: list[_Teacher], specialty: str, room: str, roles: list[str]
) -> _Teacher:
    share = 0.95 if specialty == "primary" else N.FEMALE_SHARE.get(specialty, 0.85)
    human = namer.adult(namer.rng.random() >= share)
    position = N.POSITIONS.get(specialty, "директор")
    teacher = _Teacher(f"{len(staff) + 1:03d}", human, specialty, position, room, roles)
    staff.append(teacher)
    return teacher


def _make_staff(rng: random.Random, classes: list[_Class], students: int) -> list[_Teacher]:
    namer = _Namer(rng)
    staff: list[_Teacher] = []
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


def _staff_contacts(staff: list[_Teacher]) -> None:
    used: set[str] = set()
    for i, teacher in enumerate(staff):
        h = teacher.human
        local = f"{translit(h.last)}.{translit(h.first)[0]}{translit(h.middle)[0]}"
        address, k = f"{local}@example.ru", 2
        while address in used:
            address, k = f"{local}{k}@example.ru", k + 1
        used.add(address)
        teacher.email, teacher.phone = address, _phone(500000 + i + 1)


@dataclass
class _School:
    """Everything generated, in compact form; `_emit_*` turn it into exchange changes."""

    students: int
    cal: _Calendar
    classes: list[_Class]
    pupils: list[_Pupil]
    guardians: list[_Guardian]
    links: list[tuple[int, int]]
    staff: list[_Teacher]
    groups: list[_Group] = field(default_factory=list)
    slots: dict[int, list[tuple[int, int]]] = field(default_factory=dict)  # group -> (wd, slot)
    lessons: list[_Lesson] = field(default_factory=list)
    works: list[_Work] = field(default_factory=list)
    individual: list[int] = field(default_factory=list)  # pupils on an individual plan
    uncertified: int = -1  # the pupil with many absences and «н/а»
    uncertified_groups: list[int] = field(default_factory=list)
    ill: list[frozenset[dt.date]] = field(default_factory=list)
    exempt: dict[int, tuple[dt.date, dt.date]] = field(default_factory=dict)
    truant: list[bool] = field(default_factory=list)
    attendance: list[tuple[int, int, str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.teacher = {t.id: t for t in self.staff}
        self.bundles: dict[tuple[int, str, int], _Teacher] = {}

    def specialists(self, specialty: str) -> list[_Teacher]:
        return [t for t in self.staff if t.specialty == specialty]


def _add_group(
    school: _School,
    key: str,
    name: str,
    kind: str,
    subject: str,
    classes: list[int],
    teacher: str,
    hours: int,
    members: list[int],
) -> _Group:
    grade = min(school.classes[c].grade for c in classes)
    group = _Group(len(school.groups), key, name, kind, subject, classes, teacher, hours, grade)
    group.members = list(members)
    school.groups.append(group)
    return group


def _bundle_teacher(
    school: _School, cls: int, specialty: str, part: int, hours: int, avoid: str = ""
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


def _class_groups(school: _School, cls: _Class) -> None:
    for subject, hours in N.CURRICULUM[cls.grade]:
        title = f"{cls.name} — {N.SUBJECTS[subject][0]}"
        if _is_split(subject, cls.grade):
            _subgroups(school, cls, subject, hours, title)
            continue
        if cls.grade <= 4 and subject in N.PRIMARY_CORE:
            teacher = cls.teacher or ""
        else:
            teacher = _bundle_teacher(school, cls.idx, N.SPECIALTY[subject], 0, hours)
        key = f"{cls.key}-{subject}"
        _add_group(
            school, key, title, "whole_class", subject, [cls.idx], teacher, hours, cls.pupils
        )


def _subgroups(school: _School, cls: _Class, subject: str, hours: int, title: str) -> None:
    """Two subgroups by halves of the class list, each with its own teacher, same slots."""
    half = (len(cls.pupils) + 1) // 2
    first = ""
    for part, members in ((1, cls.pupils[:half]), (2, cls.pupils[half:])):
        teacher = _bundle_teacher(school, cls.idx, N.SPECIALTY[subject], part, hours, first)
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


def _stream(school: _School, rng: random.Random) -> None:
    """An elective across two parallel classes (10А and 10Б, or 10А and 11А)."""
    tenth = [c for c in school.classes if c.grade == 10]
    eleventh = [c for c in school.classes if c.grade == 11]
    pair = tenth[:2] if len(tenth) >= 2 else [tenth[0], eleventh[0]]
    members: list[int] = []
    for cls in pair:
        members.extend([p for p in cls.pupils if rng.random() < 0.6] or cls.pupils[:1])
    teacher = _bundle_teacher(school, pair[0].idx, "hist", 0, 1)
    names = ", ".join(c.name for c in pair)
    _add_group(
        school,
        "-".join(c.key for c in pair) + "-fin",
        f"{names} — Финансовая грамотность (курс по выбору)",
        "stream",
        "fin",
        [c.idx for c in pair],
        teacher,
        1,
        members,
    )


def _individual_plans(school: _School) -> None:
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
            f"{N.SUBJECTS[subject][0]}, индивидуальный учебный план",
            "individual_plan",
            subject,
            [pupil.cls],
            whole.teacher,
            2,
            [pi],
        )


def _choose_special_pupils(school: _School, rng: random.Random) -> None:
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


def _class_teachers(school: _School) -> None:
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


def _make_groups(school: _School, rng: random.Random) -> None:
    _choose_special_pupils(school, rng)
    for cls in school.classes:
        _class_groups(school, cls)
    _stream(school, rng)
    _individual_plans(school)
    _class_teachers(school)
    for g in school.groups:
        for pi in g.members:
            school.pupils[pi].groups.append(g.idx)


# --- timetable -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Hour:
    """One weekly hour of a class: one group, or both subgroups in the same slot."""

    subject: str
    groups: tuple[int, ...]
    teachers: tuple[str, ...]


Pos = tuple[int, int]  # (weekday 1–5, slot)


def _day_lengths(total: int) -> dict[int, int]:
    """Even days, the longer ones mid-week, so the class has no gaps between lessons."""
    base, extra = divmod(total, 5)
    longer = (2, 3, 4, 1, 5)[:extra]
    return {d: base + (1 if d in longer else 0) for d in range(1, 6)}


class _Grid:
    """Weekly template with no clash for a class or a teacher (greedy, with one-step repair)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.teacher_busy: set[tuple[str, int, int]] = set()
        self.cells: dict[int, dict[Pos, _Hour]] = {}
        self.per_day: dict[tuple[int, int, str], int] = {}
        self.dropped = 0

    def fits(self, hour: _Hour, pos: Pos) -> bool:
        return all((t, *pos) not in self.teacher_busy for t in hour.teachers)

    def put(self, cls: int, hour: _Hour, pos: Pos) -> None:
        self.cells[cls][pos] = hour
        self.teacher_busy.update((t, *pos) for t in hour.teachers)
        key = (cls, pos[0], hour.subject)
        self.per_day[key] = self.per_day.get(key, 0) + 1

    def take(self, cls: int, pos: Pos) -> _Hour:
        hour = self.cells[cls].pop(pos)
        self.teacher_busy.difference_update((t, *pos) for t in hour.teachers)
        self.per_day[(cls, pos[0], hour.subject)] -= 1
        return hour

    def place_class(self, cls: int, hours: list[_Hour]) -> None:
        lengths = _day_lengths(len(hours))
        positions = [(d, s) for d in range(1, 6) for s in range(1, lengths[d] + 1)]
        self.cells[cls] = {}
        for hour in hours:
            placed = (
                self._choose(cls, hour, positions)
                or self._swap(cls, hour, positions)
                or self._extend(cls, hour, positions, lengths)
            )
            self.dropped += not placed

    def _choose(self, cls: int, hour: _Hour, positions: list[Pos]) -> bool:
        cells = self.cells[cls]
        free = [p for p in positions if p not in cells and self.fits(hour, p)]
        if not free:
            return False
        # Spread a subject over the week: prefer days that do not have it yet.
        best = min(
            free, key=lambda p: (self.per_day.get((cls, p[0], hour.subject), 0), self.rng.random())
        )
        self.put(cls, hour, best)
        return True

    def _swap(self, cls: int, hour: _Hour, positions: list[Pos]) -> bool:
        """Move one placed hour to a free cell so that this hour fits where it was."""
        cells = self.cells[cls]
        for q in [p for p in positions if p in cells]:
            other = self.take(cls, q)
            if self.fits(hour, q):
                self.put(cls, hour, q)
                r = next((p for p in positions if p not in cells and self.fits(other, p)), None)
                if r is not None:
                    self.put(cls, other, r)
                    return True
                self.take(cls, q)
            self.put(cls, other, q)
        return False

    def _extend(self, cls: int, hour: _Hour, positions: list[Pos], lengths: dict[int, int]) -> bool:
        for d in sorted(lengths, key=lambda d: (lengths[d], d)):
            pos = (d, lengths[d] + 1)
            if pos[1] <= MAX_SLOT and pos not in self.cells[cls] and self.fits(hour, pos):
                lengths[d] += 1
                positions.append(pos)
                self.put(cls, hour, pos)
                return True
        return False

    def place_extra(self, classes: list[int], hour: _Hour) -> bool:
        """An hour outside the class plan (stream, individual plan): after the day's lessons."""
        days = list(range(1, 6))
        self.rng.shuffle(days)
        for d in days:
            last = max(max((s for w, s in self.cells[c] if w == d), default=0) for c in classes)
            for s in range(last + 1, MAX_SLOT + 1):
                if all((d, s) not in self.cells[c] for c in classes) and self.fits(hour, (d, s)):
                    for c in classes:
                        self.cells[c][(d, s)] = hour
                    self.teacher_busy.update((t, d, s) for t in hour.teachers)
                    return True
        return False


def _class_hours(school: _School, cls: int) -> list[_Hour]:
    by_subject: dict[str, list[_Group]] = {}
    for g in school.groups:
        if g.kind in ("whole_class", "subgroup") and g.classes == [cls]:
            by_subject.setdefault(g.subject, []).append(g)
    hours: list[_Hour] = []
    for subject, groups in by_subject.items():
        hour = _Hour(subject, tuple(g.idx for g in groups), tuple(g.teacher for g in groups))
        hours.extend([hour] * groups[0].hours)
    # Most constrained first: subgroups need two free teachers, then subjects with most hours.
    return sorted(hours, key=lambda h: (-len(h.teachers), -by_subject[h.subject][0].hours))


def _make_timetable(school: _School, rng: random.Random) -> None:
    grid = _Grid(rng)
    for cls in sorted(school.classes, key=lambda c: (-c.grade, c.idx)):
        grid.place_class(cls.idx, _class_hours(school, cls.idx))
    for g in school.groups:
        if g.kind in ("stream", "individual_plan"):
            hour = _Hour(g.subject, (g.idx,), (g.teacher,))
            for _ in range(g.hours):
                grid.dropped += not grid.place_extra(g.classes, hour)
    slots: dict[int, set[Pos]] = {}
    for cells in grid.cells.values():
        for pos, hour in cells.items():
            for gi in hour.groups:
                slots.setdefault(gi, set()).add(pos)
    school.slots = {g: sorted(slots[g]) for g in sorted(slots)}


# --- lessons -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Lesson:
    key: str
    id: str  # kept, not derived: every mark and attendance row shares this one string
    date: dt.date
    slot: int
    group: int
    teacher: str
    room: str
    topic: str
    base: str  # the topic without «. Закрепление» etc., for work titles
    status: str
    quarter: int
    original: str | None = None
    reason: str = ""
    moved_from: tuple[dt.date, int] | None = None
    moved_to: tuple[dt.date, int] | None = None
    work: int = -1


@dataclass(slots=True)
class _Work:
    key: str
    group: int
    lesson: int
    kind: str
    title: str


def _category(subject: str) -> str:
    return N.CATEGORY.get(subject, "science")


@functools.cache
def _compact(day: dt.date) -> str:
    return day.strftime("%Y%m%d")


@functools.cache
def _topics_for(subject: str, grade: int) -> tuple[str, ...]:
    bands = N.TOPICS.get(subject, ())
    for first, last, topics in bands:
        if first <= grade <= last:
            return topics
    return bands[-1][2] if bands else ("Повторение",)


@functools.cache
def _topic_step(base: str, step: str) -> str:
    return f"{base}. {step}"


def _topic(group: _Group, n: int) -> tuple[str, str]:
    """The n-th lesson's topic: each topic spans several lessons over the school year."""
    topics = _topics_for(group.subject, group.grade)
    per_topic = max(1, math.ceil(group.hours * 33 / len(topics)))
    base = topics[(n // per_topic) % len(topics)]
    step = n % per_topic
    if step == 0:
        return base, base
    steps = N.TOPIC_STEPS.get(_category(group.subject), N.TOPIC_STEPS["science"])
    return _topic_step(base, steps[(step - 1) % len(steps)]), base


def _make_lessons(school: _School) -> None:
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
            key = f"{group.key}-{_compact(day)}-{slot}"
            lesson = _Lesson(
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


# --- substitutions, moves, cancellations ---------------------------------------------------


class _Busy:
    """Who is taken at which real date and slot: for substitutes and moved lessons."""

    def __init__(self, school: _School) -> None:
        self.school = school
        self.teachers: set[tuple[str, dt.date, int]] = set()
        self.classes: set[tuple[int, dt.date, int]] = set()
        for lesson in school.lessons:
            self.add(lesson)

    def add(self, lesson: _Lesson) -> None:
        self.teachers.add((lesson.teacher, lesson.date, lesson.slot))
        for cls in self.school.groups[lesson.group].classes:
            self.classes.add((cls, lesson.date, lesson.slot))

    def class_free(self, group: _Group, day: dt.date, slot: int) -> bool:
        return all((c, day, slot) not in self.classes for c in group.classes)


def _substitutions(school: _School, rng: random.Random, busy: _Busy) -> None:
    """Teachers away for 1–5 days (illness, courses…); a free colleague takes each lesson."""
    by_teacher_day: dict[tuple[str, dt.date], list[int]] = {}
    for i, lesson in enumerate(school.lessons):
        by_teacher_day.setdefault((lesson.teacher, lesson.date), []).append(i)
    teaching = [t for t in school.staff if "teacher" in t.roles]
    reasons, days = _Pick(N.SUBSTITUTION_REASONS), school.cal.days
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
    school: _School,
    rng: random.Random,
    busy: _Busy,
    lesson: _Lesson,
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


def _moves(school: _School, rng: random.Random, busy: _Busy) -> None:
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
    school: _School, rng: random.Random, busy: _Busy, lesson: _Lesson, day_index: dict[dt.date, int]
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


def _move(school: _School, busy: _Busy, lesson: _Lesson, day: dt.date, slot: int) -> None:
    group = school.groups[lesson.group]
    lesson.status, lesson.moved_to = "moved", (day, slot)
    key = f"{group.key}-{_compact(day)}-{slot}"
    status = "held" if day <= school.cal.as_of else "scheduled"
    new = _Lesson(
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


def _cancellations(school: _School, rng: random.Random) -> None:
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


def _disrupt(school: _School, rng: random.Random) -> None:
    busy = _Busy(school)
    _substitutions(school, rng, busy)
    _moves(school, rng, busy)
    _cancellations(school, rng)
    for group in school.groups:
        group.lessons.sort(key=lambda i: (school.lessons[i].date, school.lessons[i].slot))


# --- works (the test schedule) -------------------------------------------------------------

CONTROL_CATEGORIES = ("rus", "math", "science", "eng", "lit", "inf")


def _make_works(school: _School, rng: random.Random) -> None:
    """1–3 assessed works per group and quarter; those after as_of are the test schedule."""
    for group in school.groups:
        if group.grade == 1 or _is_pass_fail(group.subject, group.grade):
            continue  # no marks in the 1st grade; no control works in pass/fail subjects
        by_quarter: dict[int, list[int]] = {}
        for li in group.lessons:
            lesson = school.lessons[li]
            if lesson.status in ("held", "scheduled"):
                by_quarter.setdefault(lesson.quarter, []).append(li)
        for quarter, lessons in by_quarter.items():
            _quarter_works(school, rng, group, quarter, lessons)


def _quarter_works(
    school: _School, rng: random.Random, group: _Group, quarter: int, lessons: list[int]
) -> None:
    if len(lessons) < 4:
        return
    category = _category(group.subject)
    count = rng.randint(1, 3) if group.hours >= 2 else rng.randint(1, 2)
    first = len(lessons) // 5  # not in the first weeks of a quarter
    picks = sorted(rng.sample(range(first, len(lessons)), min(count, len(lessons) - first)))
    for k, pos in enumerate(picks):
        if k == len(picks) - 1 and category in CONTROL_CATEGORIES:
            kind = "dict" if category == "rus" and rng.random() < 0.5 else "kr"
        else:
            kind = rng.choice(N.WORK_MIX.get(category, ("pr",)))
        lesson = school.lessons[lessons[pos]]
        title = N.WORK_KINDS[kind][2].format(topic=lesson.base)
        lesson.work = len(school.works)
        key = f"{group.key}-q{quarter + 1}-{k + 1}"
        school.works.append(_Work(key, group.idx, lessons[pos], kind, title))


# --- absences ------------------------------------------------------------------------------

FLU_SEASON = {9: 0.6, 10: 1.0, 11: 1.2, 12: 1.2, 1: 1.3, 2: 1.4, 3: 1.0, 4: 0.7, 5: 0.5}


def _absence_plan(school: _School, rng: random.Random) -> None:
    """Illness stretches of 3–7 school days, more in winter; a few truants; PE exemptions."""
    cal = school.cal
    held = [day for day in cal.days if day <= cal.as_of]
    cum = list(itertools.accumulate(FLU_SEASON[day.month] for day in held))
    for _pupil in school.pupils:
        sick: set[dt.date] = set()
        lam = 0.0095 * len(held) * rng.lognormvariate(0, 0.6) / 1.2  # mean factor 1
        for _ in range(_poisson(rng, lam) if held else 0):
            start = rng.choices(range(len(held)), cum_weights=cum)[0]
            sick.update(held[start : start + rng.randint(3, 7)])
        school.ill.append(frozenset(sick))
        school.truant.append(rng.random() < 0.04)
    _long_illness(school, rng, held)
    exempt = rng.sample(range(len(school.pupils)), max(1, round(0.015 * len(school.pupils))))
    for pi in sorted(exempt):
        if held:
            start = rng.randrange(len(held))
            school.exempt[pi] = (held[start], held[min(len(held) - 1, start + rng.randint(9, 20))])


def _long_illness(school: _School, rng: random.Random, held: list[dt.date]) -> None:
    """The uncertified pupil: three weeks ill in the first quarter, «н/а» in two subjects."""
    pi = school.uncertified
    first_quarter = [day for day in held if day <= school.cal.quarters[0][1]]
    school.ill[pi] = school.ill[pi] | frozenset(first_quarter[8:24])
    graded = [
        g
        for g in school.pupils[pi].groups
        if school.groups[g].kind == "whole_class"
        and not _is_pass_fail(school.groups[g].subject, school.groups[g].grade)
    ]
    school.uncertified_groups = sorted(rng.sample(graded, 2))


# --- marks and attendance ------------------------------------------------------------------

# Share of "-" and "+" per mark; the rest are plain digits.
MODIFIERS: dict[int, tuple[tuple[str, float], ...]] = {
    5: (("5-", 0.10), ("5+", 0.02)),
    4: (("4-", 0.09), ("4+", 0.05)),
    3: (("3-", 0.07), ("3+", 0.04)),
    2: (),
}
DIGITS = {v: str(v) for v in range(1, 6)}
SUBJECT_IDS = {s: f"sub-{s}" for s in N.SUBJECTS}
SINGLE_CODES = tuple(code for code, _ in SINGLE_ABSENCES)
SINGLE_CUM = list(itertools.accumulate(weight for _, weight in SINGLE_ABSENCES))


def _five(rng: random.Random, level: float, spread: float) -> tuple[str, int, int]:
    """A mark as written and its digits; ~0.4 % are two marks in one cell («3/5»)."""
    value = min(5, max(2, int(level + rng.gauss(0, spread) + 0.5)))
    r = rng.random()
    if r < 0.004:
        second = min(5, max(2, int(level + rng.gauss(0, spread) + 0.5)))
        return f"{value}/{second}", value, second
    for raw, share in MODIFIERS[value]:
        if r < share:
            return raw, value, 0
        r -= share
    return DIGITS[value], value, 0


@dataclass(slots=True)
class _Tally:
    """Weighted sums per quarter, for quarter marks."""

    sums: list[float] = field(default_factory=lambda: [0.0] * 4)
    weights: list[float] = field(default_factory=lambda: [0.0] * 4)
    counts: list[int] = field(default_factory=lambda: [0] * 4)

    def add(self, quarter: int, first: int, second: int, weight: float) -> None:
        for value in (first, second) if second else (first,):
            self.sums[quarter] += value * weight
            self.weights[quarter] += weight
        self.counts[quarter] += 1


def _mark(
    ident: str, pupil: _Pupil, group: _Group, day: dt.date, raw: str, teacher: str, **extra: Any
) -> Json:
    data: Json = {
        "student_id": pupil.id,
        "subject_id": SUBJECT_IDS[group.subject],
        "date": _iso(day),
    }
    for name in ("lesson_id", "work_id", "period_id"):
        if extra.get(name):
            data[name] = extra[name]
    data["raw"] = raw
    data["scale"] = extra.get("scale", "five")
    data["weight"] = extra.get("weight", 1.0)
    data["kind"] = extra.get("kind", "regular")
    data["teacher_id"] = teacher
    if extra.get("comment"):
        data["comment"] = extra["comment"]
    return _change("mark", ident, _stamp(day, "16:00"), data)


def _absence(school: _School, rng: random.Random, pi: int, lesson: _Lesson, subject: str) -> str:
    """Attendance code of a pupil at a held lesson, or "" when simply present."""
    if lesson.date in school.ill[pi]:
        return "Б"
    exempt = school.exempt.get(pi)
    if exempt and subject == "pe" and exempt[0] <= lesson.date <= exempt[1]:
        return "ОСВ"
    r = rng.random()
    single = 0.05 if school.truant[pi] else 0.012
    if r < single:
        return rng.choices(SINGLE_CODES, cum_weights=SINGLE_CUM)[0]
    return "ОП" if r < single + 0.004 else ""


class _Marker:
    """One pupil in one group: attendance rows, lesson and work marks, quarter marks."""

    def __init__(self, school: _School, rng: random.Random, pi: int, g: int) -> None:
        self.school, self.rng, self.pi = school, rng, pi
        self.pupil, self.group = school.pupils[pi], school.groups[g]
        self.graded = self.group.grade > 1  # no marks in the 1st grade
        self.pass_fail = _is_pass_fail(self.group.subject, self.group.grade)
        self.level = self.pupil.ability + rng.gauss(0, 0.3)  # strong and weak subjects
        self.rate = rng.uniform(0.25, 0.35) * (0.5 if self.pass_fail else 1.0)
        self.tally = _Tally()

    def run(self) -> Iterator[Json]:
        pending: list[int] = []  # works missed while absent, written at the next lesson
        lessons, left = self.school.lessons, self.pupil.left_at
        for li in self.group.lessons:
            lesson = lessons[li]
            if lesson.status != "held" or (left is not None and lesson.date > left):
                continue
            code = _absence(self.school, self.rng, self.pi, lesson, self.group.subject)
            if code:
                minutes = self.rng.randint(2, 20) if code == "ОП" else 0
                self.school.attendance.append((self.pi, li, code, minutes))
                if code == "ОСВ":
                    continue  # exempt from PE: neither absent nor assessed
                if code != "ОП":
                    self.pupil.absences += 1
                    pending += [lesson.work] if lesson.work >= 0 else []
                    continue
            self.pupil.attended += 1
            if self.graded:
                yield from self._marks_at(lesson, pending)
                pending.clear()
        if self.graded:
            yield from self._quarter_marks()

    def _marks_at(self, lesson: _Lesson, pending: list[int]) -> Iterator[Json]:
        for w in pending:
            yield self._work_mark(w, lesson, late=True)
        if lesson.work >= 0:
            yield self._work_mark(lesson.work, lesson, late=False)
        elif self.rng.random() < self.rate:
            raw = self._raw(lesson.quarter, self.level, 0.7, 1.0)
            ident = f"mrk-{lesson.key}-{self.pupil.num}"
            scale = "pass_fail" if self.pass_fail else "five"
            yield _mark(
                ident,
                self.pupil,
                self.group,
                lesson.date,
                raw,
                lesson.teacher,
                lesson_id=lesson.id,
                scale=scale,
            )

    def _raw(self, quarter: int, level: float, spread: float, weight: float) -> str:
        if self.pass_fail:
            self.tally.counts[quarter] += 1
            return "зачёт" if self.rng.random() < 0.95 else "незачёт"
        raw, first, second = _five(self.rng, level, spread)
        self.tally.add(quarter, first, second, weight)
        self.pupil.mark_sum += (first + second) * weight if second else first * weight
        self.pupil.mark_weight += weight * (2 if second else 1)
        return raw

    def _work_mark(self, w: int, lesson: _Lesson, late: bool) -> Json:
        work = self.school.works[w]
        weight = N.WORK_KINDS[work.kind][1]
        raw = self._raw(lesson.quarter, self.level - 0.15, 0.85, weight)
        absent = "отсутствовал" if self.pupil.human.male else "отсутствовала"
        comment = f"Работа написана позже: в день работы {absent}" if late else ""
        return _mark(
            f"mrk-{work.key}-{self.pupil.num}",
            self.pupil,
            self.group,
            lesson.date,
            raw,
            lesson.teacher,
            lesson_id=lesson.id,
            work_id=f"wrk-{work.key}",
            weight=weight,
            comment=comment,
        )

    def _quarter_marks(self) -> Iterator[Json]:
        """Quarter marks for quarters already over; «н/а» and a retake for the long absence."""
        cal, pupil, group = self.school.cal, self.pupil, self.group
        for q, (_, end) in enumerate(cal.quarters):
            if end >= cal.as_of or (pupil.left_at is not None and pupil.left_at <= end):
                break
            base = f"mrk-{group.key}-q{q + 1}-{pupil.num}"
            period = f"per-{cal.year}-q{q + 1}"
            if q == 0 and self._uncertified():
                yield from self._not_certified(base, period, end)
                continue
            raw = self._quarter_raw(q)
            if raw:
                yield _mark(
                    base,
                    pupil,
                    group,
                    end,
                    raw,
                    group.teacher,
                    period_id=period,
                    kind="period_final",
                    scale="pass_fail" if self.pass_fail else "five",
                )

    def _uncertified(self) -> bool:
        return (
            self.pi == self.school.uncertified and self.group.idx in self.school.uncertified_groups
        )

    def _quarter_raw(self, q: int) -> str:
        if not self.tally.counts[q]:
            return ""
        if self.pass_fail:
            return "зачёт"
        average = self.tally.sums[q] / self.tally.weights[q]
        return DIGITS[min(5, max(2, int(average + 0.5)))]

    def _not_certified(self, base: str, period: str, end: dt.date) -> Iterator[Json]:
        pupil, group, cal = self.pupil, self.group, self.school.cal
        yield _mark(
            base,
            pupil,
            group,
            end,
            "н/а",
            group.teacher,
            period_id=period,
            kind="not_certified",
            comment="Недостаточно отметок для аттестации: длительная болезнь",
        )
        retake = cal.quarters[1][0] + DJ(days=14)
        if retake <= cal.as_of:
            yield _mark(
                f"{base}-debt",
                pupil,
                group,
                retake,
                "3",
                group.teacher,
                period_id=period,
                kind="debt",
                comment="Ликвидация академической задолженности за 1 четверть",
            )


def _iter_marks(school: _School, rng: random.Random) -> Iterator[Json]:
    for pi, pupil in enumerate(school.pupils):
        for g in pupil.groups:
            yield from _Marker(school, rng, pi, g).run()


def _iter_attendance(school: _School) -> Iterator[Json]:
    for pi, li, code, minutes in school.attendance:
        lesson, pupil = school.lessons[li], school.pupils[pi]
        data: Json = {
            "student_id": pupil.id,
            "lesson_id": lesson.id,
            "code": code,
            "category": CATEGORY_OF_CODE[code],
        }
        if minutes:
            data["minutes_late"] = minutes
        yield _change(
            "attendance", f"att-{lesson.key}-{pupil.num}", _stamp(lesson.date, "15:00"), data
        )


# --- homework and recommendations ----------------------------------------------------------

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
        link=N.RESH.format(n=rng.randrange(1000, 8000)),
        **extra,
    )


def _iter_homework(school: _School, rng: random.Random) -> Iterator[Json]:
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
        category = _category(group.subject)
        share = 0.3 if category in LIGHT_HOMEWORK else 0.85
        for pos, lesson in enumerate(live):
            if lesson.date > horizon:
                break
            if rng.random() >= share:
                continue
            due = live[pos + 1].date if pos + 1 < len(live) else lesson.date + DJ(days=7)
            text = _fill(rng, rng.choice(N.HOMEWORK[category]), topic=lesson.base)
            yield _homework(school, group, lesson, due, text, [])
            if rng.random() < 0.03:
                yield from _individual_homework(school, rng, group, lesson, due)


def _individual_homework(
    school: _School, rng: random.Random, group: _Group, lesson: _Lesson, due: dt.date
) -> Iterator[Json]:
    members = [pi for pi in group.members if _present_on(school.pupils[pi], lesson.date)]
    if members:
        chosen = sorted(rng.sample(members, min(len(members), rng.randint(1, 2))))
        text = _fill(rng, rng.choice(N.INDIVIDUAL_HOMEWORK), topic=lesson.base)
        yield _homework(school, group, lesson, due, text, [school.pupils[i].id for i in chosen])


def _present_on(pupil: _Pupil, day: dt.date) -> bool:
    return pupil.left_at is None or pupil.left_at >= day


def _homework(
    school: _School, group: _Group, lesson: _Lesson, due: dt.date, text: str, students: list[str]
) -> Json:
    data: Json = {
        "subject_id": SUBJECT_IDS[group.subject],
        "group_id": group.id,
        "lesson_id": lesson.id,
        "assigned_on": _iso(lesson.date),
        "due_date": _iso(due),
        "text": text,
    }
    if students:
        data["student_ids"] = students
    ident = f"hw-{lesson.key}" + ("-i" if students else "")
    posted = _stamp(min(lesson.date, school.cal.as_of), "17:00")
    return _change("homework", ident, posted, data)


def _iter_recommendations(school: _School, rng: random.Random) -> Iterator[Json]:
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
    school: _School, rng: random.Random, pi: int, k: int, ident: str, day: dt.date
) -> Json:
    pupil = school.pupils[pi]
    absent_share = pupil.absences / max(1, pupil.absences + pupil.attended)
    graded = [
        school.groups[g]
        for g in pupil.groups
        if school.groups[g].grade > 1
        and not _is_pass_fail(school.groups[g].subject, school.groups[g].grade)
    ]
    group: _Group | None = None
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
    school: _School,
    rng: random.Random,
    pupil: _Pupil,
    group: _Group | None,
    kind: str,
    ident: str,
    day: dt.date,
) -> Json:
    subject = N.SUBJECTS[group.subject][0] if group else ""
    topic = _topics_for(group.subject, group.grade)[0] if group else ""
    if group:
        held = [school.lessons[li].base for li in group.lessons if school.lessons[li].date <= day]
        topic = held[-1] if held else topic
    text = _fill(
        rng,
        rng.choice(N.RECOMMENDATIONS[kind]),
        subject=subject,
        topic=topic,
        name=pupil.human.first,
        weekday=rng.choice(N.WEEKDAYS_RU),
        missed="пропустил" if pupil.human.male else "пропустила",
    )
    teacher = group.teacher if group else school.classes[pupil.cls].teacher or ""
    data: Json = {"student_id": pupil.id, "teacher_id": teacher}
    if group:
        data["subject_id"] = SUBJECT_IDS[group.subject]
    data.update(date=_iso(day), text=text)
    return _change("recommendation", ident, _stamp(day, "18:00"), data)


# --- the school, calendar and people as changes --------------------------------------------


def _emit_school(school: _School) -> Iterator[Json]:
    setup = school.cal.setup
    head = next(t for t in school.staff if "head" in t.roles)
    yield _change(
        "school",
        SCHOOL_ID,
        setup,
        {
            "name": N.SCHOOL_NAME,
            "short_name": N.SCHOOL_SHORT,
            "address": N.SCHOOL_ADDRESS,
            "head_name": head.human.full,
        },
    )
    yield from _emit_year(school)


def _emit_year(school: _School) -> Iterator[Json]:
    cal, setup, year = school.cal, school.cal.setup, school.cal.year
    ay = f"ay-{year}"
    yield _change(
        "academic_year",
        ay,
        setup,
        {"name": f"{year}/{year + 1}", "start": _iso(cal.start), "end": _iso(cal.end)},
    )
    for n, (start, end) in enumerate(cal.quarters, 1):
        yield _change(
            "period",
            f"per-{year}-q{n}",
            setup,
            {
                "academic_year_id": ay,
                "kind": "quarter",
                "name": f"{n} четверть",
                "start": _iso(start),
                "end": _iso(end),
            },
        )
    yield _change(
        "period",
        f"per-{year}-year",
        setup,
        {
            "academic_year_id": ay,
            "kind": "year",
            "name": f"{year}/{year + 1} учебный год",
            "start": _iso(cal.start),
            "end": _iso(cal.end),
        },
    )


def _emit_vocabularies() -> Iterator[Json]:
    setup = "2020-08-20T10:00:00" + OFFSET  # vocabularies predate any school year
    for subject, (name, short) in N.SUBJECTS.items():
        yield _change("subject", SUBJECT_IDS[subject], setup, {"name": name, "short_name": short})
    for kind, (name, weight, _) in N.WORK_KINDS.items():
        yield _change("work_kind", kind, setup, {"name": name, "default_weight": weight})
    for code, title, category in N.ATTENDANCE_CODES:
        yield _change("attendance_code", code, setup, {"title": title, "category": category})


def _emit_staff(school: _School) -> Iterator[Json]:
    for t in school.staff:
        data = t.human.data() | {
            "email": t.email,
            "phone": t.phone,
            "position": t.position,
            "roles": t.roles,
        }
        yield _change("teacher", t.id, school.cal.setup, data)
    for cls in school.classes:
        yield _change(
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


def _emit_holidays(school: _School) -> Iterator[Json]:
    cal, setup = school.cal, school.cal.setup
    first_grade = [c.id for c in school.classes if c.grade == 1]
    for v in cal.vacations:
        data: Json = {
            "name": v.name,
            "kind": "vacation",
            "start": _iso(v.start),
            "end": _iso(v.end),
        }
        if v.grade1_only:
            data["class_unit_ids"] = first_grade
        yield _change("holiday", f"hol-{cal.year}-{v.key}", setup, data)
    for name, start, end in cal.public:
        yield _change(
            "holiday",
            f"hol-{_compact(start)}",
            setup,
            {"name": name, "kind": "holiday", "start": _iso(start), "end": _iso(end)},
        )
    if cal.short_day:
        yield _change(
            "holiday",
            f"hol-short-{_compact(cal.short_day)}",
            setup,
            {
                "name": "Сокращённый предпраздничный день: уроки по 35 минут",
                "kind": "short_day",
                "start": _iso(cal.short_day),
                "end": _iso(cal.short_day),
            },
        )


def _emit_people(school: _School) -> Iterator[Json]:
    setup = school.cal.setup
    for p in school.pupils:
        data = p.human.data() | {
            "class_unit_id": school.classes[p.cls].id,
            "birth_date": _iso(p.birth),
        }
        stamp = setup
        if p.left_at is not None:
            data["left_at"], stamp = _iso(p.left_at), _stamp(p.left_at, "12:00")
        yield _change("student", p.id, stamp, data)
    for g in school.guardians:
        data = g.human.data() | {"email": g.email, "phone": g.phone, "delivery": g.delivery}
        yield _change("guardian", f"grd-{g.num}", setup, data)
    for gi, pi in school.links:
        g, p = school.guardians[gi], school.pupils[pi]
        yield _change(
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


def _emit_groups(school: _School) -> Iterator[Json]:
    cal, setup = school.cal, school.cal.setup
    for g in school.groups:
        yield _change(
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
            data = {"group_id": g.id, "student_id": p.id, "from": _iso(cal.start)}
            if p.left_at is not None:
                data["to"] = _iso(p.left_at)
            yield _change("membership", f"mem-{g.key}-{p.num}", setup, data)


def _emit_timetable(school: _School) -> Iterator[Json]:
    cal, setup = school.cal, school.cal.setup
    for n, (start, end) in enumerate(BELLS, 1):
        yield _change("bell_slot", f"bell-{n}", setup, {"number": n, "start": start, "end": end})
    for g, positions in school.slots.items():
        group = school.groups[g]
        for weekday, slot in positions:
            yield _change(
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
                    "valid_from": _iso(cal.start),
                    "valid_to": _iso(cal.end),
                },
            )


# --- lessons and works as changes ----------------------------------------------------------


def _lesson_stamp(school: _School, lesson: _Lesson) -> str:
    if lesson.date <= school.cal.as_of:
        return _stamp(lesson.date, "15:30")
    changed = bool(lesson.original or lesson.moved_from or lesson.moved_to)
    changed = changed or lesson.status == "cancelled"
    return _stamp(school.cal.as_of, "12:00") if changed else school.cal.setup


def _lesson_data(school: _School, lesson: _Lesson) -> Json:
    group = school.groups[lesson.group]
    data: Json = {
        "date": _iso(lesson.date),
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
        data["moved_from"] = {"date": _iso(lesson.moved_from[0]), "slot": lesson.moved_from[1]}
    if lesson.moved_to:
        data["moved_to"] = {"date": _iso(lesson.moved_to[0]), "slot": lesson.moved_to[1]}
    return data


def _emit_lessons(school: _School) -> Iterator[Json]:
    order = sorted(
        range(len(school.lessons)),
        key=lambda i: (school.lessons[i].date, school.lessons[i].slot, school.lessons[i].key),
    )
    for i in order:
        lesson = school.lessons[i]
        yield _change(
            "lesson", lesson.id, _lesson_stamp(school, lesson), _lesson_data(school, lesson)
        )


def _emit_works(school: _School) -> Iterator[Json]:
    cal = school.cal
    for work in school.works:
        lesson, group = school.lessons[work.lesson], school.groups[work.group]
        weight = N.WORK_KINDS[work.kind][1]
        planned = min(cal.quarters[lesson.quarter][0], cal.as_of)
        yield _change(
            "work",
            f"wrk-{work.key}",
            _stamp(planned, "09:00"),
            {
                "date": _iso(lesson.date),
                "group_id": group.id,
                "subject_id": SUBJECT_IDS[group.subject],
                "lesson_id": lesson.id,
                "kind": work.kind,
                "title": work.title,
                "weight": weight,
                "is_control": work.kind in ("kr", "dict"),
            },
        )


# --- public API ----------------------------------------------------------------------------


def _build(students: int, seed: int, as_of: dt.date) -> _School:
    if students < 11:
        raise ValueError("the demo school needs at least 11 students: one class per grade")
    cal = _calendar(as_of)
    classes = _plan_classes(students)
    people = _make_people(_rng(seed, "people"), classes, cal.year)
    staff = _make_staff(_rng(seed, "staff"), classes, students)
    school = _School(students, cal, classes, people.pupils, people.guardians, people.links, staff)
    _make_groups(school, _rng(seed, "groups"))
    _make_timetable(school, _rng(seed, "timetable"))
    _make_lessons(school)
    _disrupt(school, _rng(seed, "disruptions"))
    _make_works(school, _rng(seed, "works"))
    _absence_plan(school, _rng(seed, "absences"))
    return school


def iter_changes(
    students: int = 300, seed: int = 1, as_of: dt.date | None = None
) -> Iterator[Json]:
    """The changes of the demo document, referenced entities first, built lazily."""
    school = _build(students, seed, as_of or dt.date.today())
    yield from _emit_school(school)
    yield from _emit_vocabularies()
    yield from _emit_staff(school)
    yield from _emit_holidays(school)
    yield from _emit_people(school)
    yield from _emit_groups(school)
    yield from _emit_timetable(school)
    yield from _emit_lessons(school)
    yield from _emit_works(school)
    yield from _iter_marks(school, _rng(seed, "marks"))
    yield from _iter_attendance(school)
    yield from _iter_homework(school, _rng(seed, "homework"))
    yield from _iter_recommendations(school, _rng(seed, "recommendations"))


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
        "generated_at": _stamp(day, "18:00"),
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
    target = Path(path)
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    header = {key: value for key, value in doc.items() if key != "changes"}
    temporary = target.with_name(f".{target.name}.tmp")
    with temporary.open("w", encoding="utf-8") as out:
        out.write(encode(header)[:-1] + ("," if header else "") + '"changes":[')
        for i, change in enumerate(doc.get("changes", [])):
            out.write(("," if i else "") + encode(change))
        out.write("]}")
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, target)
