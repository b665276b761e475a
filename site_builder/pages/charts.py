"""Charts as inline SVG, drawn on the server: no script, no library, nothing fetched.

So they show in a page opened offline, in a saved copy and in a WeasyPrint PDF alike. They
are made for black-and-white print: only black, greys and white; series differ by pattern
(solid, hatching, dots, open), by line style and by marker shape, never by colour alone;
every bar and point carries its figure as text. Each chart is a <figure> whose SVG is an
image (role="img") named by its title and described by a table with the same figures
(`aria-describedby`), kept for screen readers and hidden from the eye (in a box of class
"sr").

Output is deterministic (fixed number formatting, no random ids): pages are hashed.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from otmetka.site_builder import formatting

WIDTH = 320  # the viewBox width: drawn about 1:1 in the column of a 360 px phone, wider above
SMALL = 11  # figures on points and ticks: no smaller, or a phone shows them at 10 px
FONT = 'font-family="PT Sans, Arial, sans-serif"'
VALUE_W = 40  # room for the figure right of the longest bar
ROW_H = 20
BAR_H = 13
TOP = 6
INK, GREY, PAPER = "#000", "#777", "#fff"
# Characters of a label drawn in the chart (the table has it whole): as many as the widest
# label column (`label_width`) holds, so a long subject name is never cut at the left edge.
MAX_LABEL = 21

# Fills of the series, in order: each tells itself apart without colour.
PATTERNS = ("solid", "hatch", "dots", "open")


# --- pieces -------------------------------------------------------------------------------


def _fmt(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1].rstrip() + "…"


def label_width(labels: Iterable[str]) -> float:
    """Room for the longest label (about 6.6 units a character at 12 px), within bounds."""
    longest = max((len(_short(label)) for label in labels), default=0)
    return min(max(40.0, longest * 6.6 + 8), 150.0)


def _text(x: float, y: float, content: str, *, anchor: str = "start", size: int = 12) -> str:
    return (
        f'<text x="{_fmt(x)}" y="{_fmt(y)}" font-size="{size}" text-anchor="{anchor}" '
        f'fill="{INK}">{escape(content)}</text>'
    )


def _defs(chart_id: str) -> str:
    """The fill patterns, with ids local to this chart (ids must be unique in a page)."""
    p = f"{chart_id}-p"
    return (
        "<defs>"
        f'<pattern id="{p}hatch" width="5" height="5" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)">'
        f'<rect width="5" height="5" fill="{PAPER}"/>'
        f'<line x1="0" y1="0" x2="0" y2="5" stroke="{INK}" stroke-width="2"/></pattern>'
        f'<pattern id="{p}dots" width="4" height="4" patternUnits="userSpaceOnUse">'
        f'<rect width="4" height="4" fill="{PAPER}"/>'
        f'<circle cx="2" cy="2" r="1" fill="{INK}"/></pattern>'
        "</defs>"
    )


def fill_of(chart_id: str, pattern: str) -> str:
    if pattern == "solid":
        return GREY
    if pattern == "open":
        return PAPER
    return f"url(#{chart_id}-p{pattern})"


def _rect(x: float, y: float, w: float, h: float, fill: str) -> str:
    return (
        f'<rect x="{_fmt(x)}" y="{_fmt(y)}" width="{_fmt(max(w, 0))}" height="{_fmt(h)}" '
        f'fill="{fill}" stroke="{INK}" stroke-width="0.8"/>'
    )


def _svg(chart_id: str, height: float, body: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {WIDTH} '
        f'{_fmt(height)}" width="{WIDTH}" height="{_fmt(height)}" preserveAspectRatio="xMinYMin '
        f'meet" aria-labelledby="{chart_id}-t" aria-describedby="{chart_id}-d" {FONT}>'
        f'<title id="{chart_id}-t">{{title}}</title>{_defs(chart_id)}{body}</svg>'
    )


def _table(chart_id: str, title: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in headers)
    body = "".join(
        "<tr>"
        + f'<th scope="row">{escape(row[0])}</th>'
        + "".join(f"<td>{escape(cell)}</td>" for cell in row[1:])
        + "</tr>"
        for row in rows
    )
    # Hidden by its box: a table ignores a width of 1px, and would widen the page.
    return (
        f'<div class="sr"><table id="{chart_id}-d"><caption>{escape(title)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def _figure(chart_id: str, title: str, svg: str, table: str, note: str = "") -> Markup:
    caption = f"{escape(title)}" + (f" <small>{escape(note)}</small>" if note else "")
    svg = svg.replace("{title}", str(escape(title)), 1)
    return Markup(
        f'<figure class="chart" id="{chart_id}">{svg}{table}'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def _empty(chart_id: str, title: str) -> Markup:
    return Markup(
        f'<figure class="chart" id="{chart_id}"><figcaption>{escape(title)}</figcaption>'
        "<p>Нет данных для диаграммы.</p></figure>"
    )


# --- horizontal bars ----------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None  # None: no bar, «—»
    text: str  # the figure as written next to the bar and in the table


def _share(value: float | None, maximum: float) -> float:
    """The part of the full length a bar takes, from 0 to 1 (none for no figure)."""
    return min(max(value or 0, 0) / maximum, 1) if maximum else 0


def bar_chart(
    chart_id: str,
    title: str,
    bars: Sequence[Bar],
    *,
    maximum: float,
    headers: tuple[str, str],
    note: str = "",
    upright: bool = False,
) -> Markup:
    """One bar per item, scaled to `maximum`, with its figure: one a line, the figure at its
    end; or `upright`, one column per item (e.g. per week), the figure above, the label below."""
    if not bars:
        return _empty(chart_id, title)
    svg = _columns(chart_id, bars, maximum) if upright else _across(chart_id, bars, maximum)
    table = _table(chart_id, title, headers, [(b.label, b.text) for b in bars])
    return _figure(chart_id, title, svg, table, note)


def _across(chart_id: str, bars: Sequence[Bar], maximum: float) -> str:
    label_w = label_width(bar.label for bar in bars)
    span = WIDTH - label_w - VALUE_W
    parts = []
    for n, bar in enumerate(bars):
        y = TOP + n * ROW_H
        parts.append(_text(label_w - 4, y + BAR_H - 3, _short(bar.label), anchor="end"))
        width = span * _share(bar.value, maximum)
        if bar.value is not None:
            parts.append(_rect(label_w, y, width, BAR_H, fill_of(chart_id, "solid")))
        parts.append(_text(label_w + width + 4, y + BAR_H - 3, bar.text))
    height = TOP * 2 + len(bars) * ROW_H
    axis = f'<line x1="{label_w}" y1="0" x2="{label_w}" y2="{height}" stroke="{INK}"/>'
    return _svg(chart_id, height, "".join(parts) + axis)


# --- stacked bars with a legend -----------------------------------------------------------


@dataclass(frozen=True)
class Stack:
    label: str
    counts: tuple[int, ...]  # one per series


def _legend_step(name: str) -> float:
    """From one legend entry to the next: the swatch, the name (about 7 units a character)
    and a gap."""
    return 20 + 7 * len(name) + 8


def _legend(chart_id: str, series: Sequence[str], y: float, x: float) -> str:
    """The legend over the bars from `x`, moved left where it would run past the edge."""
    width = sum(map(_legend_step, series)) - 8
    x = max(4.0, min(x, WIDTH - 4 - width))
    parts = []
    for n, name in enumerate(series):
        parts.append(_rect(x, y, 12, 10, fill_of(chart_id, PATTERNS[n % len(PATTERNS)])))
        parts.append(_text(x + 15, y + 9, name))
        x += _legend_step(name)
    return "".join(parts)


def _segments(
    chart_id: str, stack: Stack, y: float, x: float, span: float, total: int
) -> list[str]:
    parts = []
    for n, count in enumerate(stack.counts):
        width = span * count / total if total else 0
        if count:
            parts.append(_rect(x, y, width, BAR_H, fill_of(chart_id, PATTERNS[n % len(PATTERNS)])))
        if count and width >= 16:  # the figure inside its segment, on a white box
            cx = x + width / 2
            parts.append(
                f'<rect x="{_fmt(cx - 8)}" y="{_fmt(y + 0.5)}" width="16" height="12" '
                f'fill="{PAPER}"/>'
                + _text(cx, y + BAR_H - 3, str(count), anchor="middle", size=SMALL - 1)
            )
        x += width
    return parts


def stacked_bars(
    chart_id: str,
    title: str,
    stacks: Sequence[Stack],
    *,
    series: Sequence[str],
    headers: tuple[str, ...],
    note: str = "",
) -> Markup:
    """One bar per line split into the series (e.g. how many «5», «4», «3», «2»), each
    segment in its own pattern with its count; a legend on top; the total at the end."""
    if not stacks or not any(sum(s.counts) for s in stacks):
        return _empty(chart_id, title)
    label_w = label_width(s.label for s in stacks)
    span = WIDTH - label_w - VALUE_W
    parts = [_legend(chart_id, series, TOP, label_w)]
    top = TOP + 18
    for n, stack in enumerate(stacks):
        y = top + n * ROW_H
        total = sum(stack.counts)
        parts.append(_text(label_w - 4, y + BAR_H - 3, _short(stack.label), anchor="end"))
        parts += _segments(chart_id, stack, y, label_w, span, total)
        parts.append(_text(WIDTH - VALUE_W + 4, y + BAR_H - 3, str(total)))
    height = top + TOP + len(stacks) * ROW_H
    svg = _svg(chart_id, height, "".join(parts))
    rows = [(s.label, *(str(c) for c in s.counts), str(sum(s.counts))) for s in stacks]
    return _figure(chart_id, title, svg, _table(chart_id, title, headers, rows), note)


# --- vertical bars ------------------------------------------------------------------------


def _columns(chart_id: str, columns: Sequence[Bar], maximum: float) -> str:
    plot_h, base = 90.0, 104.0
    step = (WIDTH - 8) / len(columns)
    width = min(step * 0.7, 36)
    parts = [f'<line x1="4" y1="{base}" x2="{WIDTH - 4}" y2="{base}" stroke="{INK}"/>']
    for n, column in enumerate(columns):
        cx = 4 + step * n + step / 2
        h = plot_h * _share(column.value, maximum)
        if column.value is not None:
            parts.append(_rect(cx - width / 2, base - h, width, h, fill_of(chart_id, "hatch")))
        size = SMALL - 1 if step < 40 else SMALL
        parts.append(_text(cx, base - h - 3, column.text, anchor="middle", size=size))
        parts.append(_text(cx, base + 12, column.label, anchor="middle", size=size))
    return _svg(chart_id, base + 18, "".join(parts))


# --- lines --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    name: str
    values: tuple[float | None, ...]


def _marker(kind: int, x: float, y: float) -> str:
    if kind == 0:  # a filled circle
        return f'<circle cx="{_fmt(x)}" cy="{_fmt(y)}" r="3" fill="{INK}"/>'
    return (  # an open square
        f'<rect x="{_fmt(x - 3)}" y="{_fmt(y - 3)}" width="6" height="6" fill="{PAPER}" '
        f'stroke="{INK}" stroke-width="1.2"/>'
    )


def _polylines(points: list[tuple[float, float] | None], dashed: bool) -> str:
    """Lines between neighbouring points; a week without a figure breaks the line."""
    dash = ' stroke-dasharray="5 3"' if dashed else ""
    out, run = [], []
    for point in [*points, None]:
        if point is not None:
            run.append(point)
            continue
        if len(run) > 1:
            coords = " ".join(f"{_fmt(x)},{_fmt(y)}" for x, y in run)
            out.append(
                f'<polyline points="{coords}" fill="none" stroke="{INK}" stroke-width="1.5"{dash}/>'
            )
        run = []
    return "".join(out)


@dataclass(frozen=True)
class _Plot:
    """Where a line chart draws: the plot box and the value range."""

    count: int
    minimum: float
    maximum: float
    left: float = 26.0
    right: float = WIDTH - 10.0
    top: float = 32.0
    bottom: float = 124.0

    def x(self, index: int) -> float:
        return self.left + (self.right - self.left) / max(self.count - 1, 1) * index

    def y(self, value: float) -> float:
        low, high = self.minimum, self.maximum
        share = (min(max(value, low), high) - low) / (high - low)
        return self.bottom - share * (self.bottom - self.top)


# A class page draws one chart per pupil on the same weeks: the grid, the labels and the
# class's own line are drawn once and reused.
@functools.lru_cache(maxsize=16)
def _grid(plot: _Plot) -> tuple[str, ...]:
    parts = []
    for tick in range(int(plot.minimum), int(plot.maximum) + 1):
        y = plot.y(tick)
        grid = f'x1="{plot.left}" y1="{_fmt(y)}" x2="{plot.right}" y2="{_fmt(y)}"'
        parts.append(f'<line {grid} stroke="{GREY}" stroke-width="0.4"/>')
        parts.append(_text(plot.left - 4, y + 4, str(tick), anchor="end", size=SMALL))
    return tuple(parts)


@functools.lru_cache(maxsize=16)
def _series(plot: _Plot, n: int, one: Series) -> tuple[str, ...]:
    """A series' line, its markers and (for the first) its figures."""
    points = [None if v is None else (plot.x(i), plot.y(v)) for i, v in enumerate(one.values)]
    parts = [_polylines(points, dashed=n == 1)]
    for point, value in zip(points, one.values, strict=True):
        if point is not None:
            parts.append(_marker(n, *point))
            if n == 0:
                label = formatting.average(value, 1)
                parts.append(_text(point[0], point[1] - 6, label, anchor="middle", size=SMALL))
    return tuple(parts)


