"""Markdown from teachers (homework, recommendations) to HTML that is safe to show.

The text comes from upstream and is typed by people, so it is treated as hostile: Markdown
passes raw HTML through, hence everything is cleaned afterwards by nh3 with an explicit
allow-list. Only absolute http, https and mailto links survive; relative links are dropped
because they would resolve against wherever the page happens to be opened from.
"""

from __future__ import annotations

import functools
import re
import threading

import markdown
import nh3

EXTENSIONS = ["sane_lists", "nl2br"]

ALLOWED_TAGS = {
    "p", "br", "ul", "ol", "li", "strong", "em", "b", "i", "a", "code", "pre", "blockquote",
    "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href"}}
URL_SCHEMES = {"http", "https", "mailto"}
LINK_REL = "noopener noreferrer nofollow"
# Dropped together with their content: nothing inside them is meant to be read as text.
DROP_WITH_CONTENT = {"script", "style", "iframe", "object", "embed", "noscript", "template"}

# The page already uses h1–h3 (page, child, section); a «# Заголовок» in a homework text
# becomes h4 so it cannot break the outline.
_HEADING = re.compile(r"<(/?)h([1-6])\b", re.IGNORECASE)
_HEADING_SHIFT = 3

_local = threading.local()


def _converter() -> markdown.Markdown:
    """One Markdown instance per thread: building one per call costs more than converting."""
    converter = getattr(_local, "converter", None)
    if converter is None:
        converter = markdown.Markdown(extensions=EXTENSIONS, output_format="html")
        _local.converter = converter
    return converter


def _demote_headings(html: str) -> str:
    def shift(match: re.Match[str]) -> str:
        level = min(int(match.group(2)) + _HEADING_SHIFT, 6)
        return f"<{match.group(1)}h{level}"

    return _HEADING.sub(shift, html)


@functools.lru_cache(maxsize=8192)
def render_markdown(text: str) -> str:
    """Sanitised HTML for a Markdown text; cached, as one homework appears on many pages."""
    converter = _converter()
    try:
        html = converter.convert(text)
    finally:
        converter.reset()
    return nh3.clean(
        _demote_headings(html),
        tags=ALLOWED_TAGS,
        clean_content_tags=DROP_WITH_CONTENT,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        url_relative="deny",
        link_rel=LINK_REL,
        strip_comments=True,
    )
