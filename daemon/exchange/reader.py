"""Reading and validating an exchange batch, one record at a time.

A year of a big school is a file of a quarter of a gigabyte; holding it whole as Python
objects would take gigabytes. So a file is read as a stream: one pass checks the bytes
(UTF-8, NFC, the digest) before anything else, and the records are then handed to the
importer one by one, as the JSON text of one change where the reader can cut it out
cheaply (pydantic validates that text directly, without building dicts first).

Every problem is collected with where it is (file, record index and id, field) and what to
do about it, so an operator can fix a file in one pass instead of one error per attempt.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import json
import re
import unicodedata
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson
from pydantic import ValidationError

from otmetka.daemon.core.errors import OtmetkaError
from otmetka.daemon.core.marks import MarkError, MarkRules, MarkValue, parse_mark
from otmetka.daemon.exchange import schema as exchange

MAX_LISTED_ERRORS = 30
# Problem texts kept for the error; beyond that they are only counted, so a file that is
# wrong in every one of its million records cannot exhaust memory.
MAX_KEPT_PROBLEMS = 1000
_CHUNK = 4 * 1024 * 1024
# Every change record has exactly one; counting it gives the number of records without
# parsing (a `"` inside a string is escaped, so the key cannot hide in a value).
_RECORD_KEY = b'"updated_at"'


class BatchError(OtmetkaError):
    """A batch that cannot be imported. Nothing of it was applied."""

    def __init__(self, origin: str, problems: list[str], omitted: int = 0) -> None:
        self.origin = origin
        self.problems = problems
        shown = problems[:MAX_LISTED_ERRORS]
        more = len(problems) - len(shown) + omitted
        lines = [*shown, *([f"{origin}: … and {more} more problems"] if more else [])]
        lines.append(f"{origin}: nothing from this file was imported; fix it and import it again.")
        super().__init__("\n".join(lines))


class Problems:
    """The problems of one batch: the first MAX_KEPT_PROBLEMS texts and a count of the rest."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.texts: list[str] = []
        self.omitted = 0

    def add(self, text: str) -> None:
        if len(self.texts) < MAX_KEPT_PROBLEMS:
            self.texts.append(text)
        else:
            self.omitted += 1

    def extend(self, texts: Iterable[str]) -> None:
        for text in texts:
            self.add(text)

    def __bool__(self) -> bool:
        return bool(self.texts)

    def error(self) -> BatchError:
        return BatchError(self.origin, self.texts, self.omitted)


# --- records -----------------------------------------------------------------------------


def _loads(data: bytes) -> Any:
    """JSON from bytes already checked to be UTF-8. `json.loads(bytes)` would guess the
    encoding from the first bytes and take a record starting with a NUL byte for UTF-16."""
    return json.loads(data.decode("utf-8", errors="replace"))


class Records:
    """The change records of a batch, in order: parsed values, or `bytes` holding the JSON
    text of exactly one change (validated straight from the text)."""

    def __init__(self, origin: str) -> None:
        self.origin = origin

    def __iter__(self) -> Iterator[Any]:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def reparse(self, index: int, item: bytes) -> Any:
        """The value of a text `item` that pydantic's JSON parser refused, parsed by the
        standard library (the reference for what JSON we accept); BatchError if it is not
        JSON. Called right after `item` was yielded."""
        try:
            return _loads(item)
        except json.JSONDecodeError as error:
            raise BatchError(
                self.origin,
                [f"{self.origin}: record {index}: malformed JSON ({error.msg})"],
            ) from None


class DocumentRecords(Records):
    """Records already in memory (a document from the HTTP source or the demo generator)."""

    def __init__(self, items: list[Any], origin: str = "") -> None:
        super().__init__(origin)
        self.items = items

    def __iter__(self) -> Iterator[Any]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


