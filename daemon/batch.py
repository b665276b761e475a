"""Reading and validating an exchange batch, before anything touches the database.

Every problem is collected with where it is (file, record index and id, field) and what to
do about it, so an operator can fix a file in one pass instead of one error per attempt.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from daemon import exchange
from daemon.errors import OtmetkaError
from daemon.marks import MarkError, MarkRules, MarkValue, parse_mark

MAX_LISTED_ERRORS = 30


class BatchError(OtmetkaError):
    """A batch that cannot be imported. Nothing of it was applied."""

    def __init__(self, origin: str, problems: list[str]) -> None:
        self.origin = origin
        self.problems = problems
        shown = problems[:MAX_LISTED_ERRORS]
        more = len(problems) - len(shown)
        lines = [*shown, *([f"{origin}: … and {more} more problems"] if more else [])]
        lines.append(f"{origin}: nothing from this file was imported; fix it and import it again.")
        super().__init__("\n".join(lines))


@dataclass
class RawBatch:
    origin: str
    header: dict[str, Any]
    changes: list[Any]
    digest: str


@dataclass
class Batch:
    origin: str
    header: exchange.EnvelopeHeader
    changes: list[Any]
    digest: str
    mark_values: dict[int, MarkValue] = field(default_factory=dict)


# --- reading -----------------------------------------------------------------------------


def _decode(data: bytes, origin: str) -> str:
    try:
        text = data.decode("utf-8-sig")  # a BOM from Windows tools is harmless
    except UnicodeDecodeError as error:
        raise BatchError(
            origin,
            [
                f"{origin}: byte {error.start} is not UTF-8 (the file looks like Windows-1251 "
                "or another legacy encoding); re-save or re-export it as UTF-8"
            ],
        ) from None
    # Decomposed letters (й, ё as two code points, as macOS writes them) become one.
    return unicodedata.normalize("NFC", text)


def _record_id_near(text: str, start: int) -> str:
    match = re.search(r'"id"\s*:\s*"([^"]{1,128})"', text[start : start + 2000])
    return match.group(1) if match else "?"


def _locate_broken_record(text: str) -> tuple[int, int] | None:
    """Index and offset of the first change that does not parse, to name it in the error."""
    decoder = json.JSONDecoder()
    changes_at = text.find('"changes"')
    position = text.find("[", changes_at) + 1 if changes_at >= 0 else -1
    if position <= 0:
        return None
    index = 0
    while True:
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1
        if position >= len(text) or text[position] == "]":
            return None
        try:
            _, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            return index, position
        index += 1


def _json_problem(text: str, origin: str, error: json.JSONDecodeError) -> BatchError:
    where = f"line {error.lineno}, column {error.colno}"
    broken = _locate_broken_record(text)
    record = ""
    if broken is not None:
        index, offset = broken
        record = f" in record {index} (id '{_record_id_near(text, offset)}')"
    return BatchError(
        origin,
        [
            f"{origin}: {where}{record}: the JSON is cut off or malformed ({error.msg}); "
            "the file may be incomplete: copy or download it again"
        ],
    )


def _parse_json(text: str, origin: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise _json_problem(text, origin, error) from None


def _split_document(document: Any, origin: str) -> tuple[dict[str, Any], list[Any]]:
    if not isinstance(document, dict):
        raise BatchError(origin, [f"{origin}: the top level must be a JSON object (an envelope)"])
    header = {k: v for k, v in document.items() if k != "changes"}
    changes = document.get("changes")
    if not isinstance(changes, list):
        raise BatchError(origin, [f"{origin}: envelope: field 'changes' must be a list"])
    return header, changes


def _parse_jsonl(text: str, origin: str) -> tuple[dict[str, Any], list[Any]]:
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise BatchError(origin, [f"{origin}: the file is empty"])
    rows: list[Any] = []
    for number, line in enumerate(lines, start=1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as error:
            record = f"record {number - 2}" if number > 1 else "the envelope line"
            raise BatchError(
                origin,
                [
                    f"{origin}: line {number} ({record}): malformed JSON ({error.msg}); "
                    "the file may be cut off: copy it again"
                ],
            ) from None
    header = rows[0] if isinstance(rows[0], dict) else {}
    return header, rows[1:]


def read_file(path: Path) -> RawBatch:
    """Read a .json or .jsonl exchange file."""
    origin = path.name
    data = path.read_bytes()
    text = _decode(data, origin)
    if path.suffix == ".jsonl":
        header, changes = _parse_jsonl(text, origin)
    else:
        header, changes = _split_document(_parse_json(text, origin), origin)
    return RawBatch(origin, header, changes, hashlib.sha256(data).hexdigest())


def from_document(document: dict[str, Any], origin: str) -> RawBatch:
    """A batch already in memory (the HTTP source, the demo generator)."""
    text = json.dumps(document, ensure_ascii=False, sort_keys=True)
    document = json.loads(unicodedata.normalize("NFC", text))
    header, changes = _split_document(document, origin)
    return RawBatch(origin, header, changes, hashlib.sha256(text.encode()).hexdigest())


# --- validating --------------------------------------------------------------------------

_HINTS = {
    "missing": "add it",
    "extra_forbidden": "remove it or check its spelling against docs/exchange-format.md",
    "literal_error": "use one of the values listed in docs/exchange-format.md",
}


def _field_path(loc: tuple[Any, ...]) -> str:
    # A change's loc is (type tag, 'data', field, ...): name the field inside the record.
    parts = list(loc[1:]) if loc and loc[0] in exchange.CHANGE_MODELS else list(loc)
    if parts[:1] == ["data"] and len(parts) > 1:
        parts = parts[1:]
    return ".".join(str(p) for p in parts)


def _describe(error: dict[str, Any]) -> str:
    kind = error["type"]
    if kind == "union_tag_invalid":
        known = ", ".join(exchange.ENTITY_MODELS)
        return f"unknown entity type {error['ctx']['tag']!r}; use one of: {known}"
    if kind == "union_tag_not_found":
        return "field 'type': required field is missing; add the entity type"
    message = "required field is missing" if kind == "missing" else error["msg"]
    if kind != "missing" and "input" in error and not isinstance(error["input"], dict):
        message = f"{error['input']!r}: {message}"
    hint = _HINTS.get(kind, "correct the value")
    return f"field '{_field_path(error['loc'])}': {message}; {hint}"


def _where(origin: str, index: int, raw: Any) -> str:
    record_id = raw.get("id", "?") if isinstance(raw, dict) else "?"
    record_type = raw.get("type", "?") if isinstance(raw, dict) else "?"
    return f"{origin}: record {index} (id '{record_id}', type '{record_type}')"


def _check_header(raw: RawBatch) -> exchange.EnvelopeHeader:
    header = raw.header
    if header.get("format") != exchange.FORMAT_NAME:
        raise BatchError(
            raw.origin,
            [
                f"{raw.origin}: envelope: field 'format' is {header.get('format')!r}, not "
                f"'{exchange.FORMAT_NAME}'; this is not an otmetka exchange file"
            ],
        )
    if header.get("version") != exchange.FORMAT_VERSION:
        raise BatchError(
            raw.origin,
            [
                f"{raw.origin}: envelope: field 'version' is {header.get('version')!r}; "
                f"this otmetka reads version {exchange.FORMAT_VERSION}: upgrade otmetka "
                "or ask upstream for version 1"
            ],
        )
    try:
        return exchange.EnvelopeHeader.model_validate(header)
    except ValidationError as error:
        problems = [f"{raw.origin}: envelope: {_describe(e)}" for e in error.errors()]  # type: ignore[arg-type]
        raise BatchError(raw.origin, problems) from None


def _validate_changes(raw: RawBatch, rules: MarkRules, problems: list[str]) -> Batch:
    header = _check_header(raw)
    batch = Batch(raw.origin, header, [], raw.digest)
    for index, item in enumerate(raw.changes):
        try:
            change = exchange.CHANGE_ADAPTER.validate_python(item)
        except ValidationError as error:
            where = _where(raw.origin, index, item)
            problems.extend(f"{where}: {_describe(e)}" for e in error.errors())  # type: ignore[arg-type]
            continue
        if change.type == "mark" and change.data is not None:
            _mark_value(batch, index, change, rules, problems)
        batch.changes.append((index, change))
    return batch


def _mark_value(
    batch: Batch, index: int, change: Any, rules: MarkRules, problems: list[str]
) -> None:
    data = change.data
    try:
        batch.mark_values[index] = parse_mark(data.raw, data.scale, data.value, rules)
    except MarkError as error:
        problems.append(
            f"{batch.origin}: record {index} (id '{change.id}', type 'mark'): field 'raw': {error}"
        )


def _check_duplicates(batch: Batch, problems: list[str]) -> None:
    first_seen: dict[tuple[str, str], tuple[int, Any]] = {}
    for index, change in batch.changes:
        key = (change.type, change.id)
        if key not in first_seen:
            first_seen[key] = (index, change)
            continue
        earlier_index, earlier = first_seen[key]
        if earlier.model_dump() != change.model_dump():
            problems.append(
                f"{batch.origin}: record {index} (id '{change.id}', type '{change.type}'): "
                f"repeats record {earlier_index} with different data; an id may appear once "
                "per file: keep the right version and remove the other"
            )


def reference_values(change: Any, dotted: str) -> Iterator[str]:
    """The ids a (possibly nested or list) reference field holds."""
    value: Any = change.data
    for part in dotted.split("."):
        value = getattr(value, part, None) if value is not None else None
    if isinstance(value, list):
        yield from value
    elif value is not None:
        yield value


def validate(raw: RawBatch, rules: MarkRules) -> tuple[Batch, list[str]]:
    """Check everything that can be checked without the database."""
    problems: list[str] = []
    batch = _validate_changes(raw, rules, problems)
    _check_duplicates(batch, problems)
    return batch, problems


def changes_by_type(batch: Batch) -> dict[str, list[tuple[int, Any]]]:
    grouped: dict[str, list[tuple[int, Any]]] = {name: [] for name in exchange.ENTITY_MODELS}
    for index, change in batch.changes:
        grouped[change.type].append((index, change))
    return grouped


def sorted_references() -> list[tuple[str, str, str]]:
    return [
        (entity, field_name, target)
        for entity, fields in exchange.REFERENCES.items()
        for field_name, target in fields.items()
    ]
