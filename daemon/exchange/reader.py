"""Reading an exchange batch, one record at a time (validation.py checks what is read).

A year of a big school is a file of a quarter of a gigabyte; holding it whole as Python
objects would take gigabytes. So a file is read as a stream: one pass checks the bytes
(UTF-8, NFC, the digest) before anything else, and the records are then handed to the
importer in order, as JSON text where the reader can cut it out cheaply: a block of
records validated as one array, or the text of one change (pydantic validates that text
directly, without building dicts first); a block that is not valid as a whole comes again
record by record, so every problem is still named by its own record.

Every problem is collected with where it is (file, record index and id, field) and what to
do about it, so an operator can fix a file in one pass instead of one error per attempt.
"""

from __future__ import annotations

import hashlib
import io
import json
import unicodedata
from pathlib import Path
from typing import IO, Any

import orjson

from otmetka.daemon.exchange.records import (
    CHUNK,
    BatchError,
    DocumentRecords,
    Problems,
    RawBatch,
    Records,
    scan_bytes,
)
from otmetka.daemon.exchange.streams import JsonDocument, JsonLines

# The names every reader of a batch needs, importable from here with the functions.
__all__ = [
    "BatchError",
    "DocumentRecords",
    "Problems",
    "RawBatch",
    "Records",
    "from_document",
    "read_bytes",
    "read_file",
]


def read_file(path: Path, *, chunk_size: int = CHUNK) -> RawBatch:
    """Open a .json or .jsonl exchange file: the bytes are checked and the envelope read now,
    the records as the importer asks for them, `chunk_size` bytes at a time.

    The file stays open for the life of the batch, so a caller may unlink or move it (an
    unpacked archive member, an inbox file) before the records are read."""
    return _read_stream(path.open("rb"), path.name, path.suffix == ".jsonl", chunk_size)


def read_bytes(data: bytes, origin: str, *, chunk_size: int = CHUNK) -> RawBatch:
    """A .json document already in memory as bytes (a page from the HTTP source), read
    exactly like a file: validated straight from its text, never built into dicts first."""
    return _read_stream(io.BytesIO(data), origin, False, chunk_size)


def _read_stream(handle: IO[bytes], origin: str, jsonl: bool, chunk_size: int) -> RawBatch:
    try:
        scan = scan_bytes(handle, origin, chunk_size)
        records: JsonLines | JsonDocument
        if jsonl:
            records = JsonLines(handle, origin, scan)
            header = records.header()
        else:
            records = JsonDocument(handle, origin, scan, chunk_size)
            header = records.read_envelope()
    except BaseException:
        handle.close()
        raise
    return RawBatch(origin, header, records, scan.digest)


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