@dataclass
class RawBatch:
    origin: str
    header: dict[str, Any]
    changes: Records | list[Any]
    digest: str
    # Envelope keys its reader took out (the page keys of the HTTP source), not the
    # exchange format's; ignored where they turn up again after the records.
    taken: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if isinstance(self.changes, list):
            self.changes = DocumentRecords(self.changes, self.origin)

    @property
    def records(self) -> Records:
        assert isinstance(self.changes, Records)
        return self.changes


# --- checking the bytes ------------------------------------------------------------------


def _not_utf8(origin: str, offset: int) -> BatchError:
    return BatchError(
        origin,
        [
            f"{origin}: byte {offset} is not UTF-8 (the file looks like Windows-1251 "
            "or another legacy encoding); re-save or re-export it as UTF-8"
        ],
    )


def _safe_cut(text: str) -> int:
    """Where `text` may be split without changing its NFC form: before its last ASCII
    character (ASCII never combines with what precedes it)."""
    cut = len(text)
    while cut > 0 and not text[cut - 1].isascii():
        cut -= 1
    return max(cut - 1, 0)


@dataclass
class _Scan:
    digest: str
    records: int
    nfc: bool


def _scan(handle: IO[bytes], origin: str, chunk_size: int) -> _Scan:
    """One pass over the file: digest, UTF-8 check, NFC check, record count."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    records, offset, tail, pending, nfc = 0, 0, b"", "", True
    while chunk := handle.read(chunk_size):
        digest.update(chunk)
        records += (tail + chunk).count(_RECORD_KEY)
        tail = chunk[1 - len(_RECORD_KEY) :]
        held = len(decoder.getstate()[0])
        try:
            text = pending + decoder.decode(chunk)
        except UnicodeDecodeError as error:
            raise _not_utf8(origin, offset - held + error.start) from None
        offset += len(chunk)
        cut = _safe_cut(text) if nfc else 0
        nfc = nfc and unicodedata.is_normalized("NFC", text[:cut])
        pending = text[cut:]
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise _not_utf8(origin, offset - len(decoder.getstate()[0])) from None
    nfc = nfc and unicodedata.is_normalized("NFC", pending)
    return _Scan(digest.hexdigest(), records, nfc)


def _nfc_bytes(data: bytes) -> bytes:
    # Decomposed letters (й, ё as two code points, as macOS writes them) become one.
    return unicodedata.normalize("NFC", data.decode("utf-8")).encode("utf-8")


# --- .jsonl -------------------------------------------------------------------------------


def _jsonl_problem(origin: str, line: int, what: str, message: str) -> BatchError:
    return BatchError(
        origin,
        [
            f"{origin}: line {line} ({what}): malformed JSON ({message}); "
            "the file may be cut off: copy it again"
        ],
    )


class _JsonLines(Records):
    """A .jsonl file: line 1 the envelope header, each further line one change."""

    def __init__(self, handle: IO[bytes], origin: str, scan: _Scan) -> None:
        super().__init__(origin)
        self.handle, self.scan = handle, scan
        self.line = 0
        weakref.finalize(self, handle.close)

    def _lines(self) -> Iterator[bytes]:
        self.handle.seek(0)
        self.line = 0
        for line in self.handle:
            self.line += 1
            if self.line == 1 and line.startswith(codecs.BOM_UTF8):
                line = line[len(codecs.BOM_UTF8) :]
            if line.strip():
                yield line if self.scan.nfc else _nfc_bytes(line)

    def header(self) -> dict[str, Any]:
        first = next(self._lines(), None)
        if first is None:
            raise BatchError(self.origin, [f"{self.origin}: the file is empty"])
        try:
            header = _loads(first)
        except json.JSONDecodeError as error:
            raise _jsonl_problem(self.origin, self.line, "the envelope line", error.msg) from None
        return header if isinstance(header, dict) else {}

    def __iter__(self) -> Iterator[bytes]:
        lines = self._lines()
        next(lines, None)
        yield from lines

    def __len__(self) -> int:
        return self.scan.records

    def reparse(self, index: int, item: bytes) -> Any:
        try:
            return _loads(item)
        except json.JSONDecodeError as error:
            raise _jsonl_problem(self.origin, self.line, f"record {index}", error.msg) from None


# --- .json ---------------------------------------------------------------------------------

_WS = b" \t\r\n"
# Where one change record ends and the next begins: `}` `,` `{` and the opening quote of the
# next record's first key. A piece cut here that parses as one complete JSON value is one
# whole record (JSON is read left to right, so a prefix that parses completely parsed as
# the whole document would); a wrong cut never parses, and the record is then re-read with
# the standard library. So this only has to be right nearly always, and it is: a `"` inside
# a string is escaped and a closing quote is followed by , } ] : or space, so it cannot
# match inside a string, only inside an array of objects, which no entity has.
_BOUNDARY = re.compile(rb'\}[ \t\r\n]*,[ \t\r\n]*(\{)[ \t\r\n]*"[^,}\]: \t\r\n]')
_ID_NEAR = re.compile(r'"id"\s*:\s*"([^"]{1,128})"')
# A single value (a record, an envelope field) larger than this is taken as malformed.
_MAX_VALUE = 64 * 1024 * 1024


class _JsonDocument(Records):
    """A .json file walked with a moving window: the envelope keys are parsed with the
    standard library, the `changes` array is cut into one text per record."""

    def __init__(self, handle: IO[bytes], origin: str, scan: _Scan, chunk_size: int) -> None:
        super().__init__(origin)
        self.handle, self.scan, self.chunk_size = handle, scan, chunk_size
        self.late_header: dict[str, Any] = {}
        self.decoder = json.JSONDecoder()
        weakref.finalize(self, handle.close)
        self._rewind()

    # the window on the file

    def _rewind(self) -> None:
        self.handle.seek(0)
        self.data, self.pos, self.start, self.newlines = b"", 0, 0, 0
        self.carry, self.eof = b"", False
        self.index, self.in_changes, self.done, self.piece_start = 0, False, False, 0
        self._read_more()
        if self.data.startswith(codecs.BOM_UTF8):
            self.pos = len(codecs.BOM_UTF8)

    def _read_more(self) -> bool:
        """Append the next chunk (normalised to NFC if the file needs it); False at the end.

        Offsets in messages count the bytes as read, after normalisation."""
        chunk = b""
        while not chunk and not self.eof:
            raw = self.handle.read(self.chunk_size)
            self.eof = not raw
            chunk = raw if self.scan.nfc else self._normalised(raw)
        self.newlines += self.data.count(b"\n", 0, self.pos)
        self.data = self.data[self.pos :] + chunk
        self.start += self.pos
        self.piece_start -= self.pos
        self.pos = 0
        return bool(chunk)

    def _normalised(self, raw: bytes) -> bytes:
        data, cut = self.carry + raw, len(self.carry) + len(raw)
        if raw:  # keep back from the last ASCII byte on: what follows it may still combine
            while cut > 0 and data[cut - 1] >= 0x80:
                cut -= 1
            cut = max(cut - 1, 0)
        self.carry = data[cut:]
        return _nfc_bytes(data[:cut])

    def _peek(self) -> bytes:
        """The next byte that is not white space, left unread; b"" at the end."""
        while True:
            while self.pos < len(self.data) and self.data[self.pos] in _WS:
                self.pos += 1
            if self.pos < len(self.data) or not self._read_more():
                return self.data[self.pos : self.pos + 1]

    # one value with the standard library

    def _window(self, size: int) -> str:
        end = min(self.pos + size, len(self.data))
        text, _ = codecs.utf_8_decode(self.data[self.pos : end], "strict", False)
        return text

    def _value(self) -> Any:
        """The JSON value at the read position, by the standard library's rules."""
        size = 64 * 1024
        while True:
            self._peek()
            text = self._window(size)
            whole = self.eof and self.pos + size >= len(self.data)
            try:
                value, end = self.decoder.raw_decode(text)
            except json.JSONDecodeError as error:
                if whole or size >= _MAX_VALUE:
                    raise self._malformed(text, error) from None
            else:
                if end < len(text) or whole:  # a number at the window's edge may go on
                    self.pos += len(text[:end].encode("utf-8"))
                    return value
            if self.pos + size >= len(self.data):
                self._read_more()
            size *= 2

    def _malformed(self, text: str, error: json.JSONDecodeError) -> BatchError:
        at = self.pos + len(text[: error.pos].encode("utf-8"))
        line = self.newlines + self.data.count(b"\n", 0, at) + 1
        record = ""
        if self.in_changes:
            match = _ID_NEAR.search(text, 0, 2000)
            record = f" in record {self.index} (id '{match.group(1) if match else '?'}')"
        return BatchError(
            self.origin,
            [
                f"{self.origin}: line {line}, byte {self.start + at}{record}: the JSON is cut "
                f"off or malformed ({error.msg}); the file may be incomplete: copy or "
                "download it again"
            ],
        )

    def _expect(self, allowed: bytes) -> bytes:
        char = self._peek()
        if not char or char not in allowed:
            expected = " or ".join(repr(chr(c)) for c in allowed)
            problem = json.JSONDecodeError(f"Expecting {expected}", "", 0)
            raise self._malformed(self._window(200), problem)
        self.pos += 1
        return char

    # the envelope

    def _key(self, first: bool) -> str | None:
        """The next key of the envelope, or None at its closing brace."""
        if first:
            if self._peek() == b"}":
                self.pos += 1
                return None
        elif self._expect(b",}") == b"}":
            return None
        if self._peek() != b'"':
            self._expect(b'"')
        key = self._value()
        self._expect(b":")
        return str(key)

    def header(self) -> dict[str, Any]:
        """The envelope keys before `changes`; leaves the position at the first record."""
        self._rewind()
        char = self._peek()
        if char != b"{":
            if not char:
                self._expect(b"{")  # an empty file: cut off
            raise BatchError(
                self.origin, [f"{self.origin}: the top level must be a JSON object (an envelope)"]
            )
        self.pos += 1
        header: dict[str, Any] = {}
        while (key := self._key(first=not header)) is not None:
            if key == "changes" and self._peek() == b"[":
                self.pos += 1
                self.in_changes = True
                return header
            header[key] = self._value()
        raise BatchError(self.origin, [f"{self.origin}: envelope: field 'changes' must be a list"])

    def _rest(self) -> dict[str, Any]:
        """Envelope keys after `changes`, up to the end of the document."""
        self.in_changes = False
        rest: dict[str, Any] = {}
        while (key := self._key(first=False)) is not None:
            rest[key] = self._value()
        if self._peek():
            raise self._malformed(self._window(200), json.JSONDecodeError("Extra data", "", 0))
        return rest

    # the records

    def __iter__(self) -> Iterator[Any]:
        self.header()
        self.done = self._peek() == b"]"
        if self.done:
            self.pos += 1
        while not self.done:
            self.piece_start = self.pos
            match = _BOUNDARY.search(self.data, self.pos)
            if match is None and not self.eof:
                self._read_more()
                continue
            if match is None:  # the last record, or one that is not an object
                value = self._value()
                self._after_record()
                yield value
                continue
            self.pos = match.start(1)
            yield self.data[self.piece_start : match.start() + 1]
            self.index += 1
        self.late_header = self._rest()

    def _after_record(self) -> None:
        self.index += 1
        self.done = self._expect(b",]") == b"]"

    def reparse(self, index: int, item: bytes) -> Any:
        self.pos = self.piece_start
        value = self._value()
        self._after_record()
        self.index -= 1  # the generator counts the piece it yielded when it resumes
        return value

    def __len__(self) -> int:
        return self.scan.records

    def read_envelope(self) -> dict[str, Any]:
        """The whole envelope header, wherever its keys stand relative to `changes`."""
        changes_last = self._changes_last()
        header = self.header()
        if changes_last:
            return header
        for item in self:  # keys after `changes`: walk past the records once to reach them
            if isinstance(item, bytes):
                try:
                    orjson.loads(item)
                except orjson.JSONDecodeError:
                    self.reparse(self.index, item)
        header.update(self.late_header)
        self.late_header = {}
        return header

    def _changes_last(self) -> bool:
        """True when the document ends with `]}`: nothing of the envelope follows the
        records (an array after them could only be an unknown key, reported later)."""
        size = self.handle.seek(0, 2)
        self.handle.seek(max(size - 4096, 0))
        tail = self.handle.read()
        return re.search(rb"\][ \t\r\n]*\}[ \t\r\n]*\Z", tail) is not None


