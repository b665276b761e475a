"""The demo school in compact form: the records every generation stage fills in, and the
`School` that holds them all until they are emitted as exchange changes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from otmetka.daemon.demo import names
from otmetka.daemon.demo.common import DJ, Json, timestamp


@dataclass
class Vacation:
    key: str
    name: str
    start: dt.date
    end: dt.date
    grade1_only: bool = False


@dataclass
class Calendar:
    year: int
    as_of: dt.date
    quarters: list[tuple[dt.date, dt.date]]
    term_end: dt.date
    vacations: list[Vacation]
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
        return timestamp(self.start - DJ(days=4), "10:00")


@dataclass(slots=True)
class Human:
    last: str
    first: str
    middle: str
    male: bool

    def data(self) -> Json:
        return {"last_name": self.last, "first_name": self.first, "middle_name": self.middle}

    @property
    def full(self) -> str:
        return f"{self.last} {self.first} {self.middle}"


@dataclass(slots=True)
class Guardian:
    human: Human
    relation: str
    legal: bool
    num: str = ""
    email: str = ""
    phone: str = ""
    delivery: str = "electronic"


@dataclass(slots=True)
class Pupil:
    human: Human
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
class Class:
    idx: int
    grade: int
    letter: str
    size: int
    pupils: list[int] = field(default_factory=list)
    teacher: str | None = None

    @property
    def key(self) -> str:
        return f"{self.grade}{names.TRANSLIT[self.letter.lower()]}"

    @property
    def id(self) -> str:
        return f"cls-{self.key}"

    @property
    def name(self) -> str:
        return f"{self.grade}{self.letter}"


@dataclass(slots=True)
class Teacher:
    num: str
    human: Human
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
class Group:
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


@dataclass
class School:
    """Everything generated, in compact form; `entities` turns it into exchange changes."""

    students: int
    cal: Calendar
    classes: list[Class]
    pupils: list[Pupil]
    guardians: list[Guardian]
    links: list[tuple[int, int]]
    staff: list[Teacher]
    groups: list[Group] = field(default_factory=list)
    slots: dict[int, list[tuple[int, int]]] = field(default_factory=dict)  # group -> (wd, slot)
    lessons: list[Lesson] = field(default_factory=list)
    works: list[Work] = field(default_factory=list)
    individual: list[int] = field(default_factory=list)  # pupils on an individual plan
    uncertified: int = -1  # the pupil with many absences and «н/а»
    uncertified_groups: list[int] = field(default_factory=list)
    ill: list[frozenset[dt.date]] = field(default_factory=list)
    exempt: dict[int, tuple[dt.date, dt.date]] = field(default_factory=dict)
    truant: list[bool] = field(default_factory=list)
    attendance: list[tuple[int, int, str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.teacher = {t.id: t for t in self.staff}
        self.bundles: dict[tuple[int, str, int], Teacher] = {}

    def specialists(self, specialty: str) -> list[Teacher]:
        return [t for t in self.staff if t.specialty == specialty]


@dataclass(slots=True)
class Lesson:
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
class Work:
    key: str
    group: int
    lesson: int
    kind: str
    title: str
