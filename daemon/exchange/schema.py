"""Exchange format v1: the one shape upstream data arrives in.

These pydantic models are the single source of truth: the importer validates with them and
`otmetka schema` prints the JSON Schema generated from them, so the documentation cannot drift
from the code. Entity payloads forbid unknown fields so that a typo in an adapter is caught
at the border instead of silently dropping data.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    create_model,
    field_validator,
    model_validator,
)

FORMAT_NAME = "otmetka-exchange"
FORMAT_VERSION = 1

Id = Annotated[str, Field(min_length=1, max_length=128)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Text = Annotated[str, Field(max_length=20000)]
TimeOfDay = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", examples=["08:30"])]


class Entity(BaseModel):
    """Base of every entity payload (`data` of a change)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    # (earlier field, later field) pairs that must not be out of order
    _ordered: ClassVar[tuple[tuple[str, str], ...]] = ()

    @model_validator(mode="after")
    def _check_order(self) -> Entity:
        for first, second in self._ordered:
            early, late = getattr(self, first), getattr(self, second)
            if early is not None and late is not None and late < early:
                raise ValueError(f"'{second}' ({late}) is before '{first}' ({early})")
        return self


class Person(Entity):
    last_name: Name
    first_name: Name
    middle_name: str = ""


class School(Entity):
    """The school itself; exactly one per exchange stream."""

    name: Name
    short_name: str = ""
    address: str = ""
    head_name: str = ""


class AcademicYear(Entity):
    name: Name = Field(description="e.g. 2026/2027")
    start: dt.date
    end: dt.date

    _ordered: ClassVar[tuple[tuple[str, str], ...]] = (("start", "end"),)


class Period(Entity):
    academic_year_id: Id
    kind: Literal["quarter", "trimester", "half", "year"]
    name: Name = Field(description="e.g. «1 четверть»")
    start: dt.date
    end: dt.date

    _ordered: ClassVar[tuple[tuple[str, str], ...]] = (("start", "end"),)


class Holiday(Entity):
    name: Name
    kind: Literal["vacation", "holiday", "quarantine", "short_day"]
    start: dt.date
    end: dt.date
    class_unit_ids: list[Id] = Field(default=[], description="empty means the whole school")

    _ordered: ClassVar[tuple[tuple[str, str], ...]] = (("start", "end"),)


class Subject(Entity):
    name: Name
    short_name: str = ""


class Teacher(Person):
    email: str = ""
    phone: str = ""
    position: str = ""
    roles: list[Literal["teacher", "class_teacher", "deputy_head", "head", "support"]] = []


class Student(Person):
    class_unit_id: Id
    birth_date: dt.date | None = None
    left_at: dt.date | None = Field(default=None, description="date the student left")


class Guardian(Person):
    email: str = ""
    phone: str = ""
    delivery: Literal["electronic", "paper"] = Field(
        default="electronic", description="paper: the family gets printed extracts"
    )


class GuardianLink(Entity):
    guardian_id: Id
    student_id: Id
    relation: Literal["mother", "father", "grandmother", "grandfather", "guardian", "other"]
    is_legal_representative: bool = True


class ClassUnit(Entity):
    name: Name = Field(description="e.g. «7Б»")
    grade: int = Field(ge=0, le=12)
    letter: str = ""
    academic_year_id: Id
    class_teacher_id: Id | None = None


class Group(Entity):
    name: Name
    kind: Literal["whole_class", "subgroup", "stream", "individual_plan"]
    subject_id: Id | None = None
    class_unit_ids: list[Id] = Field(min_length=1)


class Membership(Entity):
    group_id: Id
    student_id: Id
    date_from: dt.date = Field(alias="from")
    date_to: dt.date | None = Field(default=None, alias="to")

    _ordered: ClassVar[tuple[tuple[str, str], ...]] = (("date_from", "date_to"),)


