"""Hostile content on a real built page in Chromium: names and texts with HTML, scripts and
handlers, right-to-left marks, emoji and a 10,000-character text, from the journal through
the importer, the builder and the encryption, unlocked with the password. Nothing runs (no
flag set, no dialog), nothing is a live link or a handler, and every text is there to read,
wrapping on a 360 px phone instead of running off the screen."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from otmetka.daemon.acts import paper
from otmetka.daemon.core.config import Config, config_from_dict
from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.core.settings import build_options
from otmetka.daemon.endpoint.app import create_app
from otmetka.daemon.exchange.importer import import_document
from otmetka.db import close_database, migrate, open_database
from otmetka.site_builder import build
from tests.site_builder.pdf.test_hostile_pdf import (
    HOMEWORK_VISIBLE,
    LONG_TEXT,
    LONG_TOKEN,
    NAME_HTML,
    hostile_school,
)
from tests.support.acts_support import logins_for_everyone
from tests.support.servers import waitress_server

from .conftest import LAN_HOST, VIEWPORT

pytestmark = pytest.mark.browser

TODAY = dt.date(2026, 9, 16)
MOTHER, TEACHER = "Иванова", "Королёва Анна Петровна"


def _build(folder: Path) -> tuple[Config, dict[str, dict[str, str]]]:
    config = config_from_dict({"site": {"kdf_iterations": 100_000}}, base_dir=folder, env={})
    open_database(config.database.url)
    try:
        migrate()
        import_document(hostile_school(), "hostile.json", MarkRules())
        logins = logins_for_everyone(config)
        mother = next(row for name, row in logins.items() if name.startswith(MOTHER + "\u200f"))
        logins[MOTHER] = mother
        paper.register_consent(config, login=mother["login"], decision="granted", paper=True)
        build.build_site(build_options(config, today=TODAY))
    finally:
        close_database()
    return config, logins


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict, int]]:
    config, logins = _build(tmp_path_factory.mktemp("hostile"))
    with waitress_server(create_app(config)) as port:
        yield logins, port


# Run in the page after unlocking: what an attacker's markup would have left behind.
INSPECT = """() => {
  const app = document.getElementById('otm-app');
  const all = Array.from(app.querySelectorAll('*'));
  return {
    pwned: typeof window.__pwned,
    handlers: all.filter((el) => Array.from(el.attributes).some((a) => /^on/i.test(a.name)))
      .map((el) => el.outerHTML.slice(0, 80)),
    liveScripts: Array.from(app.querySelectorAll('script'))
      .filter((s) => s.type !== 'application/json').length,
    // Charts are inline SVG made by the builder; planted markup would bring these instead.
    frames: app.querySelectorAll('iframe, object, embed, img[src="x"], svg script').length,
    jsLinks: Array.from(app.querySelectorAll('[href], [src], [srcdoc]'))
      .filter((el) => /^\\s*javascript:/i.test(el.getAttribute('href') || el.getAttribute('src')
        || '') || el.hasAttribute('srcdoc')).length,
    text: app.textContent,
    overflow: document.documentElement.scrollWidth - window.innerWidth,
    // Text that sticks out to the right of the screen, and the element holding it.
    wide: (() => {
      const found = [];
      const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
      while (walker.nextNode()) {
        const range = document.createRange();
        range.selectNodeContents(walker.currentNode);
        if (range.getBoundingClientRect().right > window.innerWidth + 1) {
          const el = walker.currentNode.parentElement;
          found.push(el.tagName + ': ' + walker.currentNode.textContent.slice(0, 50));
        }
      }
      return found;
    })(),
  };
}"""


def _open(page: Page, base: str, row: dict[str, str]) -> None:
    page.goto(base + "index.html")
    page.wait_for_selector("#otm-login-form", state="visible")
    page.fill("#otm-login", row["login"])
    page.fill("#otm-password", row["password"])
    page.click("#otm-submit")
    page.wait_for_selector("html[data-otm-state=unlocked]")


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text)


@pytest.mark.parametrize("where", ["local", "lan"])
@pytest.mark.parametrize("who", [MOTHER, TEACHER])
def test_hostile_content_is_inert_and_readable(
    where: str, who: str, built: tuple[dict, int], browser: Browser, lan_browser: Browser
) -> None:
    logins, port = built
    chromium = lan_browser if where == "lan" else browser
    host = LAN_HOST if where == "lan" else "127.0.0.1"
    context = chromium.new_context(viewport=VIEWPORT, locale="ru-RU")
    context.set_default_timeout(30_000)
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    try:
        _open(page, f"http://{host}:{port}/", logins[who])
        page.wait_for_timeout(300)  # give any planted handler (onerror, onload) its chance
        found = page.evaluate(INSPECT)
        assert found["pwned"] == "undefined" and dialogs == []
        assert found["handlers"] == [] and found["liveScripts"] == 0
        assert found["frames"] == 0
        assert found["jsLinks"] == 0
        text = found["text"]
        assert NAME_HTML in text  # shown as the text it is
        if who == MOTHER:
            assert "Иванова\u200fанйамоП\u200f 👩\u200d👧\u200d👦" in text
            for visible in HOMEWORK_VISIBLE:
                assert visible in text, visible
            assert "🙂" in text
            assert _squash(LONG_TEXT) in _squash(text)  # all 10,000 characters
            assert LONG_TOKEN in text
        long_ones = [w for w in found["wide"] if LONG_TOKEN[:20] in w or "читать" in w]
        assert long_ones == [], "the 10,000 characters must wrap on a phone"
    finally:
        context.close()


def test_a_long_name_does_not_widen_the_page(built: tuple[dict, int], browser: Browser) -> None:
    """A name is one unbreakable "word" when it has no spaces (here the markup in it): it
    must wrap like any text, or the phone scrolls sideways to read the page."""
    logins, port = built
    context = browser.new_context(viewport=VIEWPORT, locale="ru-RU")
    context.set_default_timeout(30_000)
    page = context.new_page()
    try:
        _open(page, f"http://127.0.0.1:{port}/", logins[MOTHER])
        found = page.evaluate(INSPECT)
        assert found["overflow"] <= 1, f"wider than the phone: {found['wide'][:5]}"
    finally:
        context.close()
