"""Turning validated changes into table rows: the row makers and the takers (row, identity,
references, pages touched) the importer generates once per entity, as Python source
compiled for speed."""

from __future__ import annotations

import datetime as dt
import functools
import json
import types
import typing
from collections.abc import Callable, Container, Mapping
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from otmetka.daemon.core.marks import MarkValue
from otmetka.daemon.exchange import schema
from otmetka.db import journal

# --- rows ---------------------------------------------------------------------------------


# Dates as text, looked up before they are written out (`_DATES.get(x) or _iso(x)` in the
# generated rows): a year's million rows hold a few hundred distinct dates.
_DATES: dict[dt.date, str] = {}


def _iso(value: dt.date | None) -> str | None:
    if value is None:
        return None
    if len(_DATES) > 100_000:  # a hostile file of distinct dates: keep the cache small
        _DATES.clear()
    text = _DATES[value] = value.isoformat()
    return text


# One encoder for every row: json.dumps with options builds a new one per call.
_ENCODE_LIST = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode


def _json_list(value: list[Any]) -> str:
    return _ENCODE_LIST(value) if value else "[]"


def _flag(value: bool | None) -> bool | None:
    # A bool, not 1/0: SQLite stores it as 1/0 anyway, PostgreSQL refuses an int for a boolean.
    return None if value is None else bool(value)


def _sub(value: Any, name: str) -> Any:
    return None if value is None else value[name]


def _bare(annotation: Any) -> tuple[Any, bool]:
    """(type without None, whether None is allowed) of a field annotation."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0], len(args) < len(typing.get_args(annotation))
    return annotation, False


def _convert(expression: str, annotation: Any) -> str:
    """Python source turning a validated value into what the column stores."""
    kind, _ = _bare(annotation)
    if kind is dt.date:
        return f"(_dates({expression}) or _iso({expression}))"
    if kind is bool:
        return f"_flag({expression})"
    if typing.get_origin(kind) is list:
        return f"_json_list({expression})"
    return expression


def key_of(model: type[BaseModel], name: str) -> str:
    """The key of field `name` in a validated change's dict: as in the JSON (exchange.plain)."""
    return model.model_fields[name].alias or name


def _nested_source(model: type[BaseModel], column: str) -> str | None:
    """`substitution_reason` -> the `reason` of the nested `substitution`, if it is one."""
    for name, info in model.model_fields.items():
        inner, _ = _bare(info.annotation)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            sub = column.removeprefix(f"{name}_")
            if sub != column and sub in inner.model_fields:
                value = f"_sub(d[{key_of(model, name)!r}], {key_of(inner, sub)!r})"
                return _convert(value, inner.model_fields[sub].annotation)
    return None


_SPECIAL = {
    "id": "cid",
    "updated_at": "at",
    "deleted_at": "None",  # an upsert clears a tombstone: the row is back
    "mark.value": "mark.value",
    "mark.value2": "mark.value2",
    "mark.passed": "mark.passed",  # a bool or None already (validation.MarkValues)
}


def _column_source(entity: str, column: str, defaults: dict[str, Any]) -> str:
    model = schema.ENTITY_MODELS[entity]
    special = _SPECIAL.get(column) or _SPECIAL.get(f"{entity}.{column}")
    if special:
        return special
    if column in model.model_fields:
        key = key_of(model, column)
        return _convert(f"d[{key!r}]", model.model_fields[column].annotation)
    nested = _nested_source(model, column)
    if nested:
        return nested
    name = f"_default_{len(defaults)}"  # a column upstream does not send: its default
    defaults[name] = journal.column_default(entity, column)
    return name


_HELPERS = {
    "_iso": _iso,
    "_dates": _DATES.get,
    "_json_list": _json_list,
    "_flag": _flag,
    "_sub": _sub,
}
RowMaker = Callable[[Any, Mapping[str, Any], str, MarkValue | None], tuple[Any, ...]]


def row_maker(entity: str) -> RowMaker:
    """The function that turns one validated change into its table row, in column order.

    It is generated once per entity as one tuple expression: a year is a million rows, and
    a loop over columns per row would cost more than SQLite's own work on it.
    """
    names: dict[str, Any] = dict(_HELPERS)
    parts = [_column_source(entity, c, names) for c in journal.column_names(entity)]
    body = f"    cid = change['id']\n    return ({', '.join(parts)},)\n"
    source = f"def row(change, d, at, mark):\n{body}"
    exec(compile(source, f"<row of {entity}>", "exec"), names)
    return typing.cast(RowMaker, names["row"])


