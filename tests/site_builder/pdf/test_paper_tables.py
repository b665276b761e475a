"""A student's table of averages drawn as a picture: the texts of the HTML table, the
figures at its tab stops, a long subject's name wrapped inside its column."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from otmetka.site_builder.pdf import paper_charts, paper_tables

NS = "{http://www.w3.org/2000/svg}"
SIZE = paper_tables.SIZE


def _texts(svg: str) -> list[tuple[str, float, float]]:
    return [
        (node.text or "", float(node.get("x", 0)), float(node.get("y", 0)))
        for node in ET.fromstring(svg).iter(f"{NS}text")
    ]


def _table(*rows: tuple[str, tuple[str, ...]]) -> str:
    head = ("Предмет", ("Ученик", "Класс", "Разница"))
    return paper_tables.figures_table(paper_tables.FiguresTable("Средний балл", head, rows))


def test_texts_in_order_and_figures_at_the_tab_stops() -> None:
    texts = _table(("Математика", ("4,25", "3,90", "+0,35")), ("Музыка", ("—", "4,00", "—")))
    assert [t for t, _x, _y in _texts(texts)] == [
        "Средний балл", "Предмет", "Ученик", "Класс", "Разница",
        "Математика", "4,25", "3,90", "+0,35", "Музыка", "—", "4,00", "—",
    ]  # fmt: skip
    # the figures: after the caption, the head's name and each row's name
    figures = [
        x
        for index, (_t, x, _y) in enumerate(_texts(texts))
        if index in (2, 3, 4, 6, 7, 8, 10, 11, 12)
    ]
    start = paper_tables.FIRST_COLUMN * paper_tables.TABLE_WIDTH + 3 * paper_tables.PAD_X
    stops = [start + n * paper_tables.TAB for n in range(3)] * 3
    assert figures == pytest.approx(stops, abs=0.01)  # lengths are written with 2 decimals
    # a row's figures stand on its name's baseline; rows follow each other down
    baselines = [y for text, _x, y in _texts(texts) if text in ("Математика", "4,25", "Музыка")]
    assert baselines[0] == baselines[1] < baselines[2]


def test_a_figure_wider_than_a_stop_pushes_the_next_one_to_the_stop_after() -> None:
    wide = "1234567,89 1234"
    assert paper_charts.text_width(wide, SIZE) > paper_tables.TAB
    (_, x1, _), (_, x2, _) = _texts(_table(("Математика", (wide, "5,00"))))[-2:]
    assert x2 - x1 == pytest.approx(2 * paper_tables.TAB, abs=0.02)  # lengths have 2 decimals


def test_a_long_subject_name_wraps_inside_its_column() -> None:
    name = "Основы безопасности и защиты Родины и ещё длинное название"
    texts = _texts(_table((name, ("4,00", "4,00", "+0,00"))))
    lines = [text for text, _x, _y in texts[5:-3]]  # after the caption and head, before figures
    assert len(lines) > 1 and " ".join(lines) == name
    column = paper_tables.FIRST_COLUMN * paper_tables.TABLE_WIDTH
    assert all(paper_charts.text_width(line, SIZE, bold=True) <= column for line in lines)
    # the picture grows by the extra lines
    one_line = _table(("Музыка", ("4,00", "4,00", "+0,00")))
    height = float(ET.fromstring(_table((name, ("4,00", "4,00", "+0,00")))).get("height", 0))
    extra = height - float(ET.fromstring(one_line).get("height", 0))
    assert extra == pytest.approx((len(lines) - 1) * paper_tables.LINE, abs=0.02)
