"""Exchange format v1: the one shape upstream data arrives in.

These pydantic models are the single source of truth: the importer validates with them and
`otmetka schema` prints the JSON Schema generated from them, so the documentation cannot drift
from the code. Entity payloads forbid unknown fields so that a typo in an adapter is caught
at the border instead of silently dropping data.
"""

from __future__ import annotations

import datetime as dt
import re
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

from otmetka.db import models

FORMAT_NAME = "otmetka-exchange"
FORMAT_VERSION = 1

# Characters no string may hold: the C0 and C1 control characters (NUL, ESC, DEL…), which
# pages, mail and PDFs would carry on, and the bidirectional embeddings, overrides and
# isolates, which make a name read as another. The patterns are written for Python, the
# JSON Schema (ECMA-262) and pydantic's Rust engine alike: only \xHH and \uHHHH escapes.
_CONTROLS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
_BREAKS = r"\x09\x0a\x0d\u2028\u2029"  # tab and line breaks: Markdown and free text only
LINE_PATTERN = rf"^[^{_CONTROLS}{_BREAKS}]*$"
TEXT_PATTERN = rf"^[^{_CONTROLS}\u2028\u2029]*$"
TIME_PATTERN = r"^([01]\d|2[0-3]):[0-5]\d$"

# What each format pattern asks for, in the words of an error message.
PATTERN_RULES = {
    TIME_PATTERN: "must be a time HH:MM with a two-digit hour, like 08:30",
}
_FORBIDDEN_IN_LINE = re.compile(rf"[{_CONTROLS}{_BREAKS}]")
_FORBIDDEN_IN_TEXT = re.compile(rf"[{_CONTROLS}\u2028\u2029]")


def forbidden_character(pattern: str, value: str) -> tuple[int, str] | None:
    """(position from 1, character) of the first character `pattern` refuses in `value`,
    when `pattern` is one of the character rules; None otherwise."""
    rule = {LINE_PATTERN: _FORBIDDEN_IN_LINE, TEXT_PATTERN: _FORBIDDEN_IN_TEXT}.get(pattern)
    found = rule.search(value) if rule is not None else None
    return (found.start() + 1, found.group()) if found else None


def _line(least: int, most: int) -> Any:
    """Field constraints of a one-line string: no control characters, tabs or line breaks."""
    return Field(min_length=least or None, max_length=most, pattern=LINE_PATTERN)


Id = Annotated[str, _line(1, 128)]
Name = Annotated[str, _line(1, 200)]
OptionalName = Annotated[str, _line(0, 200)]
LongLine = Annotated[str, _line(0, 500)]
Room = Annotated[str, _line(0, 64)]
Letter = Annotated[str, _line(0, 16)]
Cursor = Annotated[str, _line(0, 1024)]
ZoneName = Annotated[str, _line(1, 64)]
# Markdown and free text: tabs and line breaks allowed, other control characters not.
Text = Annotated[str, Field(max_length=20000, pattern=TEXT_PATTERN)]
Comment = Annotated[str, Field(max_length=2000, pattern=TEXT_PATTERN)]
# Addresses and phone numbers arrive as upstream systems keep them («Иванова <a@b.ru>»,
# «8 (912) 345-67-89 мама»): one line of limited length here; whether an address can take a
# letter is decided when mail is queued, which names each one it cannot use.
Email = Annotated[str, _line(0, 254), Field(examples=["kuznetsova@school7.example"])]
Phone = Annotated[str, _line(0, 64), Field(examples=["+7 911 555-12-34"])]
TimeOfDay = Annotated[str, Field(max_length=5, pattern=TIME_PATTERN, examples=["08:30"])]