class Reference(NamedTuple):
    entity: str
    label: str  # as written in REFERENCES, e.g. "substitution.original_teacher_id"
    target: str
    top: str
    sub: str | None
    many: bool
    optional: bool


@functools.cache  # asked for by every batch (every page of a pull); read only
def entity_references(entity: str) -> list[Reference]:
    model = schema.ENTITY_MODELS[entity]
    found = []
    for label, target in schema.REFERENCES.get(entity, {}).items():
        top, _, sub = label.partition(".")
        kind, optional = _bare(model.model_fields[top].annotation)
        many = typing.get_origin(kind) is list
        found.append(Reference(entity, label, target, top, sub or None, many, optional))
    return found


def _reference_lines(number: int, ref: Reference, value: str) -> list[str]:
    """Source checking one reference field, whose value `value` reads: `s<n>` holds the
    target ids upserted so far in the batch, `k<n>` those known to be in the database
    already."""
    lines, v = [], value
    if ref.sub:
        lines, v = [f"v = None if {value} is None else {value}[{ref.sub!r}]"], "v"
    if ref.many:
        return [
            *lines,
            f"for w in {v}:",
            f"    if w not in s{number} and w not in k{number}: later((index, cid, R{number}, w))",
        ]
    guard = f"{v} is not None and " if ref.optional or ref.sub else ""
    unseen = f"{v} not in s{number} and {v} not in k{number}"
    return [*lines, f"if {guard}{unseen}: later((index, cid, R{number}, {v}))"]


class Sink(NamedTuple):
    """What the taker of one entity reads and writes while a batch streams past."""

    upserted: dict[str, int]  # id -> fingerprint << INDEX_BITS | record index
    deleted: dict[str, tuple[int, str]]
    rows: list[tuple[Any, ...]]  # written to the table by `flush` every CHUNK_ROWS rows
    flush: Callable[[], None]
    problems: list[str]  # once it holds one, rows are no longer kept
    repeat: Callable[[int, Any, int, int], None]  # (index, change, packed, earlier)
    later: Callable[[tuple[int, str, Reference, str]], None]  # a reference to look up
    stamps: dict[str, str]  # UTC text by the text of an updated_at (exchange.plain)
    utc: Callable[[str], str | None]  # the UTC text of an updated_at; None if it is not one
    take_delete: Callable[[int, Any, str], None]
    refused: Callable[[int, Any], None]  # a change the models refuse: records why
    affected: Any  # its `everyone` is set by an entity that touches every page
    own: set[str] | None  # where the change's own id goes, if it has a page
    linked: tuple[set[str], ...]  # where each of LINKED_FIELDS present in the entity goes
    targets: tuple[tuple[Container[str], Container[str]], ...]  # per reference: batch, known
    marks: dict[tuple[Any, ...], MarkValue | str]  # by (raw, scale, value): what mark_of said
    mark_of: Callable[[Any], MarkValue | str]
    mark_problem: Callable[[int, Any, str], None]


Taker = Callable[[int, Any], None]
CHUNK_ROWS = 5000
INDEX_BITS = 32  # a seen id keeps (fingerprint << INDEX_BITS | record index) in one int
# Fields naming whose pages a row touches; `group_id` only for the entities in GROUP_ENTITIES.
LINKED_FIELDS = ("student_id", "guardian_id", "group_id")
GROUP_ENTITIES = {"lesson", "work", "homework", "timetable_entry"}
_MARKS = "mark"  # the entity whose rows hold a mark's numbers, parsed from its `raw`


@functools.cache  # read only, like entity_references
def linked_fields(entity: str) -> list[str]:
    fields = schema.ENTITY_MODELS[entity].model_fields
    allowed = [f for f in LINKED_FIELDS if f != "group_id" or entity in GROUP_ENTITIES]
    return [name for name in allowed if name in fields]


def _mark_lines(entity: str) -> list[str]:
    if entity != _MARKS:
        return []
    return [
        "if d is not None:",
        "    mark = marks((d['raw'], d['scale'], d['value'])) or mark_of(d)",
        "    if mark.__class__ is str:",
        "        return mark_problem(index, change, mark)",
    ]