def line_chart(
    chart_id: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    minimum: float,
    maximum: float,
    label_header: str,
    note: str = "",
) -> Markup:
    """Up to two series over the same labels (e.g. a student's weekly average and the
    class's): solid line with dots, dashed line with open squares; the first series'
    figures written at its points."""
    if not labels or not any(v is not None for s in series for v in s.values):
        return _empty(chart_id, title)
    plot = _Plot(len(labels), minimum, maximum)
    parts = [_legend_lines(series), *_grid(plot)]
    for n, one in enumerate(series[:2]):
        parts += _series(plot, n, one)
    parts += _axis_labels(plot, tuple(labels))
    svg = _svg(chart_id, plot.bottom + 20, "".join(parts))
    rows = [
        (label, *(formatting.average(s.values[i]) for s in series))
        for i, label in enumerate(labels)
    ]
    headers = (label_header, *(s.name for s in series))
    return _figure(chart_id, title, svg, _table(chart_id, title, headers, rows), note)


@functools.lru_cache(maxsize=16)
def _axis_labels(plot: _Plot, labels: tuple[str, ...]) -> tuple[str, ...]:
    every = max(1, round(len(labels) / 8))  # at most about eight labels fit under the axis
    return tuple(
        _text(plot.x(i), plot.bottom + 14, label, anchor="middle", size=SMALL)
        for i, label in enumerate(labels)
        if i % every == 0 or i == len(labels) - 1
    )


def _legend_lines(series: Sequence[Series]) -> str:
    parts, x = [], 30.0
    for n, one in enumerate(series[:2]):
        dash = ' stroke-dasharray="5 3"' if n == 1 else ""
        parts.append(
            f'<line x1="{_fmt(x)}" y1="9" x2="{_fmt(x + 22)}" y2="9" stroke="{INK}" '
            f'stroke-width="1.5"{dash}/>'
        )
        parts.append(_marker(n, x + 11, 9))
        parts.append(_text(x + 27, 13, one.name))
        x += 40 + 6.5 * len(one.name)
    return "".join(parts)
