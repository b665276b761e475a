"""Pupils and their families: Russian names in correct gendered forms, classes 1–11,
siblings, guardians and their contact details.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass

from otmetka.daemon.demo import names
from otmetka.daemon.demo.common import DJ, Pick
from otmetka.daemon.demo.model import Class, Guardian, Human, Pupil

CLASS_SIZE = 25
LETTERS = "АБВГДЕЖЗИКЛМНОПРСТ"  # Ё and Й are never used as class letters


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
    return "".join(names.TRANSLIT.get(ch, "") for ch in text.lower())


def _sort_key(text: str) -> str:
    # Code-point order puts ё after я; a class list sorts it as е.
    return text.replace("ё", "е").replace("Ё", "Е")


def phone(number: int) -> str:
    """Fake but well-formed numbers: +7 900 000-12-34."""
    return f"+7 900 {number // 10000:03d}-{number // 100 % 100:02d}-{number % 100:02d}"


class Namer:
    """Russian names with their generational frequencies and correct gendered forms."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.boys, self.girls = Pick(names.BOYS), Pick(names.GIRLS)
        self.men, self.women = Pick(names.MEN), Pick(names.WOMEN)
        self.old_men, self.grandmothers = Pick(names.OLD_MEN), Pick(names.GRANDMOTHERS)
        self.surnames = Pick(names.SURNAMES)

    def surname(self) -> str:
        return self.surnames(self.rng)

    def double_surname(self) -> str:
        first = self.surname()
        return f"{first}-{self.surnames(self.rng, avoid=(first,))}"

    def patronymic(self, father: str, male: bool) -> str:
        return names.PATRONYMICS[father][0 if male else 1]

    def adult(self, male: bool, surname: str | None = None, old: bool = False) -> Human:
        if old:
            first = self.old_men(self.rng) if male else self.grandmothers(self.rng)
        else:
            first = self.men(self.rng) if male else self.women(self.rng)
        last = gendered_surname(surname or self.surname(), male)
        return Human(last, first, self.patronymic(self.old_men(self.rng), male), male)

    def child(self, male: bool, surname: str, father: str, avoid: Sequence[str]) -> Human:
        first = self.boys(self.rng, avoid) if male else self.girls(self.rng, avoid)
        return Human(gendered_surname(surname, male), first, self.patronymic(father, male), male)


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


def plan_classes(students: int) -> list[Class]:
    classes: list[Class] = []
    for grade, size in _grade_sizes(students).items():
        count = max(1, min(size, round(size / CLASS_SIZE), len(LETTERS)))
        for i in range(count):
            share = size // count + (1 if i < size % count else 0)
            classes.append(Class(len(classes), grade, LETTERS[i], share))
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


def _family_guardians(namer: Namer, surname: str, father: str) -> list[Guardian]:
    rng, roles = namer.rng, _guardian_roles(namer.rng)
    result: list[Guardian] = []
    for role in roles:
        if role == "father":
            middle = namer.patronymic(namer.old_men(rng), True)
            result.append(Guardian(Human(surname, father, middle, True), "father", True))
        elif role == "mother":
            own = surname if "-" in surname or rng.random() < 0.9 else namer.surname()
            result.append(Guardian(namer.adult(False, own), "mother", True))
        elif role == "grandmother":
            alone = len(roles) == 1  # then she is the legal guardian of the child
            result.append(Guardian(namer.adult(False, surname, old=True), "grandmother", alone))
        else:
            result.append(Guardian(namer.adult(rng.random() < 0.2), "guardian", True))
    return result


@dataclass
class People:
    pupils: list[Pupil]
    guardians: list[Guardian]
    links: list[tuple[int, int]]  # (guardian index, pupil index)


def make_people(rng: random.Random, classes: list[Class], year: int) -> People:
    namer = Namer(rng)
    places = [c.idx for c in classes for _ in range(c.size)]
    families = _group_siblings(rng, [classes[p].grade for p in places])
    doubles = set(rng.sample(range(len(families)), max(1, round(0.02 * len(families)))))
    pupils: list[Pupil] = []
    family_guardians: list[list[Guardian]] = []
    for f, members in enumerate(families):
        surname = namer.double_surname() if f in doubles else namer.surname()
        father = namer.men(rng)
        taken: list[str] = []
        for place in members:
            child = namer.child(rng.random() < 0.5, surname, father, taken)
            taken.append(child.first)
            pupils.append(Pupil(child, places[place], classes[places[place]].grade, f))
        family_guardians.append(_family_guardians(namer, surname, father))
    pupils = _number_pupils(rng, pupils, classes, year)
    return _link_families(rng, pupils, family_guardians)


def _number_pupils(
    rng: random.Random, pupils: list[Pupil], classes: list[Class], year: int
) -> list[Pupil]:
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
    rng: random.Random, pupils: list[Pupil], family_guardians: list[list[Guardian]]
) -> People:
    children: dict[int, list[int]] = {}
    for i, pupil in enumerate(pupils):
        children.setdefault(pupil.family, []).append(i)
    guardians: list[Guardian] = []
    links: list[tuple[int, int]] = []
    for family, kids in children.items():  # in the order of each family's first child
        for guardian in family_guardians[family]:
            for child in kids:
                links.append((len(guardians), child))
                pupils[child].guardians.append(len(guardians))
            guardians.append(guardian)
    _contact_details(rng, guardians)
    return People(pupils, guardians, links)


def _contact_details(rng: random.Random, guardians: list[Guardian]) -> None:
    """~10 % without e-mail, ~5 % on paper delivery; fake phones and example.* addresses."""
    count = len(guardians)
    no_email = set(rng.sample(range(count), round(0.10 * count)))
    paper = set(rng.sample(range(count), round(0.05 * count)))
    used: set[str] = set()
    for i, guardian in enumerate(guardians):
        guardian.num = f"{i + 1:04d}"
        guardian.phone = phone(i + 1) if rng.random() < 0.97 else ""
        guardian.email = "" if i in no_email else _email(rng, guardian.human, used)
        guardian.delivery = "paper" if i in paper else "electronic"


def _email(rng: random.Random, human: Human, used: set[str]) -> str:
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
