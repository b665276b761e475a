"""Turning validated changes into table rows: the row makers and reference checkers the
importer generates once per entity, as Python source compiled for speed."""

from __future__ import annotations

import datetime as dt
import json
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from otmetka.daemon.core.marks import MarkValue
from otmetka.daemon.exchange import schema
from otmetka.db import journal

# --- rows ---------------------------------------------------------------------------------


def _iso(value: dt.date | None) -> str | None:
    return None if value is None else value.isoformat()


def _json_list(value: list[Any]) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _flag(value: bool | None) -> bool | None:
    # A bool, not 1/0: SQLite stores it as 1/0 anyway, PostgreSQL refuses an int for a boolean.
    return None if value is None else bool(value)


def _sub(value: Any, name: str) -> Any:
    return None if value is None else getattr(value, name)


def _bare(annotation: Any) -> tuple[Any, bool]:
    """(type without None, whether None is allowed) of a field annotation."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0], len(args) < len(typing.get_args(annotation))
    return annotation, False


def _convert(expression: str, annotation: Any, optional: bool = False) -> str:
    """Python source turning a validated value into what the column stores."""
    kind, may_be_none = _bare(annotation)
    if kind is dt.date:
        return f"_iso({expression})" if optional or may_be_none else f"{expression}.isoformat()"
    if kind is bool:
        return f"_flag({expression})"
    if typing.get_origin(kind) is list:
        return f"_json_list({expression})"
    return expression


def _nested_source(model: type[BaseModel], column: str) -> str | None:
    """`substitution_reason` -> the `reason` of the nested `substitution`, if it is one."""
    for name, info in model.model_fields.items():
        inner, _ = _bare(info.annotation)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            sub = column.removeprefix(f"{name}_")
            if sub != column and sub in inner.model_fields:
                value = f"_sub(d[{name!r}], {sub!r})"
                return _convert(value, inner.model_fields[sub].annotation, optional=True)
    return None


_SPECIAL = {
    "id": "change.id",
    "updated_at": "at",
    "deleted_at": "None",  # an upsert clears a tombstone: the row is back
    "mark.value": "mark.value",
    "mark.value2": "mark.value2",
    "mark.passed": "_flag(mark.passed)",
}


def _column_source(entity: str, column: str, defaults: dict[str, Any]) -> str:
    model = schema.ENTITY_MODELS[entity]
    special = _SPECIAL.get(column) or _SPECIAL.get(f"{entity}.{column}")
    if special:
        return special
    if column in model.model_fields:
        return _convert(f"d[{column!r}]", model.model_fields[column].annotation)
    nested = _nested_source(model, column)
    if nested:
        return nested
    name = f"_default_{len(defaults)}"  # a column upstream does not send: its default
    defaults[name] = journal.column_default(entity, column)
    return name


RowMaker = Callable[[Any, Mapping[str, Any], str, MarkValue | None], tuple[Any, ...]]


def row_maker(entity: str) -> RowMaker:
    """The function that turns one validated change into its table row, in column order.

    It is generated once per entity as one tuple expression: a year is a million rows, and
    a loop over columns per row would cost more than SQLite's own work on it.
    """
    names: dict[str, Any] = {
        "_iso": _iso,
        "_json_list": _json_list,
        "_flag": _flag,
        "_sub": _sub,
    }
    parts = [_column_source(entity, c, names) for c in journal.column_names(entity)]
    source = f"def row(change, d, at, mark):\n    return ({', '.join(parts)},)\n"
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


def entity_references(entity: str) -> list[Reference]:
    model = schema.ENTITY_MODELS[entity]
    found = []
    for label, target in schema.REFERENCES.get(entity, {}).items():
        top, _, sub = label.partition(".")
        kind, optional = _bare(model.model_fields[top].annotation)
        many = typing.get_origin(kind) is list
        found.append(Reference(entity, label, target, top, sub or None, many, optional))
    return found


def _reference_lines(number: int, ref: Reference) -> list[str]:
    """Source checking one reference field: `s<n>` holds the target ids upserted so far in
    the batch, `k<n>` those known to be in the database already."""
    lines = [f"v = d[{ref.top!r}]"]
    if ref.sub:
        lines.append(f"v = None if v is None else v.{ref.sub}")
    if ref.many:
        return [
            *lines,
            "for w in v:",
            f"    if w not in s{number} and w not in k{number}: later((index, cid, R{number}, w))",
        ]
    guard = "v is not None and " if ref.optional or ref.sub else ""
    unseen = f"v not in s{number} and v not in k{number}"
    return [*lines, f"if {guard}{unseen}: later((index, cid, R{number}, v))"]


CheckerFactory = Callable[..., Callable[[Mapping[str, Any], int, str], None]]


def reference_checker(entity: str) -> CheckerFactory:
    """`make(batch ids, known ids of each target..., later)` -> `check(data, index, change
    id)`, which passes every reference to an id neither among the batch's ids so far nor
    known to be stored to `later`. Generated like the rows."""
    references = entity_references(entity)
    body = [line for n, ref in enumerate(references) for line in _reference_lines(n, ref)]
    targets = "".join(f"s{n}, k{n}, " for n in range(len(references)))
    source = "\n".join(
        [
            f"def make({targets}later):",
            "    def check(d, index, cid):",
            *(f"        {line}" for line in body or ["pass"]),
            "    return check",
        ]
    )
    names: dict[str, Any] = {f"R{n}": ref for n, ref in enumerate(references)}
    exec(compile(source, f"<references of {entity}>", "exec"), names)
    return typing.cast(CheckerFactory, names["make"])


def utc_text(moment: dt.datetime, tz: ZoneInfo) -> str:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=tz)
    return aware.astimezone(dt.UTC).isoformat(timespec="microseconds")
