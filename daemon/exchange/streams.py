""".jsonl and .json exchange files read as streams: the envelope now, each change record as
the text the reader cuts out of the file when the importer asks for it."""

from __future__ import annotations

import codecs
import json
import re
import weakref
from collections.abc import Generator, Iterator
from typing import IO, Any

import orjson

from otmetka.daemon.exchange.records import (
    BatchError,
    Block,
    Records,
    Scan,
    loads,
    nfc_bytes,
)

# --- .jsonl -------------------------------------------------------------------------------


def _jsonl_problem(origin: str, line: int, what: str, message: str) -> BatchError:
    return BatchError(
        origin,
        [
            f"{origin}: line {line} ({what}): malformed JSON ({message}); "
            "the file may be cut off: copy it again"
        ],
    )


class JsonLines(Records):
    """A .jsonl file: line 1 the envelope header, each further line one change."""

    def __init__(self, handle: IO[bytes], origin: str, scan: Scan) -> None:
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
                yield line if self.scan.nfc else nfc_bytes(line)

    def header(self) -> dict[str, Any]:
        first = next(self._lines(), None)
        if first is None:
            raise BatchError(self.origin, [f"{self.origin}: the file is empty"])
        try:
            header = loads(first)
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
            return loads(item)
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
# Records are handed over in blocks of about this many bytes, validated in one call; the
# last records of the window, and those of a block that is not valid as a whole, one by one.
_BLOCK_BYTES = 64 * 1024
# The text first decoded to read one value, doubled until the value fits: most are envelope
# keys of a few bytes (a page of a pull has a dozen), and decoding 64 KB for each cost more
# than the page's other reading.
_FIRST_WINDOW = 2048
# A single value (a record, an envelope field) larger than this is taken as malformed.
_MAX_VALUE = 64 * 1024 * 1024


class JsonDocument(Records):
    """A .json file walked with a moving window: the envelope keys are parsed with the
    standard library, the `changes` array is cut into one text per record."""

    def __init__(self, handle: IO[bytes], origin: str, scan: Scan, chunk_size: int) -> None:
        super().__init__(origin)
        self.handle, self.scan, self.chunk_size = handle, scan, chunk_size
        self.late_header: dict[str, Any] = {}
        self.answer: int | None = None
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
        return nfc_bytes(data[:cut])

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
        size = _FIRST_WINDOW
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
        return self._records(blocks=True)

    def _records(self, *, blocks: bool) -> Iterator[Any]:
        self.header()
        self.done = self._peek() == b"]"
        if self.done:
            self.pos += 1
        while not self.done:
            if (yield from self._window_records(blocks)) or self.done:
                continue  # reparse read a record itself: look for the next boundary again
            if not self.eof:  # the record at the read position goes on in the next chunk
                self._read_more()
                continue
            self.piece_start = self.pos  # the last record, or one that is not an object
            value = self._value()
            self._after_record()
            yield value
        self.late_header = self._rest()

    def _window_records(self, blocks: bool) -> Generator[Any, None, bool]:
        """The records that end in the window: blocks of them while a boundary lies a block
        further on, then one by one. Returns True when it stopped early because `reparse`
        moved the read position."""
        data, start = self.data, self.pos
        while blocks and (match := _BOUNDARY.search(data, start + _BLOCK_BYTES)):
            self.piece_start, end, self.pos = start, match.start() + 1, match.start(1)
            self.answer = None
            yield Block(data[start:end])
            if self.answer is None:  # not valid as a whole: each record on its own, as always
                if (yield from self._pieces(data, start, match.end())):
                    return True
            else:
                self.index += self.answer
            start = self.pos
        return (yield from self._pieces(data, start, len(data)))

    def _pieces(self, data: bytes, start: int, stop: int) -> Generator[bytes, None, bool]:
        """Each record between `start` and `stop`, cut at the boundary after it. Returns
        True when `reparse` read a record itself (and maybe more of the file)."""
        for match in _BOUNDARY.finditer(data, start, stop):
            self.piece_start = start
            self.pos = start = match.start(1)
            yield data[self.piece_start : match.start() + 1]
            self.index += 1
            if self.pos != start or self.data is not data or self.done:
                return True
        return False

    def took(self, changes: int | None) -> None:
        self.answer = changes

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
        # keys after `changes`: walk past the records once to reach them
        for item in self._records(blocks=False):
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
