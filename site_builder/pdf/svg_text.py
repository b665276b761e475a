"""SVG texts drawn by WeasyPrint as one run each, not one run per letter.

WeasyPrint lays out and draws an SVG <text> code point by code point, since SVG may place
every glyph on its own (its issue #2249, still open: "draw the whole text when there are no
x, y, dx, dy or rotate values for specific glyphs" is the workaround its maintainer names).
A chart's figures and labels are placed as a whole, so each letter cost a Pango layout of
its own: a third of a class report's time went there. `install` puts in WeasyPrint's table
of SVG elements a drawer that draws such a text as one run, at the same start and baseline,
unkerned as before, so the page looks the same to the pixel; its layout is kept for the
next chart that writes the same words. Every other text (glyph positions, spacing, baseline
alignment, spans) goes to WeasyPrint's own drawer unchanged.

Only the calls WeasyPrint's own drawer makes are used; a WeasyPrint without them keeps its
drawer (`install` says so by returning False).
"""

from __future__ import annotations

import functools
import sys
from math import inf
from typing import Any

# What makes WeasyPrint place glyphs one by one (`weasyprint/svg/text.py`): with any of
# these, the text goes to its drawer.
_PER_GLYPH = (
    "dx",
    "dy",
    "rotate",
    "letter-spacing",
    "textLength",
    "display-anchor",
    "dominant-baseline",
    "alignment-baseline",
    "direction",
)


def _single(value: str | None) -> bool:
    return value is not None and len(value.replace(",", " ").split()) == 1


def _whole(node: Any) -> bool:
    """A text WeasyPrint would draw letter after letter from one given start."""
    return (
        node.tag == "text"
        and bool(node.text)
        and next(iter(node), None) is None  # no <tspan>
        and _single(node.get("x"))
        and _single(node.get("y"))
        and not any(node.get(name) for name in _PER_GLYPH)
    )


def _style(svg: Any, node: Any, font_size: float, upstream: Any) -> Any:
    """The text's style as WeasyPrint's drawer builds it."""
    from weasyprint.css.properties import INITIAL_VALUES

    style = upstream.Style()
    style.update(INITIAL_VALUES)
    style.font_config = svg.font_config
    families = node.get("font-family", "sans-serif").split(",")
    style["font_family"] = [family.strip("\"'") for family in families]
    style["font_style"] = node.get("font-style", "normal")
    weight = str(node.get("font-weight", 400))
    named = {"normal": 400, "bold": 700}
    style["font_weight"] = named.get(weight) or (int(weight) if weight.isdigit() else 400)
    style["font_size"] = font_size
    # Unkerned, as WeasyPrint's drawer sets it letter by letter and as `paper_charts`
    # measures it to anchor it: a text anchored at its end still ends where it should.
    style["font_kerning"] = "none"
    return style


# Laid-out texts by what shapes them: a class's charts repeat their scales, dates and
# legends from one student to the next. A layout is kept live (WeasyPrint's own drawer
# lays a text out twice: to measure it, then again to draw it). Emptied when full: the
# daemon is a long-lived process.
_LAID_OUT: dict[tuple[Any, ...], tuple[Any, Any, float, float, float]] = {}
_LAID_OUT_MAX = 4096


def _laid_out(svg: Any, node: Any, font_size: float, upstream: Any) -> tuple[Any, ...]:
    """(layout, style, width, height, baseline) of the text, laid out once."""
    from weasyprint.text.line_break import split_first_line

    shaping = ("font-family", "font-style", "font-weight")
    key = (svg.font_config, node.text, font_size, *(node.get(name) for name in shaping))
    found = _LAID_OUT.get(key)
    if found is None:
        style = _style(svg, node, font_size, upstream)
        layout, _, _, width, height, baseline = split_first_line(
            node.text, style, svg.context, inf, 0
        )
        layout.reactivate(style)
        if len(_LAID_OUT) >= _LAID_OUT_MAX:
            _LAID_OUT.clear()
        found = _LAID_OUT[key] = (layout, style, width, height, baseline)
    return found


@functools.lru_cache(maxsize=256)
def _colour(fill: str, opacity: str | float) -> Any:
    """A fill colour parsed once: a chart writes a handful, thousands of times (the stream
    only reads it)."""
    from weasyprint.svg.utils import alpha_value, color

    paint = color(fill)
    paint.alpha *= alpha_value(opacity)
    return paint


def _paint(svg: Any, node: Any, font_size: float) -> tuple[Any, Any]:
    """The text's fill and stroke set on the stream: a plain fill colour alone, as most
    chart texts have, without the dashes, caps and joins only a stroke would use."""
    source, fill = node.get_paint("fill")
    plain = source is None and node.get("stroke") in (None, "none")
    if not plain:
        return svg.set_graphical_state(node, font_size)
    if fill:
        svg.stream.set_color(_colour(fill, node.get("fill-opacity", 1)))
    return fill, None


def _draw_whole(svg: Any, node: Any, font_size: float, upstream: Any) -> None:
    from weasyprint.draw.text import draw_emojis, draw_first_line
    from weasyprint.matrix import Matrix
    from weasyprint.svg.bounding_box import extend_bounding_box
    from weasyprint.svg.utils import size

    layout, style, width, height, baseline = _laid_out(svg, node, font_size, upstream)
    x = size(node.get("x"), font_size, svg.inner_width)
    y = size(node.get("y"), font_size, svg.inner_height)
    svg.cursor_d_position = [0, 0]
    svg.cursor_position = (x + width, y)
    corners = ((x, y - baseline), (x + width, y - baseline + height))
    node.text_bounding_box = extend_bounding_box(node.text_bounding_box, corners)

    svg.stream.push_state()
    fill, stroke = _paint(svg, node, font_size)
    svg.stream.begin_text()
    svg.fill_stroke(fill, stroke, text=True)
    box = upstream.TextBox(layout, style)
    box.baseline = baseline
    emojis = draw_first_line(svg.stream, box, "none", "none", Matrix(a=1, d=-1, e=x, f=y))
    svg.stream.end_text()
    svg.stream.pop_state()
    draw_emojis(svg.stream, style, x, y, emojis)


def install() -> bool:
    """Draw whole texts at once in this process from now on; False if this WeasyPrint
    lacks what the drawer calls (it then keeps its own)."""
    try:
        import weasyprint.svg
        import weasyprint.svg.text  # the module, which its function shadows as an attribute
        from weasyprint.draw.text import draw_emojis, draw_first_line  # noqa: F401
        from weasyprint.text.line_break import split_first_line  # noqa: F401
    except ImportError:
        return False
    upstream = sys.modules["weasyprint.svg.text"]
    if getattr(weasyprint.svg.TAGS["text"], "draws_whole_texts", False):
        return True
    drawer = upstream.text

    def text(svg: Any, node: Any, font_size: float) -> None:
        if _whole(node):
            _draw_whole(svg, node, font_size, upstream)
        else:
            drawer(svg, node, font_size)

    text.draws_whole_texts = True  # type: ignore[attr-defined]
    text.upstream = drawer  # type: ignore[attr-defined]
    # WeasyPrint tells a text element by its drawer (`TAGS.get(tag) == text`, to anchor it
    # and to measure it): every tag drawn by its drawer, and the name, get the new one.
    for tag, tag_drawer in weasyprint.svg.TAGS.items():
        if tag_drawer is drawer:
            weasyprint.svg.TAGS[tag] = text
    weasyprint.svg.text = text  # type: ignore[attr-defined]
    return True
