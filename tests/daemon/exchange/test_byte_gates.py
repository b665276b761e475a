"""The checks that skip work by looking at bytes: which blocks of records need the character
rules (exchange.plain), which chunks of a file need the NFC check (exchange.records). Each
may say "look closer" too often, never too rarely."""

from __future__ import annotations

import json
import re
import unicodedata
from io import BytesIO

from otmetka.daemon.exchange import plain, records, schema

_ALL = [chr(code) for code in range(0x110000) if not 0xD800 <= code < 0xE000]


def test_text_without_refused_characters_is_told_apart_from_the_bytes() -> None:
    """plain.may_hold_refused never misses a character the one-line rule refuses (the
    widest of the two): each as it stands in JSON text, and escaped."""
    line = re.compile(schema.LINE_PATTERN)
    for char in _ALL:
        if line.match(char):
            continue
        assert plain.may_hold_refused(json.dumps(char).encode()), hex(ord(char))
        if char >= " ":  # below, JSON has them only escaped
            text = json.dumps(char, ensure_ascii=False).encode()
            assert plain.may_hold_refused(text), hex(ord(char))
    assert not plain.may_hold_refused("«Иванова» — №5, ½".encode())


def _composes_with_what_precedes() -> set[str]:
    """Characters that stand after the first in a canonical decomposition: only these
    can join the character before them in NFC."""
    found: set[str] = set()
    for char in _ALL:
        decomposition = unicodedata.decomposition(char)
        if decomposition and not decomposition.startswith("<"):
            found.update(chr(int(part, 16)) for part in decomposition.split()[1:])
    return found


def test_characters_taken_as_nfc_by_their_bytes_are() -> None:
    """Every character records.scan_bytes lets pass without the NFC check is unchanged by
    NFC, has no combining class and joins nothing before it, so any text of them is NFC."""
    joining = _composes_with_what_precedes()
    passed = [c for c in _ALL if not records._may_change_in_nfc(b"", c.encode(), "")]
    assert len(passed) > 800 and "й" in passed and "ё" in passed and "\u0306" not in passed
    for char in passed:
        assert unicodedata.normalize("NFC", char) == char, hex(ord(char))
        assert unicodedata.combining(char) == 0, hex(ord(char))
        assert char not in joining and unicodedata.normalize("NFD", char)[0] not in joining


def test_decomposed_letter_cut_by_a_chunk_is_found() -> None:
    """A combining mark whose bytes a chunk boundary cuts, after a letter the chunk before
    ends with: found at every chunk size."""
    data = ('{"name": "' + "Андрей " * 50 + 'И\u0306осип Иван"}').encode()
    for chunk_size in range(1, 40):
        scan = records.scan_bytes(BytesIO(data), "t.json", chunk_size)
        assert not scan.nfc, chunk_size
    assert records.scan_bytes(BytesIO("«Йосип» — №5".encode()), "t.json", 3).nfc
