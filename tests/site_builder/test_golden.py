"""Golden pages: the fragments of three people of the page school, compared byte for byte.

A change to the templates, the views or the queries that alters what a page shows shows up
here as a diff to review. After an intended change, regenerate the files with one command:

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/site_builder/test_golden.py

and read the diff of tests/golden/ before committing it.
"""

from __future__ import annotations

import os

import pytest

from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.exchange.importer import import_document
from otmetka.site_builder.pages.audience import PageKey
from otmetka.site_builder.pages.render import render_pages
from tests.support import paths
from tests.support.page_factories import TODAY, page_school

GOLDEN = paths.GOLDEN
PAGES: dict[str, PageKey] = {
    "guardian.html": ("guardian", "g-1"),
    "student.html": ("student", "s-1"),
    "teacher.html": ("teacher", "t-1"),
}


@pytest.fixture(scope="module")
def rendered() -> dict[PageKey, str]:
    from otmetka.db import close_database, migrate, open_database

    open_database("sqlite:///:memory:")
    migrate()
    try:
        import_document(page_school(), "golden.json", MarkRules())
        return dict(render_pages(TODAY, set(PAGES.values())))
    finally:
        close_database()


@pytest.mark.parametrize("name", sorted(PAGES))
def test_golden_page(rendered: dict[PageKey, str], name: str) -> None:
    path = GOLDEN / name
    page = rendered[PAGES[name]]
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(page, encoding="utf-8", newline="\n")
    assert path.exists(), f"{path} is missing: run UPDATE_GOLDEN=1 .venv/bin/pytest {__file__}"
    assert page == path.read_text(encoding="utf-8"), (
        f"{name} differs from the golden file; if the change is intended, regenerate with "
        "UPDATE_GOLDEN=1 .venv/bin/pytest tests/site_builder/test_golden.py"
    )