def read_file(path: Path, *, chunk_size: int = _CHUNK) -> RawBatch:
    """Open a .json or .jsonl exchange file: the bytes are checked and the envelope read now,
    the records as the importer asks for them, `chunk_size` bytes at a time.

    The file stays open for the life of the batch, so a caller may unlink or move it (an
    unpacked archive member, an inbox file) before the records are read."""
    return _read_stream(path.open("rb"), path.name, path.suffix == ".jsonl", chunk_size)


def read_bytes(data: bytes, origin: str, *, chunk_size: int = _CHUNK) -> RawBatch:
    """A .json document already in memory as bytes (a page from the HTTP source), read
    exactly like a file: validated straight from its text, never built into dicts first."""
    return _read_stream(io.BytesIO(data), origin, False, chunk_size)


def _read_stream(handle: IO[bytes], origin: str, jsonl: bool, chunk_size: int) -> RawBatch:
    try:
        scan = _scan(handle, origin, chunk_size)
        records: _JsonLines | _JsonDocument
        if jsonl:
            records = _JsonLines(handle, origin, scan)
            header = records.header()
        else:
            records = _JsonDocument(handle, origin, scan, chunk_size)
            header = records.read_envelope()
    except BaseException:
        handle.close()
        raise
    return RawBatch(origin, header, records, scan.digest)


