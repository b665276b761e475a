"""WeasyPrint with the project's own fonts, and nothing fetched from anywhere else.

Every PDF is set in PT Sans (ParaType, SIL Open Font License 1.1; site_builder/fonts/,
fetched by fonts/fetch.sh), page headers and footers included, so a PDF looks the same on
every machine whatever fonts it has. Documents may carry text from upstream (homework,
recommendations), so the URL fetcher refuses everything but the font files and data:
URLs: a PDF never reaches the network or reads another local file.

One FontConfiguration and one parsed stylesheet per process: WeasyPrint then loads each
font file once, not once per document.
"""

from __future__ import annotations

import functools
import hashlib
import io
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

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


class _Engine:
    def __init__(self) -> None:
        from weasyprint.text.fonts import FontConfiguration

        self.font_config = FontConfiguration()
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

    def layout(self, html: str, css: str) -> Document:
        from weasyprint import HTML

        return HTML(string=html, base_url=self.base_url, url_fetcher=self.fetcher).render(
            stylesheets=[self.stylesheet(css)], font_config=self.font_config
        )


@functools.cache
def _engine() -> _Engine:
    return _Engine()


def render_document(html: str, css: str) -> Document:
    """The laid-out pages (WeasyPrint's Document), e.g. to check where boxes ended up."""
    return _engine().layout(html, css)


def render_pdf(html: str, css: str) -> RenderedPdf:
    """One HTML document with the given print stylesheet (the fonts come first) -> PDF."""
    document = render_document(html, css)
    return RenderedPdf(document.write_pdf(), len(document.pages))


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
