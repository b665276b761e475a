"""Every page of a demo school, byte for byte: speed work on the builder must not change them.

The golden pages (test_golden.py) show three people of a small school in full. This test
covers breadth: it renders every page of a demo school (students, guardians, class teachers,
subject teachers and the deputy head, in two terms of the year) and compares the SHA-256 of
each fragment with tests/golden/demo-pages.sha256. A change to the templates, the views or
the queries that alters any page fails here with the keys of the pages that differ. After an
intended change, regenerate with one command and review the golden diff of test_golden.py:

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/site_builder/test_same_pages.py
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Iterator

import pytest

from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.demo.school import generate_school
from otmetka.daemon.exchange.importer import import_document
from otmetka.db import close_database, migrate, open_database
from otmetka.site_builder.pages.render import render_pages
from tests.support import paths

HASHES = paths.GOLDEN / "demo-pages.sha256"
STUDENTS = 120
# The end of the 2nd quarter (a full term, holidays ahead) and the last week of the year
# (finals, the summer ahead), of a school year that is over: staff pages of a past day name
# the day, not the time they were read (staff_blocks.data_time), so they stay the same.
DAYS = (dt.date(2025, 12, 26), dt.date(2026, 5, 29))
REGENERATE = "UPDATE_GOLDEN=1 .venv/bin/pytest tests/site_builder/test_same_pages.py"


def _page_hashes(day: dt.date) -> Iterator[str]:
    open_database("sqlite:///:memory:")
    migrate()
    try:
        import_document(generate_school(STUDENTS, seed=1, as_of=day), "demo", MarkRules())
        for (kind, person), page in sorted(render_pages(day)):
            digest = hashlib.sha256(page.encode("utf-8")).hexdigest()
            yield f"{day.isoformat()} {kind} {person} {digest}"
    finally:
        close_database()


@pytest.fixture(scope="module")
def hashes() -> list[str]:
    return [line for day in DAYS for line in _page_hashes(day)]


def test_every_page_of_the_demo_school_is_unchanged(hashes: list[str]) -> None:
    if os.environ.get("UPDATE_GOLDEN"):
        HASHES.write_text("\n".join(hashes) + "\n", encoding="utf-8", newline="\n")
    assert HASHES.exists(), f"{HASHES} is missing: run {REGENERATE}"
    expected = HASHES.read_text(encoding="utf-8").splitlines()
    assert len(hashes) > 2 * STUDENTS, "every student, guardian and teacher has a page"
    kinds = {line.split()[1] for line in hashes}
    assert kinds == {"student", "guardian", "teacher"}
    differing = sorted(set(hashes) ^ set(expected))
    assert not differing, (
        f"{len(differing)} page lines differ from {HASHES.name}, e.g. {differing[:4]}; "
        f"if the change is intended, regenerate with {REGENERATE}"
    )