def late_header_problems(raw: RawBatch) -> list[str]:
    """Problems with envelope keys that only turned up after the records."""
    late = getattr(raw.changes, "late_header", {})
    late = {key: value for key, value in late.items() if key not in raw.taken}
    if not late:
        return []
    return header_problems(raw.origin, {**raw.header, **late})


# --- documents in memory ------------------------------------------------------------------


def _dump(value: Any) -> bytes:
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # keys that are not strings, integers beyond 64 bits
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str).encode()


def _nfc_value(value: Any, text: bytes) -> Any:
    if text.isascii() or unicodedata.is_normalized("NFC", decoded := text.decode()):
        return value
    return json.loads(unicodedata.normalize("NFC", decoded))


def _split_document(document: Any, origin: str) -> tuple[dict[str, Any], list[Any]]:
    if not isinstance(document, dict):
        raise BatchError(origin, [f"{origin}: the top level must be a JSON object (an envelope)"])
    header = {k: v for k, v in document.items() if k != "changes"}
    changes = document.get("changes")
    if not isinstance(changes, list):
        raise BatchError(origin, [f"{origin}: envelope: field 'changes' must be a list"])
    return header, changes


def from_document(document: dict[str, Any], origin: str) -> RawBatch:
    """A batch already in memory (the HTTP source, the demo generator).

    The digest covers the canonical JSON of the header and of each change in turn, so the
    same document always gets the same digest without building one giant string.
    """
    header, changes = _split_document(document, origin)
    digest = hashlib.sha256()
    text = _dump(header)
    digest.update(text)
    header = _nfc_value(header, text)
    normalised = []
    for change in changes:
        text = _dump(change)
        digest.update(b"\n" + text)
        normalised.append(_nfc_value(change, text))
    return RawBatch(origin, header, normalised, digest.hexdigest())


