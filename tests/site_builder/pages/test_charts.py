"""Server-side SVG charts: well-formed, black and white, told apart without colour, and
each with a table holding the same figures for screen readers."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from markupsafe import Markup

from otmetka.site_builder import formatting
from otmetka.site_builder.pages import charts
from otmetka.site_builder.pdf import paper_charts

SVG = "{http://www.w3.org/2000/svg}"


def parse(figure: Markup) -> tuple[ET.Element, ET.Element, ET.Element]:
    """(figure, svg, table): the figure is XHTML-clean, so it parses as XML."""
    root = ET.fromstring(str(figure).replace('xmlns="http://www.w3.org/2000/svg"', ""))
    svg, hidden = root.find("svg"), root.find("div")
    assert svg is not None and hidden is not None and hidden.get("class") == "sr"
    table = hidden.find("table")
    assert table is not None
    return root, svg, table


def table_rows(table: ET.Element) -> list[list[str]]:
    return [["".join(cell.itertext()) for cell in row] for row in table.iter("tr")]


def colours(svg: ET.Element) -> set[str]:
    found = set()
    for node in svg.iter():
        for attribute in ("fill", "stroke"):
            value = node.get(attribute)
            if value and not value.startswith(("url(", "none")):
                found.add(value)
    return found


def is_grey(colour: str) -> bool:
    match = re.fullmatch(r"#([0-9a-f])([0-9a-f])([0-9a-f])", colour)
    return bool(match) and len(set(match.groups())) == 1


def accessible(root: ET.Element, svg: ET.Element, table: ET.Element) -> None:
    assert svg.get("role") == "img"
    title = svg.find("title")
    assert title is not None and title.get("id") == svg.get("aria-labelledby")
    assert table.get("id") == svg.get("aria-describedby")
    assert root.find("figcaption") is not None


BARS = [
    charts.Bar("Математика", 4.5, "4,50"),
    charts.Bar("Основы безопасности жизнедеятельности", 3.25, "3,25"),
    charts.Bar("Музыка", None, "—"),
]


def test_bar_chart_draws_each_figure_and_describes_it_in_a_table() -> None:
    figure = charts.bar_chart("c1", "Средний балл", BARS, maximum=5, headers=("Предмет", "Балл"))
    root, svg, table = parse(figure)
    accessible(root, svg, table)
    bars = [r for r in svg.iter("rect") if r.get("fill") == charts.GREY]
    assert len(bars) == 2  # no bar for «—»
    widths = [float(r.get("width", 0)) for r in bars]
    assert widths[0] / widths[1] == pytest.approx(4.5 / 3.25, rel=1e-3)
    texts = [t.text for t in svg.iter("text")]
    assert "4,50" in texts and "3,25" in texts and "—" in texts
    assert "Основы безопасности…" in texts  # shortened in the drawing…
    assert table_rows(table) == [
        ["Предмет", "Балл"],
        ["Математика", "4,50"],
        ["Основы безопасности жизнедеятельности", "3,25"],  # …whole in the table
        ["Музыка", "—"],
    ]


def _marks_chart(chart_id: str, stacks: list[charts.Stack]) -> Markup:
    """How many «5», «4», «3», «2» per subject, as the class teacher's page draws it."""
    series = ("«5»", "«4»", "«3»", "«2»")
    headers = ("Предмет", *series, "Всего")
    return charts.stacked_bars(chart_id, "Оценки", stacks, series=series, headers=headers)


def test_only_black_grey_and_white_and_series_told_apart_by_pattern() -> None:
    stacks = [charts.Stack("Математика", (3, 2, 1, 3)), charts.Stack("Русский язык", (1, 2, 2, 2))]
    root, svg, table = parse(_marks_chart("c2", stacks))
    accessible(root, svg, table)
    assert all(is_grey(c) for c in colours(svg)), colours(svg)
    legend = [r.get("fill") for r in svg.iter("rect") if r.get("width") == "12"]
    assert len(legend) == len(set(legend)) == 4  # four series, four different fills
    patterns = {f"url(#{p.get('id')})" for p in svg.iter("pattern")}
    assert {f for f in legend if f and f.startswith("url(")} <= patterns
    texts = [t.text for t in svg.iter("text")]
    assert texts.count("9") == 1 and texts.count("7") == 1  # totals
    assert table_rows(table)[1:] == [
        ["Математика", "3", "2", "1", "3", "9"],
        ["Русский язык", "1", "2", "2", "2", "7"],
    ]


