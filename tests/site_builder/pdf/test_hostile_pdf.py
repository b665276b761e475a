"""Hostile content in the paper extracts: names and texts with HTML and scripts, right-to-left
marks, emoji and 10,000-character texts come out of WeasyPrint as plain, readable text,
with nothing interpreted as markup.

Text is read back with pypdf. One exception: once a document holds an emoji, WeasyPrint
writes PT Sans as a CID font with a custom encoding that pypdf (7.1) decodes into garbage,
although the PDF is right (poppler's pdftotext, the engine of most viewers, reads every
character, emoji included). So the texts are checked with pypdf without emoji, and the
document with emoji is checked with pdftotext.

`hostile_school()` is shared with the browser test (tests/browser/test_hostile.py).
"""

from __future__ import annotations

import copy
import re
import subprocess
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pypdf import PdfReader

from otmetka.daemon.core.config import Config
from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.exchange.importer import import_document
from tests.support.extract_support import print_class
from tests.support.factories import change
from tests.support.page_factories import page_school

# A name is at most 200 characters; it is shown as text, so its markup must show literally.
NAME_HTML = "<img src=x onerror=\"window.__pwned='name'\"><b>Алёна</b>"
# A right-to-left mark in the middle of a surname, and emoji with joiners (the overrides
# U+202A-E are refused at import, see docs/exchange-format.md).
GUARDIAN_RTL = "Иванова\u200fанйамоП\u200f 👩\u200d👧\u200d👦"
HOMEWORK_HTML = (
    "Упр. 7 <script>window.__pwned='homework'</script> "
    "<img src=x onerror=\"window.__pwned='img'\"> "
    "[ссылка](javascript:window.__pwned='link') <svg onload=\"window.__pwned='svg'\"></svg> "
    "<iframe srcdoc=\"<script>parent.__pwned='frame'</script>\"></iframe> "
    "\u200fשלום עולם\u200f 🙂 конец задания"
)
HOMEWORK_VISIBLE = ["Упр. 7", "ссылка", "שלום עולם", "конец задания"]
# 10,000 characters: words in three scripts, emoji, a right-to-left run, and one very long
# unbroken token that must wrap instead of running off the page.
LONG_TOKEN = "ОченьДлинноеСловоБезПробелов" * 12


def long_text(emoji: bool = True) -> str:
    words = "читать вслух 📚 read aloud مرحبا " if emoji else "читать вслух read aloud مرحبا "
    text = (LONG_TOKEN + " " + words * 400)[:10_000]
    assert len(text) == 10_000
    return text


LONG_TEXT = long_text()


def without_emoji(text: str) -> str:
    return "".join(ch for ch in text if unicodedata.category(ch) != "So" and ch != "\u200d")


def _replace(changes: list[dict[str, Any]], kind: str, record_id: str, **data: str) -> None:
    record = next(c for c in changes if c["type"] == kind and c["id"] == record_id)
    record["data"] = {**record["data"], **data}


def hostile_school(emoji: bool = True) -> dict[str, Any]:
    """The page school with hostile names and texts for Алёна (s-1) and her mother (g-1)."""
    keep = (lambda text: text) if emoji else without_emoji
    document = copy.deepcopy(page_school())
    changes = document["changes"]
    _replace(changes, "student", "s-1", first_name=NAME_HTML)
    _replace(changes, "guardian", "g-1", last_name=keep(GUARDIAN_RTL))
    homework = {
        "subject_id": "rus",
        "group_id": "g-rus",
        "assigned_on": "2026-09-14",
        "due_date": "2026-09-17",
        "text": keep(HOMEWORK_HTML),
    }
    recommendation = {
        "student_id": "s-1",
        "teacher_id": "t-1",
        "subject_id": "rus",
        "date": "2026-09-16",
        "text": long_text(emoji),
    }
    changes += [
        change("homework", "hw-evil", homework),
        change("recommendation", "r-long", recommendation),
    ]
    return document


def plain(text: str) -> str:
    """Text as it reads: no spaces or line breaks (wrapping adds them), no invisible format
    characters (bidi marks and joiners) and no emoji (the fonts have no glyphs for them)."""
    kept = [
        ch for ch in text if not ch.isspace() and unicodedata.category(ch) not in ("Cf", "So", "Sk")
    ]
    return "".join(kept)


def _squash(text: str) -> str:
    """Whitespace out (wrapping adds it), Arabic letters and bidi marks (poppler gives the
    Arabic in the order shown, between embedding marks); emoji stay."""
    text = re.sub(r"[\s\u0600-\u06ff]+", "", text)
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf")


def _print(config: Config) -> Path:
    return print_class(config).files[0]


def _hers(pages: list[str]) -> str:
    """Алёна's extract: the pages from her header to the next student's."""
    return "".join(p for p in pages if "Алёна" in p)


def _whole(
    text: str, long: str, group: str, pages: int, norm: Callable[[str], str] = plain
) -> None:
    """All of a 10,000-character text is there: its long token (wrapped, not cut), every
    repetition of its words (but where a page break puts the running header in between),
    and its very end."""
    assert norm(LONG_TOKEN) in text
    expected = long.count(group)
    assert expected - pages <= text.count(norm(group)) <= expected
    assert norm(long[-60:]) in text


def test_hostile_text_prints_as_text(file_db: Path, config: Config) -> None:
    import_document(hostile_school(emoji=False), "hostile.json", MarkRules())
    pages = [page.extract_text() for page in PdfReader(_print(config)).pages]
    mine = _hers(pages)
    text = plain(mine)
    assert plain(NAME_HTML) in text  # the markup is printed, not interpreted
    _whole(text, long_text(emoji=False), "читать вслух read aloud مرحبا", len(pages))
    # The override shows "анйамоП" right to left: the PDF holds it in the order shown.
    assert "ИвановаПомайна" in text or "ИвановаанйамоП" in text
    for visible in HOMEWORK_VISIBLE:
        assert plain(visible) in text, visible
    # Markdown is sanitised for the extract as for the page: no script text, no handlers.
    for gone in ("window.__pwned", "javascript:", "onerror", "<script", "<iframe"):
        assert gone not in mine.replace(NAME_HTML, ""), gone
    numbers = re.findall(r"Стр\. (\d+) из (\d+)", mine)
    assert len(numbers) >= 2 and numbers[-1][0] == numbers[-1][1], "numbered to the end"


def test_emoji_print_too(file_db: Path, config: Config) -> None:
    import_document(hostile_school(emoji=True), "hostile.json", MarkRules())
    done = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(_print(config)), "-"],
        capture_output=True,
        check=True,
    )
    text = done.stdout.decode("utf-8")
    squashed = _squash(text)
    for emoji in ("👩", "👧", "📚", "🙂"):
        assert emoji in text, emoji
    assert _squash(NAME_HTML) in squashed
    pages = len(text.split("\f"))
    _whole(squashed, LONG_TEXT, "читать вслух 📚 read aloud", pages, _squash)