class BellSlot(Entity):
    number: int = Field(ge=0, le=20)
    start: TimeOfDay
    end: TimeOfDay
    shift: int = Field(default=1, ge=1, le=3)

    _ordered: ClassVar[tuple[tuple[str, str], ...]] = (("start", "end"),)


class TimetableEntry(Entity):
    group_id: Id
    subject_id: Id
    teacher_id: Id
    weekday: int = Field(ge=1, le=7, description="1 = Monday")
    slot: int = Field(ge=0, le=20)
    room: str = ""
    valid_from: dt.date
    valid_to: dt.date | None = None

    _ordered: ClassVar[tuple[tuple[str, str], ...]] = (("valid_from", "valid_to"),)


class Substitution(Entity):
    original_teacher_id: Id
    reason: str = ""


class SlotRef(Entity):
    date: dt.date
    slot: int = Field(ge=0, le=20)


class Lesson(Entity):
    date: dt.date
    slot: int = Field(ge=0, le=20)
    group_id: Id
    subject_id: Id
    teacher_id: Id
    room: str = ""
    topic: Text = ""
    status: Literal["scheduled", "held", "cancelled", "moved"] = "scheduled"
    substitution: Substitution | None = None
    moved_from: SlotRef | None = None
    moved_to: SlotRef | None = None


class WorkKind(Entity):
    """Vocabulary of assessment kinds, as data (upstream systems differ)."""

    name: Name
    default_weight: float = Field(default=1.0, gt=0, le=10)


class Work(Entity):
    date: dt.date
    group_id: Id
    subject_id: Id
    lesson_id: Id | None = None
    kind: Id = Field(description="a work_kind id")
    title: str = ""
    weight: float = Field(default=1.0, gt=0, le=10)
    is_control: bool = False


class Mark(Entity):
    student_id: Id
    subject_id: Id
    date: dt.date
    lesson_id: Id | None = None
    work_id: Id | None = None
    period_id: Id | None = Field(default=None, description="for period and year finals")
    raw: Annotated[str, Field(min_length=1, max_length=16)] = Field(
        description="as written: «5», «4-», «3/5», «зачёт», «н/а»"
    )
    scale: Literal["five", "pass_fail", "custom"] = "five"
    value: float | None = Field(default=None, description="numeric value; required for custom")
    weight: float = Field(default=1.0, gt=0, le=10)
    kind: Literal["regular", "debt", "period_final", "year_final", "not_certified"] = "regular"
    teacher_id: Id | None = None
    comment: str = ""


class AttendanceCode(Entity):
    """Vocabulary of attendance codes (Н, Б, У, УП, НП, ОП, ОСВ…), as data."""

    title: Name
    category: Literal["present", "excused", "unexcused", "illness", "late", "exempt"]


class Attendance(Entity):
    student_id: Id
    lesson_id: Id
    code: Annotated[str, Field(min_length=1, max_length=8)]
    category: Literal["present", "excused", "unexcused", "illness", "late", "exempt"]
    minutes_late: int = Field(default=0, ge=0, le=240)


class Homework(Entity):
    subject_id: Id
    group_id: Id
    lesson_id: Id | None = None
    assigned_on: dt.date
    due_date: dt.date
    text: Text = Field(description="markdown")
    student_ids: list[Id] = Field(default=[], description="individual homework; empty = all")

    _ordered: ClassVar[tuple[tuple[str, str], ...]] = (("assigned_on", "due_date"),)


class Recommendation(Entity):
    student_id: Id
    teacher_id: Id
    subject_id: Id | None = None
    date: dt.date
    text: Text = Field(description="markdown")


ENTITY_MODELS: dict[str, type[Entity]] = {
    "school": School,
    "academic_year": AcademicYear,
    "period": Period,
    "holiday": Holiday,
    "subject": Subject,
    "teacher": Teacher,
    "student": Student,
    "guardian": Guardian,
    "guardian_link": GuardianLink,
    "class_unit": ClassUnit,
    "group": Group,
    "membership": Membership,
    "bell_slot": BellSlot,
    "timetable_entry": TimetableEntry,
    "lesson": Lesson,
    "work_kind": WorkKind,
    "work": Work,
    "mark": Mark,
    "attendance_code": AttendanceCode,
    "attendance": Attendance,
    "homework": Homework,
    "recommendation": Recommendation,
}

