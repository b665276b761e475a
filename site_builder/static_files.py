"""The files under site_builder/static, read once per process: their styles and scripts are
inlined into every page and document."""

from __future__ import annotations

import functools
from importlib import resources

MINIFIED_DIR = "min"


@functools.cache
def text(name: str) -> str:
    """A file under static/ (a name like "page.css" or "vendor/otmetka-crypto.min.js")."""
    return (resources.files("otmetka.site_builder") / "static" / name).read_text(encoding="utf-8")


def script(name: str) -> str:
    """One of our page scripts as shipped: minified into static/min/ by
    vendor_src/build.sh from the readable source beside it (a test keeps the two in step)."""
    return text(f"{MINIFIED_DIR}/{name}")
