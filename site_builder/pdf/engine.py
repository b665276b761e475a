"""WeasyPrint with the project's own fonts, and nothing fetched from anywhere else.

Every PDF is set in PT Sans (ParaType, SIL Open Font License 1.1; site_builder/fonts/,
fetched by fonts/fetch.sh), page headers and footers included, so a PDF looks the same on
every machine whatever fonts it has. Documents may carry text from upstream (homework,
recommendations), so the URL fetcher refuses everything but the font files and data:
URLs: a PDF never reaches the network or reads another local file.

One FontConfiguration and one parsed stylesheet per process: WeasyPrint then loads each
font file once, not once per document.

A document made only of the project's own markup (`plain=True`, the analytics reports) is
laid out with a user-agent stylesheet that leaves out WeasyPrint's rules for footnotes and
notes, and gives list markers to list items only (`_plain_html`: the same PDF bytes): the
cascade then stops computing half a dozen pseudo-elements for every element. Documents
carrying upstream HTML (the extracts) keep the whole stylesheet: a footnote there would
find no style to lay out with.

SVG texts are drawn as one run each where WeasyPrint would draw them letter by letter
(`svg_text`): the charts' figures then cost one layout each, not one a letter.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from otmetka.site_builder.pdf import svg_text

if TYPE_CHECKING:  # WeasyPrint takes most of a second to load: only PDF work loads it
    from weasyprint import CSS
    from weasyprint.document import Document

FONT_FAMILY = '"PT Sans", sans-serif'


def fonts_dir() -> Path:
    return Path(str(resources.files("otmetka.site_builder") / "fonts"))


@functools.cache
def fonts_css() -> str:
    return (fonts_dir() / "fonts.css").read_text(encoding="utf-8")


@functools.cache
def fonts_version() -> str:
    """A short hash of the font files: part of every cached PDF's key."""
    digest = hashlib.sha256()
    for path in sorted(fonts_dir().glob("*.ttf")):
        digest.update(path.name.encode() + path.read_bytes())
    digest.update(fonts_css().encode())
    return digest.hexdigest()[:12]


def local_only_fetcher() -> Any:
    """A URL fetcher for the shipped fonts and data: URLs that refuses every other URL."""
    from weasyprint.urls import URLFetcher

    class LocalOnlyFetcher(URLFetcher):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(allowed_protocols=("file", "data"))
            self._root = fonts_dir().resolve()

        def fetch(self, url: str, headers: Any = None) -> Any:
            if url.startswith("file:"):
                path = Path(url.split("?")[0].removeprefix("file://")).resolve()
                if not path.is_relative_to(self._root):
                    raise ValueError(f"refusing to read {url}: only the shipped fonts are read")
            return super().fetch(url, headers)

    return LocalOnlyFetcher()


@dataclass(frozen=True)
class RenderedPdf:
    data: bytes
    pages: int


# Rules of WeasyPrint's user-agent stylesheet for pseudo-elements that match every element
# and that the project's own markup never generates.
_NOTE_RULE = re.compile(r"^::(?:footnote|note)-[a-z]+ \{[^}\n]*\}$", re.MULTILINE)


@functools.cache
def _plain_html() -> Any:
    """WeasyPrint's HTML with the user-agent stylesheet trimmed for plain documents: every
    element otherwise gets its ::footnote-call, ::note-marker, ... style computed, most of
    the time the cascade takes."""
    from weasyprint import CSS, HTML
    from weasyprint import html as weasy_html
    from weasyprint.css.counters import CounterStyle

    ua = _NOTE_RULE.sub("", weasy_html.UA).replace(
        "\n::marker {", "\nli::marker, summary::marker {"
    )
    # Its @counter-style rules are WeasyPrint's own, already known: a throwaway collects them.
    plain = CSS(string=ua, counter_style=CounterStyle())

    class PlainHTML(HTML):  # type: ignore[misc]
        def _ua_stylesheets(self, forms: bool = False) -> list[Any]:
            return [plain, weasy_html.UA_FORM_STYLESHEET] if forms else [plain]

    return PlainHTML


class _Engine:
    def __init__(self) -> None:
        from weasyprint.text.fonts import FontConfiguration

        self.font_config = FontConfiguration()
        svg_text.install()
        self.fetcher = local_only_fetcher()
        self.base_url = fonts_dir().as_uri() + "/"

    @functools.lru_cache(maxsize=16)  # noqa: B019 - one engine per process, kept for good
    def stylesheet(self, css: str) -> CSS:
        from weasyprint import CSS

        return CSS(
            string=fonts_css() + "\n" + css,
            base_url=self.base_url,
            url_fetcher=self.fetcher,
            font_config=self.font_config,
        )

    def layout(self, html: str, css: str, plain: bool) -> Document:
        from weasyprint import HTML

        kind = _plain_html() if plain else HTML
        return kind(string=html, base_url=self.base_url, url_fetcher=self.fetcher).render(
            stylesheets=[self.stylesheet(css)], font_config=self.font_config
        )


@functools.cache
def _engine() -> _Engine:
    return _Engine()


def render_document(html: str, css: str, *, plain: bool = False) -> Document:
    """The laid-out pages (WeasyPrint's Document), e.g. to check where boxes ended up.
    `plain`: the document is only the project's own markup, with no footnotes, notes or
    list items but <li> (see the module's docstring)."""
    return _engine().layout(html, css, plain)


# WeasyPrint leaves a document's boxes and styles in reference cycles, about 700 objects a
# login slip, that only a full collection frees. After a big document (all the slips of a
# school: millions of objects) it is collected at once, so that the memory comes back and a
# later step of the same process (a build) does not stop for seconds to do it; a small one
# is left to the collector's own pace, as a collection costs a pass over every live object.
COLLECT_FROM_PAGES = 50


def render_pdf(html: str, css: str, *, plain: bool = False) -> RenderedPdf:
    """One HTML document with the given print stylesheet (the fonts come first) -> PDF."""
    document = render_document(html, css, plain=plain)
    rendered = RenderedPdf(document.write_pdf(), len(document.pages))
    del document
    if rendered.pages >= COLLECT_FROM_PAGES:
        gc.collect()
    return rendered


def merge_pdfs(parts: Iterable[bytes | Path]) -> tuple[bytes, int]:
    """Concatenate PDFs (bytes or files) into one; returns (pdf, number of pages)."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for part in parts:
        source = io.BytesIO(part) if isinstance(part, bytes) else part
        writer.append(PdfReader(source))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue(), len(writer.pages)