def _field_locals(entity: str) -> dict[str, str]:
    """Keys of `data` read more than once (references, pages touched) -> a local name each:
    a local costs less than a dict lookup, a million times over."""
    model = schema.ENTITY_MODELS[entity]
    keys = [key_of(model, ref.top) for ref in entity_references(entity)]
    keys += [key_of(model, name) for name in linked_fields(entity)]
    return {key: f"f{n}" for n, key in enumerate(dict.fromkeys(keys))}


def _take_lines(entity: str, row: str, everyone: bool, own: bool) -> list[str]:
    """The body of `take(index, change)` for one entity (see `taker`)."""
    fields = _field_locals(entity)
    for key, name in fields.items():
        row = row.replace(f"d[{key!r}]", name)
    model = schema.ENTITY_MODELS[entity]
    references = entity_references(entity)
    # A mark's row keeps its derived numbers; its input `value` counts for identity too.
    fingerprint = "(row, d['value'])" if entity == _MARKS else "row"
    lines = [
        "d = change['data']",
        *_mark_lines(entity),
        "m = change['updated_at']",
        "at = stamps(m) or utc(m)",
        "if at is None:",
        "    return refused(index, change)",
        "if change['op'] == 'delete':",
        "    return take_delete(index, change, at)",
        "if d is None:",
        "    return refused(index, change)",
        "cid = change['id']",
        *(f"{name} = d[{key!r}]" for key, name in fields.items()),
        f"row = ({row},)",
        f"packed = hash({fingerprint}) << {INDEX_BITS} | index",
        "earlier = setdefault(cid, packed)",
        "if earlier is not packed or cid in deleted:",
        "    if earlier is packed:",
        "        earlier = deleted[cid][0]",
        "    return repeat(index, change, packed, earlier)",
        *(
            line
            for n, ref in enumerate(references)
            for line in _reference_lines(n, ref, fields[key_of(model, ref.top)])
        ),
        *(
            f"if {fields[key_of(model, name)]}: L{n}({fields[key_of(model, name)]})"
            for n, name in enumerate(linked_fields(entity))
        ),
        *(["own(cid)"] if own else []),
        *(["affected.everyone = True"] if everyone else []),
        "if not problems:",
        "    append(row)",
        f"    if len(rows) >= {CHUNK_ROWS}:",
        "        flush()",
    ]
    return [part for line in lines for part in line.split("\n")]


def taker(entity: str, *, everyone: bool, own: bool) -> Callable[[Sink], Taker]:
    """`make(sink)` -> `take(index, change)`, which takes one valid change of `entity`:
    checks a mark's `raw`, remembers the id and the fingerprint of its data (a repeat with
    other data is a problem), passes every reference to an id neither among the batch's ids
    so far nor known to be stored to `sink.later`, notes the pages it touches, and buffers
    its row. Generated as one function per entity: this is the work of every record, a
    million times in a year, and calls and loops cost more here than the work itself."""
    references = entity_references(entity)
    names: dict[str, Any] = {f"R{n}": ref for n, ref in enumerate(references)}
    names.update(_HELPERS)
    row = ", ".join(_column_source(entity, c, names) for c in journal.column_names(entity))
    prologue = [
        "upserted, deleted, rows, problems = p.upserted, p.deleted, p.rows, p.problems",
        "setdefault, append, flush, repeat = upserted.setdefault, rows.append, p.flush, p.repeat",
        "later, utc, take_delete, affected = p.later, p.utc, p.take_delete, p.affected",
        "stamps, marks, mark_of = p.stamps.get, p.marks.get, p.mark_of",
        "mark_problem, refused = p.mark_problem, p.refused",
        "own = p.own.add if p.own is not None else None",
        *(f"L{n} = p.linked[{n}].add" for n in range(len(linked_fields(entity)))),
        *(f"s{n}, k{n} = p.targets[{n}]" for n in range(len(references))),
    ]
    source = "\n".join(
        [
            "def make(p):",
            *(f"    {line}" for line in prologue),
            "    def take(index, change):",
            *(f"        {line}" for line in _take_lines(entity, row, everyone, own)),
            "    return take",
        ]
    )
    exec(compile(source, f"<take {entity}>", "exec"), names)
    return typing.cast(Callable[[Sink], Taker], names["make"])


def utc_text(moment: dt.datetime, tz: ZoneInfo) -> str:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=tz)
    return aware.astimezone(dt.UTC).isoformat(timespec="microseconds")
