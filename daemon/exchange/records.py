"""The records of an exchange batch: the batch itself, its problems and the one pass that
checks its bytes (UTF-8, NFC, the digest) before anything is parsed."""

from __future__ import annotations

import codecs
import hashlib
import json
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from otmetka.daemon.core.errors import OtmetkaError

MAX_LISTED_ERRORS = 30
# Problem texts kept for the error; beyond that they are only counted, so a file that is
# wrong in every one of its million records cannot exhaust memory.
MAX_KEPT_PROBLEMS = 1000
CHUNK = 4 * 1024 * 1024
# Every change record has exactly one; counting it gives the number of records without
# parsing (a `"` inside a string is escaped, so the key cannot hide in a value).
_RECORD_KEY = b'"updated_at"'
_KEY_CUT = len(_RECORD_KEY) - 1  # bytes of a key that may stand on either side of a cut


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


def loads(data: bytes) -> Any:
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

    def took(self, changes: int | None) -> None:
        """Called right after a Block was yielded: how many changes it held, or None when it
        is not valid as a whole, and its records then come again one by one."""
        raise NotImplementedError

    def reparse(self, index: int, item: bytes) -> Any:
        """The value of a text `item` that pydantic's JSON parser refused, parsed by the
        standard library (the reference for what JSON we accept); BatchError if it is not
        JSON. Called right after `item` was yielded."""
        try:
            return loads(item)
        except json.JSONDecodeError as error:
            raise BatchError(
                self.origin,
                [f"{self.origin}: record {index}: malformed JSON ({error.msg})"],
            ) from None


class Block:
    """The JSON text of several records in a row, separated by commas, to be validated
    together as one array (see Records.took)."""

    __slots__ = ("text",)

    def __init__(self, text: bytes) -> None:
        self.text = text


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


# Bytes that cannot start a character NFC changes or that changes its neighbour in NFC:
# ASCII, UTF-8 continuation bytes, and the lead bytes of U+0080-U+02FF (Latin, the signs
# of Western texts), U+0400-U+047F and U+04C0-U+04FF (the Cyrillic letters). Text of these
# characters alone is NFC (a test checks it against the Unicode database); for the rest,
# as for the combining marks from U+0300 on, the standard library decides.
_NFC_AS_IT_IS = bytes(range(0xCC)) + bytes((0xD0, 0xD1, 0xD3))


def _may_change_in_nfc(held: bytes, chunk: bytes, pending: str) -> bool:
    """Whether the text of `chunk` (after the `held` bytes of a character it completes, and
    `pending`, the text kept back before it) holds a character outside _NFC_AS_IT_IS.
    Dropping bytes in C costs a fifth of checking the text."""
    return bool(
        chunk.translate(None, _NFC_AS_IT_IS)
        or held.translate(None, _NFC_AS_IT_IS)
        or pending.encode("utf-8", "surrogatepass").translate(None, _NFC_AS_IT_IS)
    )


@dataclass
class Scan:
    digest: str
    records: int
    nfc: bool


def scan_bytes(handle: IO[bytes], origin: str, chunk_size: int) -> Scan:
    """One pass over the file: digest, UTF-8 check, NFC check, record count."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    records, offset, tail, pending, nfc = 0, 0, b"", "", True
    while chunk := handle.read(chunk_size):
        digest.update(chunk)
        # keys inside the chunk, and one cut by its start (`tail`: the bytes before it)
        records += chunk.count(_RECORD_KEY) + (tail + chunk[:_KEY_CUT]).count(_RECORD_KEY)
        tail = (tail + chunk[-_KEY_CUT:])[-_KEY_CUT:]
        held = decoder.getstate()[0]
        try:
            text = decoder.decode(chunk)
        except UnicodeDecodeError as error:
            raise _not_utf8(origin, offset - len(held) + error.start) from None
        offset += len(chunk)
        if nfc:  # once it is not, nothing more to learn (and nothing to keep)
            text = pending + text
            cut = _safe_cut(text)
            if _may_change_in_nfc(held, chunk, pending):
                nfc = unicodedata.is_normalized("NFC", text[:cut])
            pending = text[cut:]
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise _not_utf8(origin, offset - len(decoder.getstate()[0])) from None
    nfc = nfc and unicodedata.is_normalized("NFC", pending)
    return Scan(digest.hexdigest(), records, nfc)


def nfc_bytes(data: bytes) -> bytes:
    # Decomposed letters (й, ё as two code points, as macOS writes them) become one.
    return unicodedata.normalize("NFC", data.decode("utf-8")).encode("utf-8")