class Entity(BaseModel):
    """Base of every entity payload (`data` of a change)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Ordered(Entity):
    """An entity with dates that must come in order. Only these pay for the check: a Python
    call per record, which marks, lessons and attendance (most of a year) would not need."""

    # (earlier field, later field) pairs that must not be out of order
    _ordered: ClassVar[tuple[tuple[str, str], ...]] = ()

    @model_validator(mode="after")
    def _check_order(self) -> Ordered:
        for first, second in self._ordered:
            early, late = getattr(self, first), getattr(self, second)
            if early is not None and late is not None and late < early:
                raise ValueError(f"'{second}' ({late}) is before '{first}' ({early})")
        return self


class Person(Entity):
    last_name: Name
    first_name: Name
    middle_name: OptionalName = ""


class School(Entity):
    """The school itself; exactly one per exchange stream."""

    name: Name
    short_name: OptionalName = ""
    address: LongLine = ""
    head_name: OptionalName = ""


class AcademicYear(Ordered):
    name: Name = Field(description="e.g. 2026/2027")
    start: dt.date
    end: dt.date

    _ordered: ClassVar[tuple[tuple[str, str], ...]] = (("start", "end"),)


class Period(Ordered):
    academic_year_id: Id
    kind: Literal["quarter", "trimester", "half", "year"]
    name: Name = Field(description="e.g. «1 четверть»")
    start: dt.date
    end: dt.date

    _ordered: ClassVar[tuple[tuple[str, str], ...]] = (("start", "end"),)


class Holiday(Ordered):
    name: Name
    kind: Literal["vacation", "holiday", "quarantine", "short_day"]
    start: dt.date
    end: dt.date
    class_unit_ids: list[Id] = Field(default=[], description="empty means the whole school")

    _ordered: ClassVar[tuple[tuple[str, str], ...]] = (("start", "end"),)


class Subject(Entity):
    name: Name
    short_name: OptionalName = ""


class Teacher(Person):
    email: Email = ""
    phone: Phone = ""
    position: OptionalName = ""
    roles: list[Literal["teacher", "class_teacher", "deputy_head", "head", "support"]] = []


class Student(Person):
    class_unit_id: Id
    birth_date: dt.date | None = None
    left_at: dt.date | None = Field(default=None, description="date the student left")


class Guardian(Person):
    email: Email = ""
    phone: Phone = ""
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
    letter: Letter = ""
    academic_year_id: Id
    class_teacher_id: Id | None = None


class Group(Entity):
    name: Name
    kind: Literal["whole_class", "subgroup", "stream", "individual_plan"]
    subject_id: Id | None = None
    class_unit_ids: list[Id] = Field(min_length=1)


class Membership(Ordered):
    group_id: Id
    student_id: Id
    date_from: dt.date = Field(alias="from")
    date_to: dt.date | None = Field(default=None, alias="to")

    _ordered: ClassVar[tuple[tuple[str, str], ...]] = (("date_from", "date_to"),)


class BellSlot(Ordered):
    number: int = Field(ge=0, le=20)
    start: TimeOfDay
    end: TimeOfDay
    shift: int = Field(default=1, ge=1, le=3)

    _ordered: ClassVar[tuple[tuple[str, str], ...]] = (("start", "end"),)


class TimetableEntry(Ordered):
    group_id: Id
    subject_id: Id
    teacher_id: Id
    weekday: int = Field(ge=1, le=7, description="1 = Monday")
    slot: int = Field(ge=0, le=20)
    room: Room = ""
    valid_from: dt.date
    valid_to: dt.date | None = None

    _ordered: ClassVar[tuple[tuple[str, str], ...]] = (("valid_from", "valid_to"),)


class Substitution(Entity):
    original_teacher_id: Id
    reason: LongLine = ""


class SlotRef(Entity):
    date: dt.date
    slot: int = Field(ge=0, le=20)


class Lesson(Entity):
    date: dt.date
    slot: int = Field(ge=0, le=20)
    group_id: Id
    subject_id: Id
    teacher_id: Id
    room: Room = ""
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
    title: LongLine = ""
    weight: float = Field(default=1.0, gt=0, le=10)
    is_control: bool = False


class Mark(Entity):
    student_id: Id
    subject_id: Id
    date: dt.date
    lesson_id: Id | None = None
    work_id: Id | None = None
    period_id: Id | None = Field(default=None, description="for period and year finals")
    raw: Annotated[str, _line(1, 16)] = Field(
        description="as written: «5», «4-», «3/5», «зачёт», «н/а»"
    )
    scale: Literal["five", "pass_fail", "custom"] = "five"
    value: float | None = Field(default=None, description="numeric value; required for custom")
    weight: float = Field(default=1.0, gt=0, le=10)
    kind: Literal["regular", "debt", "period_final", "year_final", "not_certified"] = "regular"
    teacher_id: Id | None = None
    comment: Comment = ""


class AttendanceCode(Entity):
    """Vocabulary of attendance codes (Н, Б, У, УП, НП, ОП, ОСВ…), as data."""

    title: Name
    category: Literal["present", "excused", "unexcused", "illness", "late", "exempt"]


class Attendance(Entity):
    student_id: Id
    lesson_id: Id
    code: Annotated[str, _line(1, 8)]
    category: Literal["present", "excused", "unexcused", "illness", "late", "exempt"]
    minutes_late: int = Field(default=0, ge=0, le=240)


class Homework(Ordered):
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


def _payload_models() -> dict[str, type[Entity]]:
    """Entity type -> payload model, in the order of db's one list of journal tables
    (`models.JOURNAL_TABLES`): each payload model here bears its table model's class name."""
    here = globals()
    return {entity: here[table.__name__] for entity, table in models.JOURNAL_TABLES.items()}


ENTITY_MODELS: dict[str, type[Entity]] = _payload_models()

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
    tz: ZoneName = "Europe/Moscow"

    @field_validator("tz")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("unknown time zone; use an IANA name like Europe/Moscow") from None
        return value

    mode: Literal["full", "delta"]
    cursor: Cursor = Field(description="opaque position in the upstream stream; stored on import")
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
