"""The one Jinja environment factory: the templates of site_builder/templates with the
shared filters and labels, for pages, the shell, printouts, letters and the consent text.

Every environment loads from the same package, fails on an undefined name and autoescapes
HTML explicitly (the names end in .j2, which select_autoescape would miss). They differ
only where the output does: HTML or text, trimmed blocks or not, the trailing newline.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jinja2
from markupsafe import Markup

from otmetka.site_builder import formatting
from otmetka.site_builder.markdown import render_markdown


def markdown_filter(text: str) -> Markup:
    return Markup(render_markdown(text))


FILTERS: dict[str, Callable[..., Any]] = {
    "dlong": formatting.date_long,
    "dday": formatting.day_month,
    "dshort": formatting.date_short,
    "wday": formatting.weekday,
    "avg": formatting.average,
    "num": formatting.number,
    "md": markdown_filter,
    "pct": formatting.percent,
}
LABELS: dict[str, Any] = {
    "mark_kinds": formatting.MARK_KINDS,
    "categories": formatting.ATTENDANCE_CATEGORIES,
    "group_kinds": formatting.GROUP_KINDS,
    "holiday_kinds": formatting.HOLIDAY_KINDS,
    "consent_states": formatting.CONSENT_STATES,
    "deliveries": formatting.DELIVERIES,
    "paper_reasons": formatting.PAPER_REASONS,
    "roles": formatting.ROLES,
    "breach_states": formatting.BREACH_STATES,
}


@functools.cache
def environment(
    *, html: bool = True, trim: bool = True, keep_trailing_newline: bool = False
) -> jinja2.Environment:
    """`html`: autoescape (False for plain text and Markdown, escaped when rendered);
    `trim`: trim_blocks and lstrip_blocks; one environment per combination."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("otmetka.site_builder", "templates"),
        autoescape=html,
        undefined=jinja2.StrictUndefined,
        trim_blocks=trim,
        lstrip_blocks=trim,
        keep_trailing_newline=keep_trailing_newline,
        auto_reload=False,  # templates are package data: no stat of each one per page
    )
    env.filters.update(FILTERS)
    env.globals.update(LABELS)
    return env


def with_filters(env: jinja2.Environment, **filters: Callable[..., Any]) -> jinja2.Environment:
    """`env` plus a few filters of one caller (print, mail), leaving `env` itself as it is."""
    overlay = env.overlay()
    overlay.filters = dict(overlay.filters)  # an overlay shares the dict: copy before adding
    overlay.filters.update(filters)
    return overlay


def fragment(template: str, **context: Any) -> Markup:
    """A template of the pages rendered to safe HTML."""
    return Markup(environment().get_template(template).render(**context))
