"""Validating an exchange batch: the envelope header, then each change record against the
exchange models, with every problem named by where it is and what to do about it."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from otmetka.daemon.core.marks import MarkError, MarkRules, MarkValue, parse_mark
from otmetka.daemon.exchange import plain, schema
from otmetka.daemon.exchange.records import BatchError, Block, Problems, RawBatch, loads


def late_header_problems(raw: RawBatch) -> list[str]:
    """Problems with envelope keys that only turned up after the records."""
    late = getattr(raw.changes, "late_header", {})
    late = {key: value for key, value in late.items() if key not in raw.taken}
    if not late:
        return []
    return header_problems(raw.origin, {**raw.header, **late})


# --- validating --------------------------------------------------------------------------

_HINTS = {
    "missing": "add it",
    "extra_forbidden": "remove it or check its spelling against docs/exchange-format.md",
    "literal_error": "use one of the values listed in docs/exchange-format.md",
    "string_too_long": "shorten it",
}
_NOT_AN_OBJECT = {"dict_type", "model_attributes_type", "model_type"}
_SHOWN = 60  # characters of a bad value quoted in a message


def _field_path(loc: tuple[Any, ...]) -> str:
    # A change's loc is (type tag, 'data', field, ...): name the field inside the record.
    parts = list(loc[1:]) if loc and loc[0] in schema.CHANGE_MODELS else list(loc)
    if parts[:1] == ["data"] and len(parts) > 1:
        parts = parts[1:]
    return ".".join(str(p) for p in parts)


def _quoted(value: Any) -> str:
    """A value as a message shows it: escaped, and cut short (a name may be 30,000
    characters long)."""
    text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "…"


def _shown(text: str) -> str:
    """Text from a record put into a message: no control characters, not too long."""
    shown = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text[:_SHOWN])
    return shown + ("…" if len(text) > _SHOWN else "")


def _string_problem(error: dict[str, Any]) -> str | None:
    """The message of a string that broke a length, character or format rule."""
    kind, value = error["type"], error.get("input")
    if not isinstance(value, str):
        return None
    if kind == "string_too_long":
        most = error["ctx"]["max_length"]
        return f"{_quoted(value)}: {len(value)} characters, at most {most} allowed"
    if kind == "string_unicode":
        return (
            "holds an unpaired UTF-16 surrogate (a lone \\ud800–\\udfff escape); "
            "send the character itself or a complete surrogate pair"
        )
    if kind != "string_pattern_mismatch":
        return None
    pattern = error["ctx"]["pattern"]
    found = schema.forbidden_character(pattern, value)
    if found is not None:
        where, char = found
        return (
            f"{_quoted(value)}: character {where} is U+{ord(char):04X}, which no text may hold "
            "(control characters, direction overrides; line breaks and tabs only in Markdown "
            "and free text, see docs/exchange-format.md); remove it"
        )
    rule = schema.PATTERN_RULES.get(pattern)
    return f"{_quoted(value)}: {rule}; correct the value" if rule else None


def _describe(error: dict[str, Any]) -> str:
    kind = error["type"]
    if kind == "union_tag_invalid":
        known = ", ".join(schema.ENTITY_MODELS)
        return f"unknown entity type {_quoted(error['ctx']['tag'])}; use one of: {known}"
    if kind == "union_tag_not_found":
        return "field 'type': required field is missing; add the entity type"
    if kind in _NOT_AN_OBJECT and not error["loc"]:
        return "is not a JSON object; each change is an object with type, id, updated_at, data"
    field = _field_path(error["loc"])
    special = _string_problem(error)
    if special is not None:
        return f"field '{field}': {special}" + (f"; {_HINTS[kind]}" if kind in _HINTS else "")
    message = "required field is missing" if kind == "missing" else error["msg"]
    if kind != "missing" and "input" in error and not isinstance(error["input"], dict):
        message = f"{_quoted(error['input'])}: {message}"
    hint = _HINTS.get(kind, "correct the value")
    return f"field '{field}': {message}; {hint}"


def _where(origin: str, index: int, raw: Any) -> str:
    record_id = _shown(str(raw.get("id", "?"))) if isinstance(raw, dict) else "?"
    record_type = _shown(str(raw.get("type", "?"))) if isinstance(raw, dict) else "?"
    return f"{origin}: record {index} (id '{record_id}', type '{record_type}')"


def header_problems(origin: str, header: dict[str, Any]) -> list[str]:
    try:
        schema.EnvelopeHeader.model_validate(header)
    except ValidationError as error:
        return [f"{origin}: envelope: {_describe(e)}" for e in error.errors()]  # type: ignore[arg-type]
    return []


def check_header(raw: RawBatch) -> schema.EnvelopeHeader:
    header = raw.header
    if header.get("format") != schema.FORMAT_NAME:
        raise BatchError(
            raw.origin,
            [
                f"{raw.origin}: envelope: field 'format' is {header.get('format')!r}, not "
                f"'{schema.FORMAT_NAME}'; this is not an otmetka exchange file"
            ],
        )
    if header.get("version") != schema.FORMAT_VERSION:
        raise BatchError(
            raw.origin,
            [
                f"{raw.origin}: envelope: field 'version' is {header.get('version')!r}; "
                f"this otmetka reads version {schema.FORMAT_VERSION}: upgrade otmetka "
                "or ask upstream for version 1"
            ],
        )
    problems = header_problems(raw.origin, header)
    if problems:
        raise BatchError(raw.origin, problems)
    return schema.EnvelopeHeader.model_validate(header)


# The models: what is valid, and the words of every problem.
_MODELS = schema.CHANGE_ADAPTER.validator


def _parsed(item: Any) -> Any:
    """A record as a value, to name it in a message."""
    if not isinstance(item, bytes):
        return item
    try:
        return loads(item)
    except ValueError:  # pydantic's parser took it, the standard library does not
        return None  # named as record <index> (id '?')


def refusal(origin: str, index: int, item: Any, *, must: bool = False) -> list[str]:
    """The problems the models find in a record (its JSON text or its value). With `must`
    (a record the models are known to refuse) never none: should the models take it after
    all, that is a problem too, rather than a record silently left out."""
    try:
        if isinstance(item, bytes):
            _MODELS.validate_json(item)
        else:
            _MODELS.validate_python(item)
    except ValidationError as error:
        where = _where(origin, index, _parsed(item))
        return [f"{where}: {_describe(e)}" for e in error.errors()]  # type: ignore[arg-type]
    if must:
        where = _where(origin, index, item)
        return [f"{where}: could not be taken; please report this with the record"]
    return []


def _refused(raw: RawBatch, index: int, item: Any, problems: Problems) -> Any:
    """A record the plain validator refused: None with its problems, in the models' words.

    The two accept the same records; should they ever differ, the models decide."""
    found = refusal(raw.origin, index, item)
    if found:
        problems.extend(found)
        return None
    model = (
        _MODELS.validate_json(item) if isinstance(item, bytes) else _MODELS.validate_python(item)
    )
    change: dict[str, Any] = model.model_dump(by_alias=True)
    change["updated_at"] = change["updated_at"].isoformat()  # text, as plain keeps it
    return change


def _validate(raw: RawBatch, index: int, item: Any, problems: Problems) -> Any:
    """The validated change as a dict (exchange.plain), or None with its problems recorded."""
    if isinstance(item, bytes):
        try:
            return plain.CHANGE.validate_json(item)
        except ValidationError as error:
            if error.errors()[0]["type"] != "json_invalid":
                return _refused(raw, index, item, problems)
        item = raw.records.reparse(index, item)
    try:
        return plain.CHANGE.validate_python(item)
    except ValidationError:
        return _refused(raw, index, item, problems)


class MarkValues:
    """parse_mark with a memory: a year has a million marks but a few dozen distinct cells."""

    def __init__(self, rules: MarkRules) -> None:
        self.rules = rules
        self.known: dict[tuple[str, str, float | None], MarkValue | str] = {}

    def of(self, data: Any) -> MarkValue | str:
        """The numbers of a mark, or the text of why it is not on its scale."""
        key = (data["raw"], data["scale"], data["value"])
        found = self.known.get(key)
        if found is None:
            try:
                found = parse_mark(*key, self.rules)
            except MarkError as error:
                found = str(error)
            else:  # the row takes `passed` as it is: a bool, never 1/0 (PostgreSQL)
                if found.passed is not None and found.passed.__class__ is not bool:
                    found = dataclasses.replace(found, passed=bool(found.passed))
            self.known[key] = found
        return found


def mark_problem(origin: str, index: int, change_id: str, text: str) -> str:
    """The problem of a mark whose `raw` is not on its scale (`text` says why)."""
    return f"{origin}: record {index} (id '{change_id}', type 'mark'): field 'raw': {text}"


Take = Callable[[int, Any], None]
PROGRESS_STEP = 5000


def _block(item: Block) -> list[Any] | None:
    """The changes of a block, or None when it is not valid as a whole."""
    try:
        text = item.text
        validator = plain.CHANGES if plain.may_hold_refused(text) else plain.CHANGES_OF_PLAIN_TEXT
        return validator.validate_json(b"[" + text + b"]")  # type: ignore[no-any-return]
    except ValidationError:
        return None


def stream(
    raw: RawBatch,
    problems: Problems,
    takers: Mapping[str, Take],
    progress: Callable[[int], None] | None = None,
) -> None:
    """Validate every record in order and hand each valid change to the taker of its type
    as `take(index, change)`; the problems of the others are recorded.

    One loop with the common cases inline (a block of records' text, all valid; one record's
    text, valid): it runs a million times for a year, and a call per record costs here."""
    validate_json, records = plain.CHANGE.validate_json, raw.records
    index, reported = 0, 0
    for item in records:
        if item.__class__ is Block:
            changes = _block(item)
            records.took(None if changes is None else len(changes))
            if changes is None:
                continue
            for number, change in enumerate(changes, index):
                takers[change["type"]](number, change)
            index += len(changes)
        else:
            change = None
            if item.__class__ is bytes:
                with contextlib.suppress(ValidationError):
                    change = validate_json(item)
            if change is None:
                change = _validate(raw, index, item, problems)
            if change is not None:
                takers[change["type"]](index, change)
            index += 1
        if progress and index - reported >= PROGRESS_STEP:
            reported = _progressed(progress, reported, index)
    if progress and index > reported:
        progress(index - reported)


def _progressed(progress: Callable[[int], None], reported: int, index: int) -> int:
    while index - reported >= PROGRESS_STEP:
        progress(PROGRESS_STEP)
        reported += PROGRESS_STEP
    return reported
