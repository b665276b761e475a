"""The child's section is written in Python (pages/child_html.py): its escaping must be
Jinja's (markupsafe's), or a name with markup in it would read differently or run."""

from __future__ import annotations

import pytest
from markupsafe import escape

from otmetka.site_builder.pages.child_html import text


@pytest.mark.parametrize(
    "value",
    [
        "Иванова Мария",
        "<script>alert('x')</script>",
        'a "quoted" & <b>bold</b> name',
        "&amp; already escaped stays text",
        "O'Brien > 5 < 6",
        "",
    ],
)
def test_text_escapes_as_jinja_autoescape_does(value: str) -> None:
    assert text(value) == str(escape(value))
