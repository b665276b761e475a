"""The pages' SVG charts (`pages/charts.py`) redrawn for WeasyPrint: the same picture in
fewer, cheaper elements.

WeasyPrint draws every SVG shape with its own graphics state (and a pattern fill with its
own pattern object), and puts every text that is not anchored at its start into a PDF group
of its own; the groups were most of a merged school report's bytes and of pypdf's work.
On paper the font is known (the shipped PT Sans), so a text's anchor is resolved here from
the font's advance widths, and the shapes of one style become one path. A shape joins an
earlier path of its style only if it overlaps none of the shapes painted in between, so
what lies on top stays on top; texts are painted last, over the shapes (no chart puts a
shape over a figure on purpose). The web pages keep the original SVG: a browser may fall
back to another font, and there the anchors must stay.
"""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from otmetka.site_builder.pdf import engine

SVG_NS = "http://www.w3.org/2000/svg"
_TAG = f"{{{SVG_NS}}}"
# Attributes that decide how a shape is painted: shapes that agree on all of them can share a path.
_STYLE = ("fill", "stroke", "stroke-width", "stroke-dasharray")
# The font of a chart's text (`charts.FONT`): its advance widths place the text.
_REGULAR, _BOLD = "PTSans_400Regular.ttf", "PTSans_700Bold.ttf"


@functools.cache
def _advances(font_file: str) -> tuple[dict[int, int], int, int]:
    """Advance width by code point, the width of a missing glyph, and units per em."""
    from fontTools.ttLib import TTFont

    with TTFont(engine.fonts_dir() / font_file) as font:
        metrics = font["hmtx"].metrics
        widths = {code: metrics[name][0] for code, name in font.getBestCmap().items()}
        return widths, metrics[".notdef"][0], font["head"].unitsPerEm


def text_width(text: str, size: float, *, bold: bool = False) -> float:
    """The width of `text` set in the charts' font at `size` user units, unkerned as
    WeasyPrint draws a chart's text (`svg_text`)."""
    widths, missing, per_em = _advances(_BOLD if bold else _REGULAR)
    return sum(widths.get(ord(c), missing) for c in text) * size / per_em


def number(x: float) -> str:
    """A length for SVG: two decimals at most, no trailing zeros."""
    return f"{x:.2f}".rstrip("0").rstrip(".") or "0"


def _f(node: ET.Element, name: str, default: float = 0.0) -> float:
    return float(node.get(name, default))


# --- shapes -------------------------------------------------------------------------------

Box = tuple[float, float, float, float]  # left, top, right, bottom, the stroke included


def _rect(node: ET.Element) -> tuple[str, Box]:
    x, y, w, h = (_f(node, a) for a in ("x", "y", "width", "height"))
    return f"M{number(x)} {number(y)}h{number(w)}v{number(h)}h{number(-w)}Z", (x, y, x + w, y + h)


def _line(node: ET.Element) -> tuple[str, Box]:
    x1, y1, x2, y2 = (_f(node, a) for a in ("x1", "y1", "x2", "y2"))
    box = (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))
    return f"M{number(x1)} {number(y1)}L{number(x2)} {number(y2)}", box


def _circle(node: ET.Element) -> tuple[str, Box]:
    cx, cy, r = _f(node, "cx"), _f(node, "cy"), _f(node, "r")
    arc = f"a{number(r)} {number(r)} 0 1 0"
    path = f"M{number(cx - r)} {number(cy)}{arc} {number(2 * r)} 0{arc} {number(-2 * r)} 0Z"
    return path, (cx - r, cy - r, cx + r, cy + r)


def _polyline(node: ET.Element) -> tuple[str, Box]:
    points = [tuple(float(v) for v in p.split(",")) for p in node.get("points", "").split()]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    path = "M" + "L".join(f"{number(x)} {number(y)}" for x, y in points)
    return path, (min(xs), min(ys), max(xs), max(ys))


_SHAPES = {"rect": _rect, "line": _line, "circle": _circle, "polyline": _polyline}


@dataclass
class _Path:
    style: tuple[str | None, ...]
    parts: list[str] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)

    def element(self) -> ET.Element:
        attrs = {name: value for name, value in zip(_STYLE, self.style, strict=True) if value}
        return ET.Element(f"{_TAG}path", {"d": "".join(self.parts), **attrs})


def _grow(box: Box, by: float) -> Box:
    return (box[0] - by, box[1] - by, box[2] + by, box[3] + by)


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _style(node: ET.Element, tag: str) -> tuple[str | None, ...]:
    # A line is never filled: its fill (absent) says nothing.
    fill = "none" if tag == "line" else node.get("fill")
    return (fill, *(node.get(name) for name in _STYLE[1:]))


def _join(paths: list[_Path], style: tuple[str | None, ...], part: str, box: Box) -> None:
    """Add a shape to the latest path of its style that it may join without changing what
    is on top, or start a new path."""
    stroked_fill = style[0] not in (None, "none") and style[1] not in (None, "none")
    for index in range(len(paths) - 1, -1, -1):
        candidate = paths[index]
        if candidate.style == style and not (
            stroked_fill and any(_overlap(box, b) for b in candidate.boxes)
        ):
            candidate.parts.append(part)
            candidate.boxes.append(box)
            return
        if any(_overlap(box, b) for b in candidate.boxes):
            break  # painted between: the shape must come after it
    paths.append(_Path(style, [part], [box]))


# --- texts --------------------------------------------------------------------------------


def _anchored(node: ET.Element) -> ET.Element:
    """The text with its anchor resolved: placed at its start, where WeasyPrint puts it
    without the PDF group an anchor costs."""
    anchor = node.get("text-anchor", "start")
    if anchor == "start":
        node.attrib.pop("text-anchor", None)
        return node
    if len(node) or node.get("font-weight") not in (None, "normal", "400"):
        return node
    share = {"middle": 0.5, "end": 1.0}.get(anchor)
    if share is None:
        return node
    size = _f(node, "font-size", 12.0)
    x = _f(node, "x") - share * text_width(node.text or "", size)
    node.set("x", number(x))
    del node.attrib["text-anchor"]
    return node


# --- the chart ----------------------------------------------------------------------------


def for_paper(svg: str) -> str:
    """The chart's SVG as WeasyPrint draws it fastest: shapes of a style merged into paths,
    anchors resolved, texts last; the title (read by nobody on paper) left out."""
    root = ET.fromstring(svg)
    for name in [n for n in root.attrib if n.startswith("aria-") or n == "role"]:
        del root.attrib[name]
    defs: list[ET.Element] = []
    paths: list[_Path] = []
    texts: list[ET.Element] = []
    for node in list(root):
        tag = node.tag.removeprefix(_TAG)
        root.remove(node)
        if tag == "defs":
            defs.append(node)
        elif tag == "text":
            texts.append(_anchored(node))
        elif tag in _SHAPES:
            part, box = _SHAPES[tag](node)
            stroke_width = float(node.get("stroke-width") or 1)
            _join(paths, _style(node, tag), part, _grow(box, stroke_width))
        elif tag != "title":
            raise ValueError(f"a chart holds <{tag}>, which paper_charts cannot redraw")
    uses_patterns = any("url(#" in (p.style[0] or "") for p in paths)
    root.extend([*(defs if uses_patterns else []), *(p.element() for p in paths), *texts])
    for node in root.iter():  # plain names, the namespace declared once, as the pages write it
        node.tag = node.tag.removeprefix(_TAG)
    root.set("xmlns", SVG_NS)
    return ET.tostring(root, encoding="unicode")