def test_line_chart_solid_and_dashed_lines_dots_and_squares_gaps_break_the_line() -> None:
    figure = charts.line_chart(
        "c3",
        "По неделям",
        ["31.08", "7.09", "14.09", "21.09"],
        [
            charts.Series("ученик", (2.0, None, 3.5, 4.0)),
            charts.Series("класс", (3.25, 4.14, 3.5, 3.9)),
        ],
        minimum=2,
        maximum=5,
        label_header="Неделя с",
    )
    root, svg, table = parse(figure)
    accessible(root, svg, table)
    lines = list(svg.iter("polyline"))
    solid = [p for p in lines if p.get("stroke-dasharray") is None]
    dashed = [p for p in lines if p.get("stroke-dasharray")]
    assert len(solid) == 1 and len(solid[0].get("points", "").split()) == 2  # 3.5 → 4.0 only
    assert len(dashed) == 1 and len(dashed[0].get("points", "").split()) == 4
    assert len([c for c in svg.iter("circle") if c.get("r") == "3"]) == 1 + 3  # legend + points
    assert all(is_grey(c) for c in colours(svg))
    assert table_rows(table) == [
        ["Неделя с", "ученик", "класс"],
        ["31.08", "2,00", "3,25"],
        ["7.09", "—", "4,14"],
        ["14.09", "3,50", "3,50"],
        ["21.09", "4,00", "3,90"],
    ]


def test_column_chart_labels_every_column() -> None:
    columns = [charts.Bar("31.08", 1.0, "100,0 %"), charts.Bar("7.09", 7 / 11, "63,6 %")]
    figure = charts.bar_chart(
        "c4", "Посещаемость", columns, maximum=1, headers=("Неделя с", "Посещаемость"), upright=True
    )
    root, svg, table = parse(figure)
    accessible(root, svg, table)
    texts = [t.text for t in svg.iter("text")]
    assert {"100,0 %", "63,6 %", "31.08", "7.09"} <= set(texts)
    assert table_rows(table)[1:] == [["31.08", "100,0 %"], ["7.09", "63,6 %"]]


def test_ids_are_local_to_the_chart_and_output_is_deterministic() -> None:
    stacks = [charts.Stack("Математика", (1, 1, 1, 1))]
    args = {"series": ("a", "b", "c", "d"), "headers": ("x", "a", "b", "c", "d", "Σ")}
    one = charts.stacked_bars("one", "T", stacks, **args)  # type: ignore[arg-type]
    two = charts.stacked_bars("two", "T", stacks, **args)  # type: ignore[arg-type]
    assert one == charts.stacked_bars("one", "T", stacks, **args)  # type: ignore[arg-type]
    ids_one = set(re.findall(r'id="([^"]+)"', str(one)))
    ids_two = set(re.findall(r'id="([^"]+)"', str(two)))
    assert not ids_one & ids_two
    assert all(i.startswith("one") for i in ids_one)


def test_labels_are_escaped() -> None:
    hostile = [charts.Bar('<script>alert(1)</script>"', 1, "<b>1</b>")]
    figure = str(charts.bar_chart("c5", "<i>T</i>", hostile, maximum=1, headers=("a", "b")))
    assert "<script>" not in figure and "<b>" not in figure and "<i>" not in figure
    parse(Markup(figure))  # still well-formed


def test_nothing_to_draw_says_so() -> None:
    empty = charts.bar_chart("c6", "Пусто", [], maximum=1, headers=("a", "b"))
    assert "Нет данных для диаграммы." in empty and "<svg" not in empty
    none = charts.line_chart(
        "c7",
        "Пусто",
        ["1.09"],
        [charts.Series("x", (None,))],
        minimum=2,
        maximum=5,
        label_header="н",
    )
    assert "<svg" not in none


def test_figures() -> None:
    assert formatting.average(4.345, 1) == "4,3" and formatting.average(None) == "—"
    assert formatting.percent(25 / 29) == "86,2 %" and formatting.percent(None) == "—"


def _extent(text: ET.Element) -> tuple[float, float]:
    """Where a text of the chart starts and ends, by the glyph widths of its font."""
    x, size = float(text.get("x", 0)), float(text.get("font-size", 12))
    width = paper_charts.text_width(text.text or "", size)
    anchor = text.get("text-anchor", "start")
    start = {"start": x, "middle": x - width / 2, "end": x - width}[anchor]
    return start, start + width


def test_long_labels_and_the_legend_stay_inside_the_chart() -> None:
    longest = "Основы безопасности и защиты Родины"  # the longest subject name in use
    stacks = [charts.Stack(longest, (3, 2, 1, 3)), charts.Stack("Русский язык", (1, 2, 2, 2))]
    _root, svg, _table = parse(_marks_chart("c9", stacks))
    for text in svg.iter("text"):
        start, end = _extent(text)
        assert start >= 0 and end <= charts.WIDTH, (text.text, start, end)
    assert any((t.text or "").endswith("…") for t in svg.iter("text"))  # the table has it whole