# --- validating --------------------------------------------------------------------------

_HINTS = {
    "missing": "add it",
    "extra_forbidden": "remove it or check its spelling against docs/exchange-format.md",
    "literal_error": "use one of the values listed in docs/exchange-format.md",
}
_NOT_AN_OBJECT = {"dict_type", "model_attributes_type", "model_type"}


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
    if kind in _NOT_AN_OBJECT and not error["loc"]:
        return "is not a JSON object; each change is an object with type, id, updated_at, data"
    message = "required field is missing" if kind == "missing" else error["msg"]
    if kind != "missing" and "input" in error and not isinstance(error["input"], dict):
        message = f"{error['input']!r}: {message}"
    hint = _HINTS.get(kind, "correct the value")
    return f"field '{_field_path(error['loc'])}': {message}; {hint}"


def _where(origin: str, index: int, raw: Any) -> str:
    record_id = raw.get("id", "?") if isinstance(raw, dict) else "?"
    record_type = raw.get("type", "?") if isinstance(raw, dict) else "?"
    return f"{origin}: record {index} (id '{record_id}', type '{record_type}')"


def header_problems(origin: str, header: dict[str, Any]) -> list[str]:
    try:
        exchange.EnvelopeHeader.model_validate(header)
    except ValidationError as error:
        return [f"{origin}: envelope: {_describe(e)}" for e in error.errors()]  # type: ignore[arg-type]
    return []


