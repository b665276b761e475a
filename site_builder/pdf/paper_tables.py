"""A student's table of averages drawn for paper as one SVG picture, looking as the HTML
table did.

WeasyPrint lays out an HTML table cell by cell: a box, a computed style and a line layout
for each, rows and borders besides. The students' tables, a dozen rows each, took more than
a third of a class report's time. Drawn as an SVG of texts and rules, the same table costs
a text each (`svg_text` keeps the layout of the subjects' names and figures, which repeat
from one student to the next) and no layout at all.

The geometry is the one `print-report.css` gave the HTML table: 8 pt PT Sans at a line
height of 1.3, cells padded by 0.2 mm and 1 mm, the first column's content 52 % of the table
(names wrap inside it, bold), the figures at 12 mm tab stops, a 0.75 pt black rule under the head
and a 0.4 pt grey one under each row. Lengths are CSS pixels (96 to the inch), the unit of
an SVG drawn at its own size; the table's width is its box's (`TABLE_WIDTH`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

from otmetka.site_builder.pdf import paper_charts

MM = 96 / 25.4
PT = 96 / 72
# The student's block on A4 (`.pstat > .tw`): 56 % of the 180 mm between the margins.
TABLE_WIDTH = 0.56 * 180 * MM
SIZE = 8 * PT
LINE = 1.3 * SIZE
# PT Sans: ascent 1.018 em, descent 0.276 em; the line's leading is split above and below.
BASELINE = (LINE - 1.294 * SIZE) / 2 + 1.018 * SIZE
PAD_X, PAD_Y = 1 * MM, 0.2 * MM
CAPTION_GAP = 1 * MM
TAB = 12 * MM
FIRST_COLUMN = 0.52
HEAD_RULE, ROW_RULE = 0.75 * PT, 0.4 * PT
HEAD_COLOUR, ROW_RULE_COLOUR = "#333", "#888"


@dataclass(frozen=True)
class FiguresTable:
    caption: str
    head: tuple[str, Sequence[str]]  # the names' column, then the figures' titles
    rows: Sequence[tuple[str, Sequence[str]]]  # a name, then its figures


def wrap(text: str, width: float, *, bold: bool = False) -> list[str]:
    """The text broken into lines at spaces so that each fits `width`; a word wider than
    the width stays whole on a line of its own (no subject's name has one)."""
    lines: list[str] = []
    for word in text.split():
        joined = f"{lines[-1]} {word}" if lines else word
        if lines and paper_charts.text_width(joined, SIZE, bold=bold) <= width:
            lines[-1] = joined
        else:
            lines.append(word)
    return lines or [""]


def _text(x: float, y: float, text: str, *, bold: bool = False, fill: str = "#000") -> str:
    weight = ' font-weight="bold"' if bold else ""
    return (
        f'<text x="{paper_charts.number(x)}" y="{paper_charts.number(y)}" '
        f'font-size="{paper_charts.number(SIZE)}"{weight} fill="{fill}">{escape(text)}</text>'
    )


def _rule(y: float, width: float, thickness: float, colour: str) -> str:
    return (
        f'<line x1="0" y1="{paper_charts.number(y)}" x2="{paper_charts.number(width)}" '
        f'y2="{paper_charts.number(y)}" stroke="{colour}" '
        f'stroke-width="{paper_charts.number(thickness)}"/>'
    )


def _figures(x: float, y: float, figures: Sequence[str], fill: str = "#000") -> list[str]:
    """Figures at the tab stops of the second column, as `white-space: pre` set them: each
    at the first stop past the end of the one before."""
    out, at = [], x
    for figure in figures:
        out.append(_text(at, y, figure, fill=fill))
        end = at + paper_charts.text_width(figure, SIZE) - x
        at = x + (end // TAB + 1) * TAB
    return out


def figures_table(table: FiguresTable, width: float = TABLE_WIDTH) -> str:
    """The table as an SVG picture `width` wide, as tall as its rows."""
    names_width = FIRST_COLUMN * width  # of the cell's content: its padding comes on top
    figures_x = names_width + 3 * PAD_X
    parts: list[str] = []
    top = 0.0
    for line in wrap(table.caption, width, bold=True):
        parts.append(_text(0, top + BASELINE, line, bold=True))
        top += LINE
    top += CAPTION_GAP
    name, titles = table.head
    parts.append(_text(PAD_X, top + PAD_Y + BASELINE, name, fill=HEAD_COLOUR))
    parts += _figures(figures_x, top + PAD_Y + BASELINE, titles, HEAD_COLOUR)
    top += 2 * PAD_Y + LINE + HEAD_RULE / 2
    parts.append(_rule(top, width, HEAD_RULE, "#000"))
    rule = HEAD_RULE  # the one above the row: half of it is the row's
    for name, figures in table.rows:
        lines = wrap(name, names_width, bold=True)
        baseline = top + rule / 2 + PAD_Y + BASELINE
        for index, line in enumerate(lines):
            parts.append(_text(PAD_X, baseline + index * LINE, line, bold=True))
        parts += _figures(figures_x, baseline, figures)
        top += rule / 2 + 2 * PAD_Y + len(lines) * LINE + ROW_RULE / 2
        parts.append(_rule(top, width, ROW_RULE, ROW_RULE_COLOUR))
        rule = ROW_RULE
    height = top + ROW_RULE / 2
    w, h = paper_charts.number(width), paper_charts.number(height)
    return (
        f'<svg xmlns="{paper_charts.SVG_NS}" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
        f'font-family="PT Sans">{"".join(parts)}</svg>'
    )
