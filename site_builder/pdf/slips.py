"""Credential slips: eight to an A4 sheet, with cut lines, for the class teacher to hand out.

Each slip has the person's name, the login, the password (or, on a login-only slip, where
to get a new one), the school's LAN address and the public mirror, a QR code of the login
page with the login filled in (`index.html#login=…`, which login.js reads; the password
goes into the code only when asked for), and a short note on keeping the password secret
and what to do if it leaks. Slips of each class start on a new sheet.
"""

from __future__ import annotations

import functools
import itertools
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import jinja2
import segno
from markupsafe import Markup

from otmetka.site_builder import static_files, templating
from otmetka.site_builder.pdf.engine import RenderedPdf, render_pdf

SLIPS_PER_SHEET = 8
ROLE_LABELS = {
    "guardian": "родитель (законный представитель)",
    "student": "ученик",
    "teacher": "классный руководитель",
}


@dataclass(frozen=True)
class Slip:
    name: str
    role: str  # guardian / student / teacher
    class_name: str
    login: str
    password: str | None  # None: a login-only slip (the password was given earlier)


@dataclass(frozen=True)
class SlipAddresses:
    school_name: str
    lan_url: str
    mirror_url: str


def login_url(base: str, login: str, password: str | None = None) -> str:
    """The login page with the login (and, if given, the password) in the fragment, which
    never leaves the browser: `http://school/index.html#login=k7mp2x4q`."""
    root = base if base.endswith("/") else base + "/"
    fragment = {"login": login} | ({"password": password} if password else {})
    return f"{root}index.html#{urllib.parse.urlencode(fragment)}"


def qr_svg(url: str) -> Markup:
    """The QR code as inline SVG (sized by the stylesheet), medium error correction.

    The quiet zone is the standard's four modules: with two, about one code in a few
    thousand printed eight to a sheet was missed by a scanner."""
    return Markup(segno.make(url, error="m").svg_inline(scale=1, border=4, omitsize=True))


@dataclass(frozen=True)
class _Code:
    label: str
    url: str
    svg: Markup


def _codes(slip: Slip, where: SlipAddresses, qr_password: bool) -> list[_Code]:
    password = slip.password if qr_password else None
    places = [("в школе", where.lan_url), ("из дома", where.mirror_url)]
    codes = []
    for label, base in places:
        if base:
            url = login_url(base, slip.login, password)
            codes.append(_Code(label, url, qr_svg(url)))
    return codes


def _sheets(slips: Sequence[Slip]) -> Iterator[list[Slip]]:
    """Eight slips a sheet; each class starts a sheet of its own."""
    for _class_name, group in itertools.groupby(slips, key=lambda s: s.class_name):
        members = list(group)
        for start in range(0, len(members), SLIPS_PER_SHEET):
            yield members[start : start + SLIPS_PER_SHEET]


@functools.cache
def _template() -> jinja2.Template:
    return templating.environment().get_template("print_slips.html.j2")


@functools.cache
def slips_css() -> str:
    return static_files.text("print-slips.css")


def slips_html(slips: Sequence[Slip], where: SlipAddresses, *, qr_password: bool = False) -> str:
    sheets = [
        [
            (slip, ROLE_LABELS.get(slip.role, slip.role), _codes(slip, where, qr_password))
            for slip in sheet
        ]
        for sheet in _sheets(slips)
    ]
    return _template().render(sheets=sheets, where=where)


def slips_pdf(
    slips: Sequence[Slip], where: SlipAddresses, *, qr_password: bool = False
) -> RenderedPdf:
    """All `slips` (ordered by class, then name, as given) as one PDF."""
    return render_pdf(slips_html(slips, where, qr_password=qr_password), slips_css())