# Fields that point at another entity, and the entity they point at. The importer checks
# every one against the batch and the database; an unknown reference rejects the batch.
REFERENCES: dict[str, dict[str, str]] = {
    "period": {"academic_year_id": "academic_year"},
    "holiday": {"class_unit_ids": "class_unit"},
    "student": {"class_unit_id": "class_unit"},
    "guardian_link": {"guardian_id": "guardian", "student_id": "student"},
    "class_unit": {"academic_year_id": "academic_year", "class_teacher_id": "teacher"},
    "group": {"subject_id": "subject", "class_unit_ids": "class_unit"},
    "membership": {"group_id": "group", "student_id": "student"},
    "timetable_entry": {"group_id": "group", "subject_id": "subject", "teacher_id": "teacher"},
    "lesson": {
        "group_id": "group",
        "subject_id": "subject",
        "teacher_id": "teacher",
        "substitution.original_teacher_id": "teacher",
    },
    "work": {
        "group_id": "group",
        "subject_id": "subject",
        "lesson_id": "lesson",
        "kind": "work_kind",
    },
    "mark": {
        "student_id": "student",
        "subject_id": "subject",
        "lesson_id": "lesson",
        "work_id": "work",
        "period_id": "period",
        "teacher_id": "teacher",
    },
    "attendance": {"student_id": "student", "lesson_id": "lesson"},
    "homework": {
        "subject_id": "subject",
        "group_id": "group",
        "lesson_id": "lesson",
        "student_ids": "student",
    },
    "recommendation": {"student_id": "student", "teacher_id": "teacher", "subject_id": "subject"},
}


class ChangeBase(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: Id
    op: Literal["upsert", "delete"] = "upsert"
    updated_at: dt.datetime

    @model_validator(mode="after")
    def _upsert_needs_data(self) -> ChangeBase:
        if self.op == "upsert" and getattr(self, "data", None) is None:
            raise ValueError("an upsert needs 'data'")
        return self


def _change_model(type_name: str, entity: type[Entity]) -> type[ChangeBase]:
    name = "".join(part.title() for part in type_name.split("_")) + "Change"
    fields: dict[str, Any] = {"type": (Literal[type_name], ...), "data": (entity | None, None)}
    return create_model(name, __base__=ChangeBase, **fields)


CHANGE_MODELS: dict[str, type[ChangeBase]] = {
    type_name: _change_model(type_name, entity) for type_name, entity in ENTITY_MODELS.items()
}


class EnvelopeHeader(BaseModel):
    """Everything in an exchange document but its changes."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["otmetka-exchange"]
    version: Literal[1]
    school_id: Id
    tz: str = "Europe/Moscow"

    @field_validator("tz")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("unknown time zone; use an IANA name like Europe/Moscow") from None
        return value

    mode: Literal["full", "delta"]
    cursor: str = Field(description="opaque position in the upstream stream; stored on import")
    generated_at: dt.datetime


def _union_of_changes() -> Any:
    from typing import Union

    return Annotated[Union[tuple(CHANGE_MODELS.values())], Field(discriminator="type")]  # noqa: UP007


CHANGE_ADAPTER: TypeAdapter[Any] = TypeAdapter(_union_of_changes())


class Envelope(EnvelopeHeader):
    """A whole exchange document, used for the published JSON Schema."""

    changes: list[_union_of_changes()]  # type: ignore[valid-type]


def json_schema() -> dict[str, Any]:
    """The JSON Schema of an exchange document, generated from the models above."""
    schema = Envelope.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://otmetka.example/schema/exchange-v1.json"
    schema["title"] = "otmetka exchange format v1"
    return schema
