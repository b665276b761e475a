"""The page scripts are shipped minified (site_builder/static/min, made by
site_builder/vendor_src/build.sh); these tests keep the minified files in step with their
readable sources and check that pages carry the minified ones."""

from __future__ import annotations

import hashlib
import re
from importlib import resources

import pytest

from otmetka.site_builder import shell, static_files

STATIC = resources.files("otmetka.site_builder") / "static"
SOURCES = sorted(p.name for p in STATIC.iterdir() if p.name.endswith(".js"))


def test_every_page_script_has_a_minified_copy() -> None:
    assert SOURCES == [
        "download.js",
        "envelope.js",
        "login.js",
        "page.js",
        "save.js",
        "staff.js",
        "unlock.js",
    ]
    for name in SOURCES:
        assert (STATIC / static_files.MINIFIED_DIR / name).is_file(), name


@pytest.mark.parametrize("name", SOURCES)
def test_each_minified_script_was_made_from_its_current_source(name: str) -> None:
    banner = re.match(r"/\*! otmetka (\S+) sha256:([0-9a-f]{64}) ", static_files.script(name))
    assert banner is not None and banner.group(1) == name
    source = (STATIC / name).read_bytes()
    assert banner.group(2) == hashlib.sha256(source).hexdigest(), (
        f"static/{name} changed since it was minified: run bash site_builder/vendor_src/build.sh"
    )
    assert len(static_files.script(name)) < 0.6 * len(source)


def test_the_login_page_inlines_the_minified_script() -> None:
    page = shell.render_login_page("0" * 32, title="Школа")
    assert static_files.script("login.js") in page
    assert static_files.text("login.js")[:40] not in page  # not the readable source
