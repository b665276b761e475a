"""A chart's text is drawn as one run, where WeasyPrint's own drawer starts it, and reads
as the same words; a text that places its glyphs one by one is still drawn glyph by glyph."""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator
from typing import Any

import pytest
import weasyprint.svg
from pypdf import PdfReader
from pypdf.generic import ContentStream

from otmetka.site_builder.pdf import engine, svg_text

CSS = "@page { size: 120mm 40mm; margin: 5mm }"
CHART = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="300" height="60" viewBox="0 0 300 60"'
    ' font-family="PT Sans, Arial, sans-serif">'
    '<text x="12.5" y="20" font-size="10" fill="#000">94,2 % AVAWAY</text>'
    '<text x="150" y="44" font-size="12" font-weight="bold" fill="#c00">Математика</text>'
    "</svg>"
)
PLACED = CHART.replace('x="150"', 'x="150" dx="0 2"')
STROKED = CHART.replace('fill="#c00"', 'fill="#c00" stroke="#00f" stroke-width="0.5"')


def _page(svg: str) -> Any:
    """The chart, as an image as the reports hand it over, on a page of its own."""
    image = base64.b64encode(svg.encode()).decode()
    pdf = engine.render_pdf(f'<img alt="" src="data:image/svg+xml;base64,{image}">', CSS)
    return PdfReader(io.BytesIO(pdf.data)).pages[0]


def _operators(svg: str) -> list[tuple[bytes, list[Any]]]:
    page = _page(svg)
    operations = ContentStream(page.get_contents(), page.pdf).operations
    return [(operator, list(operands)) for operands, operator in operations]


def _runs(svg: str) -> list[tuple[tuple[float, float], int]]:
    """Each text object of the chart's page: where its first glyph run starts, and how many
    runs (TJ/Tj) it shows."""
    objects: list[tuple[tuple[float, float], int]] = []
    start: Any = None
    for operator, operands in _operators(svg):
        if operator == b"BT":
            start, shown = None, 0
        elif operator == b"Tm" and start is None:
            start = (round(float(operands[4]), 2), round(float(operands[5]), 2))
        elif operator in (b"TJ", b"Tj"):
            shown += 1
        elif operator == b"ET":
            objects.append((start, shown))
    return objects


def _text(svg: str) -> str:
    return re.sub(r"\s+", " ", _page(svg).extract_text())


@pytest.fixture(autouse=True)
def drawn_without_error(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """WeasyPrint logs a chart it fails to draw and leaves it out: that fails the test."""
    yield
    failed = [r for r in caplog.records if r.name == "weasyprint" and r.levelname == "ERROR"]
    assert not failed


@pytest.fixture
def upstream(monkeypatch: pytest.MonkeyPatch) -> None:
    """WeasyPrint's own drawer, letter by letter, for comparison."""
    assert svg_text.install()
    whole = weasyprint.svg.TAGS["text"]
    for tag, drawer in weasyprint.svg.TAGS.items():
        if drawer is whole:
            monkeypatch.setitem(weasyprint.svg.TAGS, tag, whole.upstream)
    monkeypatch.setattr(weasyprint.svg, "text", whole.upstream)


def test_the_pinned_weasyprint_takes_the_whole_text_drawer() -> None:
    engine.render_pdf("<p>x</p>", CSS)
    assert svg_text.install()
    assert weasyprint.svg.TAGS["text"].draws_whole_texts


def test_a_chart_text_is_one_run() -> None:
    assert [shown for _start, shown in _runs(CHART)] == [1, 1]
    assert "94,2 % AVAWAY" in _text(CHART) and "Математика" in _text(CHART)


def test_a_chart_text_is_set_unkerned() -> None:
    """As letter by letter, and as `paper_charts` measures a text to anchor it: AV, WA
    and AY would otherwise be drawn closer, and a text anchored at its end fall short."""
    first, _second = [operands[0] for operator, operands in _operators(CHART) if operator == b"TJ"]
    assert all(isinstance(part, bytes | str) or not part for part in first)


def test_it_starts_where_weasyprint_starts_it(upstream: None) -> None:
    letter_by_letter = _runs(CHART)
    assert [shown for _start, shown in letter_by_letter] == [11, 10]  # a run per letter but spaces
    starts = [start for start, _shown in letter_by_letter]
    assert svg_text.install()  # over WeasyPrint's own again
    assert [start for start, _shown in _runs(CHART)] == starts


def test_glyphs_placed_one_by_one_are_drawn_one_by_one() -> None:
    runs = _runs(PLACED)
    assert [shown for _start, shown in runs] == [1, 10]
    assert "Математика" in _text(PLACED).replace(" ", "")


def test_a_stroked_text_is_filled_and_stroked() -> None:
    operators = _operators(STROKED)
    modes = [operands[0] for operator, operands in operators if operator == b"Tr"]
    assert modes == [0, 2]  # the first filled, the second filled and stroked
    assert (b"RG", [0, 0, 1]) in operators  # in its stroke colour
    assert [shown for _start, shown in _runs(STROKED)] == [1, 1]
