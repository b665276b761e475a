"""The charts redrawn for paper: the same shapes and the same texts at the same places, in
fewer elements, with no anchored text left for WeasyPrint to group."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from otmetka.site_builder.pages import charts
from otmetka.site_builder.pdf import engine, paper_charts

NS = "{http://www.w3.org/2000/svg}"


def _svg(figure: str) -> str:
    found = re.search(r"<svg\b.*?</svg>", figure, flags=re.DOTALL)
    assert found is not None
    return found.group(0)


def _children(svg: str) -> list[ET.Element]:
    return list(ET.fromstring(svg))


def _local(node: ET.Element) -> str:
    return node.tag.removeprefix(NS)


_RECT_PART = re.compile(r"M([\d.-]+) ([\d.-]+)h([\d.-]+)v([\d.-]+)h")


def _rects(svg: str) -> set[tuple[str, ...]]:
    """Every rectangle as (x, y, width, height, fill), from <rect>s or from path parts."""
    found = set()
    for node in _children(svg):
        if _local(node) == "rect":
            size = tuple(f"{float(node.get(a, 0)):g}" for a in ("x", "y", "width", "height"))
            found.add((*size, node.get("fill", "")))
        elif _local(node) == "path":
            for x, y, w, h in re.findall(
                r"M([\d.-]+) ([\d.-]+)h([\d.-]+)v([\d.-]+)h", node.get("d", "")
            ):
                found.add((*(f"{float(v):g}" for v in (x, y, w, h)), node.get("fill", "")))
    return found


def _texts(svg: str) -> list[tuple[str, float, float, str]]:
    """Every text as (content, x of its start, y, size), anchors resolved by the font."""
    out = []
    for node in _children(svg):
        if _local(node) != "text":
            continue
        size = float(node.get("font-size", 12))
        width = paper_charts.text_width(node.text or "", size)
        share = {"start": 0.0, "middle": 0.5, "end": 1.0}[node.get("text-anchor", "start")]
        x = float(node.get("x", 0)) - share * width
        out.append((node.text or "", round(x, 1), float(node.get("y", 0)), node.get("font-size")))
    return out


SERIES = ("5", "4", "3", "2")
SUBJECTS = [
    charts.Stack("Алгебра", (5, 7, 2, 0)),
    charts.Stack("Основы безопасности и защиты Родины", (1, 0, 9, 3)),
    charts.Stack("Химия", (0, 0, 0, 0)),
]


def _examples() -> list[str]:
    bars = [charts.Bar("Алгебра", 4.25, "4,25"), charts.Bar("Химия", None, "—")]
    weeks = [charts.Bar(f"{d}.11", v, f"{v * 100:.1f} %") for d, v in ((2, 0.9), (9, 1.0))]
    lines = [
        charts.Series("ученик", (4.3, None, 3.5, 5.0)),
        charts.Series("класс", (4.0, 4.1, 4.2, 3.9)),
    ]
    return [
        _svg(charts.bar_chart("a", "Средний", bars, maximum=5, headers=("П", "С"))),
        _svg(charts.bar_chart("w", "Недели", weeks, maximum=1, headers=("Н", "П"), upright=True)),
        _svg(
            charts.stacked_bars(
                "s", "Оценки", SUBJECTS, series=("5", "4", "3", "2"), headers=("П",)
            )
        ),
        _svg(
            charts.line_chart(
                "l",
                "По неделям",
                ["2.11", "9.11", "16.11", "23.11"],
                lines,
                minimum=2,
                maximum=5,
                label_header="Неделя",
            )
        ),
    ]


@pytest.mark.parametrize("svg", _examples(), ids=["across", "upright", "stacked", "lines"])
def test_paper_chart_draws_the_same(svg: str) -> None:
    paper = paper_charts.for_paper(svg)
    assert "text-anchor" not in paper and "<title" not in paper
    # every text, in order, starting where the anchored one started
    assert _texts(paper) == _texts(svg)
    # every rectangle (bars, segments, legend boxes, white boxes under figures) is still drawn
    assert _rects(paper) == _rects(svg)
    # the same size and viewport, fewer elements
    before, after = ET.fromstring(svg), ET.fromstring(paper)
    assert [after.get(a) for a in ("viewBox", "width", "height")] == [
        before.get(a) for a in ("viewBox", "width", "height")
    ]
    assert len(after) < len(before)


def _overlap(a: ET.Element, b: ET.Element) -> bool:
    ax, ay, aw, ah = (float(a.get(k, 0)) for k in ("x", "y", "width", "height"))
    bx, by, bw, bh = (float(b.get(k, 0)) for k in ("x", "y", "width", "height"))
    return ax <= bx + bw and bx <= ax + aw and ay <= by + bh and by <= ay + ah


@pytest.mark.parametrize("index", [0, 1, 2], ids=["across", "upright", "stacked"])
def test_what_was_on_top_stays_on_top(index: int) -> None:
    """A rectangle painted after one it touches (a white box under a figure after its
    segment) is still painted after it: shapes merge only past shapes they do not touch."""
    svg = _examples()[index]
    paper = _children(paper_charts.for_paper(svg))
    rects = [n for n in _children(svg) if _local(n) == "rect"]

    def painted_at(rect: ET.Element) -> int:
        x, y, w, h = (f"{float(rect.get(k, 0)):g}" for k in ("x", "y", "width", "height"))
        part = f"M{x} {y}h{w}v{h}h"
        return next(i for i, n in enumerate(paper) if part in n.get("d", ""))

    at = [painted_at(r) for r in rects]
    pairs = [(i, j) for i in range(len(rects)) for j in range(i + 1, len(rects))]
    touching = [(i, j) for i, j in pairs if _overlap(rects[i], rects[j])]
    assert touching or index < 2  # the stacked chart has boxes over its segments
    for i, j in touching:
        same = rects[i].get("fill") == rects[j].get("fill") and not rects[i].get("stroke")
        assert at[i] < at[j] or (at[i] == at[j] and same)


def test_open_squares_stay_over_the_dashed_line() -> None:
    kinds = [
        (_local(n), n.get("stroke-dasharray"), n.get("fill"))
        for n in _children(paper_charts.for_paper(_examples()[3]))
    ]
    dashed = [i for i, k in enumerate(kinds) if k == ("path", "5 3", "none")]
    squares = [i for i, k in enumerate(kinds) if k == ("path", None, "#fff")]
    assert len(dashed) == len(squares) == 2  # the legend's, then the series'
    assert dashed[0] < squares[0] and dashed[1] < squares[1]


def test_text_width_is_what_weasyprint_lays_out() -> None:
    words = ["16.11", "94,3 %", "Английский язык", "4,3", "Основы безопасности и защ…"]
    html = "".join(f"<p><span>{w}</span></p>" for w in words)
    document = engine.render_document(html, 'p { font: 11px "PT Sans"; margin: 0 }')
    spans: dict[int, float] = {}
    for box in document.pages[0]._page_box.descendants():
        if box.element_tag == "span":
            spans.setdefault(id(box.element), box.width)
    for word, width in zip(words, spans.values(), strict=True):
        assert paper_charts.text_width(word, 11) == pytest.approx(width, abs=0.5), word


def test_a_chart_with_an_unknown_element_is_refused() -> None:
    svg = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1"><ellipse/></svg>'
    with pytest.raises(ValueError, match="<ellipse>"):
        paper_charts.for_paper(svg)