def check_header(raw: RawBatch) -> exchange.EnvelopeHeader:
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
    problems = header_problems(raw.origin, header)
    if problems:
        raise BatchError(raw.origin, problems)
    return exchange.EnvelopeHeader.model_validate(header)


_VALIDATOR = exchange.CHANGE_ADAPTER.validator


def _parsed(item: Any) -> Any:
    """A record as a value, to name it in a message."""
    if not isinstance(item, bytes):
        return item
    try:
        return _loads(item)
    except ValueError:  # pydantic's parser took it, the standard library does not
        return None  # named as record <index> (id '?')


def _validate(raw: RawBatch, index: int, item: Any, problems: Problems) -> Any:
    """The validated change, or None with its problems recorded."""
    try:
        if isinstance(item, bytes):
            try:
                return _VALIDATOR.validate_json(item)
            except ValidationError as error:
                if error.errors()[0]["type"] != "json_invalid":
                    raise
            item = raw.records.reparse(index, item)
        return _VALIDATOR.validate_python(item)
    except ValidationError as error:
        where = _where(raw.origin, index, _parsed(item))
        problems.extend(f"{where}: {_describe(e)}" for e in error.errors())  # type: ignore[arg-type]
        return None


class MarkValues:
    """parse_mark with a memory: a year has a million marks but a few dozen distinct cells."""

    def __init__(self, rules: MarkRules) -> None:
        self.rules = rules
        self.known: dict[tuple[str, str, float | None], MarkValue | str] = {}

    def of(self, data: Any) -> MarkValue | str:
        """The numbers of a mark, or the text of why it is not on its scale."""
        key = (data.raw, data.scale, data.value)
        found = self.known.get(key)
        if found is None:
            try:
                found = parse_mark(data.raw, data.scale, data.value, self.rules)
            except MarkError as error:
                found = str(error)
            self.known[key] = found
        return found


# (record index, validated change, numbers of a mark or None)
Valid = tuple[int, Any, MarkValue | None]


def validated(raw: RawBatch, rules: MarkRules, problems: Problems) -> Iterator[Valid | None]:
    """Every record in order: validated, or None when it has problems (recorded)."""
    marks = MarkValues(rules)
    records = raw.records
    for index, item in enumerate(records):
        change = _validate(raw, index, item, problems)
        if change is None:
            yield None
        elif change.type != "mark" or change.data is None:
            yield index, change, None
        elif isinstance(value := marks.of(change.data), str):
            problems.add(
                f"{raw.origin}: record {index} (id '{change.id}', type 'mark'): "
                f"field 'raw': {value}"
            )
            yield None
        else:
            yield index, change, value
