"""The family's page in Debian's chromium on a 360 px phone (and a 1280 px desktop for the
tables): the builder's real site of the page school (page_factories.py), served by the app
under waitress on loopback. The week at a glance and «Ознакомлен(а)» come first; consent
opens the diary without the password again; no table cell breaks a word; links leave the
journal's tab alone."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

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
from tests.support.acts_support import logins_for_everyone
from tests.support.factories import change
from tests.support.page_factories import page_school
from tests.support.servers import free_port, waitress_server

from .conftest import ARTIFACTS, VIEWPORT, log_in

TODAY = dt.date(2026, 9, 16)
MOTHER = "Иванова Мария"
DESKTOP = {"width": 1280, "height": 800}
SCHOOL_ZONE = "Europe/Moscow"

# Every word of every table cell, as the browser laid it out: a word whose boxes sit on
# more than one line was broken inside. Hyphens and dashes are break points of their own;
# headers hidden for screen readers only (1 px boxes) are not laid out for the eye.
BROKEN_WORDS = """() => {
  document.querySelectorAll('#otm-app details').forEach(d => { d.open = true; });
  const broken = [];
  for (const cell of document.querySelectorAll('#otm-app td, #otm-app th')) {
    const head = cell.closest('thead');  // on a phone the cards' headers are for readers only
    if (head && head.getBoundingClientRect().width <= 1) continue;
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const m of node.data.matchAll(/[^\\s\\-\\u2010-\\u2015]+/g)) {
        const range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        const tops = new Set([...range.getClientRects()]
          .filter(r => r.width > 0).map(r => Math.round(r.top)));
        if (tops.size > 1) broken.push(m[0]);
      }
    }
  }
  return broken;
}"""


def _link_homework(port: int) -> dict[str, object]:
    """Homework with a link to another site (here a loopback address: no real network)."""
    data = {
        "subject_id": "math",
        "group_id": "g-math",
        "assigned_on": "2026-09-10",
        "due_date": "2026-09-14",
        "text": f"Посмотрите урок на [РЭШ](http://127.0.0.1:{port}/index.html#resh)",
    }
    return change("homework", "hw-link", data)


def _school(folder: Path, port: int, consent: bool) -> tuple[Config, dict[str, dict[str, str]]]:
    data = {
        "site": {"kdf_iterations": 100_000},
        "endpoint": {"public_url": f"http://127.0.0.1:{port}/"},
    }
    config = config_from_dict(data, base_dir=folder, env={})
    open_database(config.database.url)
    try:
        migrate()
        import_document(page_school(_link_homework(port)), "school.json", MarkRules())
        logins = logins_for_everyone(config)
        if consent:
            login = logins[MOTHER]["login"]
            paper.register_consent(config, login=login, decision="granted", paper=True)
            paper.register_ack(config, login=login, paper=True, date="2026-09-15")
        build.build_site(build_options(config, today=TODAY))
    finally:
        close_database()
    return config, logins


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, dict], int]]:
    port = free_port()
    config, logins = _school(tmp_path_factory.mktemp("school"), port, consent=True)
    with waitress_server(create_app(config), port=port):
        yield logins, port


def _context_page(browser: Browser, viewport: dict[str, int]) -> Iterator[Page]:
    # A phone at school: the school's time zone, where a paper act's day begins.
    context = browser.new_context(viewport=viewport, locale="ru-RU", timezone_id=SCHOOL_ZONE)
    context.set_default_timeout(30_000)
    yield context.new_page()
    context.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    yield from _context_page(browser, VIEWPORT)


def _log_in(page: Page, port: int, row: dict[str, str]) -> None:
    log_in(page, f"http://127.0.0.1:{port}/", row)


def _envelope_of(html: str) -> str:
    found = re.search(r'<script type="application/json" id="otm-envelope">(.*?)</script>', html)
    assert found is not None, "a page carries its envelope"
    return found.group(1)


def _top(page: Page, selector: str) -> float:
    box = page.locator(selector).first.bounding_box()
    assert box is not None, selector
    return float(box["y"])


def test_the_week_at_a_glance_and_the_acknowledgement_come_first(served: tuple, page: Page) -> None:
    logins, port = served
    _log_in(page, port, logins[MOTHER])
    glance, ack, child = _top(page, ".glance"), _top(page, "#otm-ack"), _top(page, ".child")
    assert glance < ack < child
    assert ack < 3 * VIEWPORT["height"]  # not 15 phone screens down
    assert page.is_visible('[data-otm-act="acknowledgement"]')
    first = page.locator(".glance").nth(1).inner_text()  # Алёна: the mark of 14 September
    assert "Иванова-Крылова Алёна: главное за неделю" in first and "оценка 4-" in first
    assert "перенесён на 18 сентября, 2-й урок" in first
    # The state travels: an acknowledgement on paper is built into the page, with its week.
    last = page.locator("[data-otm-ack-last]").inner_text()
    assert "Последнее подтверждение: 15 сентября 2026" in last and "(на бумаге)" in last
    # The week: each lesson carries its homework, mark and absence; other weeks fold away.
    week = page.locator(".child details[open]").first
    assert "Расписание: эта неделя, 14 сентября — 19 сентября" in week.inner_text()
    monday = week.locator("li.ls", has_text="Математика").first.inner_text()
    assert "Задано" in monday and "№ 12" in monday
    assert page.locator(".child details:not([open]) summary", has_text="прошлая неделя").count()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "family-page-360.png"), full_page=False)


def test_a_second_visit_marks_what_is_new(served: tuple, page: Page) -> None:
    logins, port = served
    _log_in(page, port, logins[MOTHER])
    page_id = page.locator("meta[name=otm-page-id]").get_attribute("content")
    assert page.locator(".is-new").count() == 0  # the first visit: nothing to compare with
    page.evaluate(
        "id => localStorage.setItem('otm:seen:' + id,"
        " JSON.stringify({last: '2026-09-13', prev: '2026-09-01'}))",
        page_id,
    )
    page.click("#otm-logout")
    _log_in(page, port, logins[MOTHER])
    new = page.locator(".glance li.is-new")
    assert new.count() >= 2  # the mark and the lateness of 14 September
    line = page.locator(".glance [data-otm-new]:visible").first.inner_text()
    assert line.startswith("С прошлого посещения (13 сентября) новых записей:")


@pytest.mark.parametrize("viewport", [VIEWPORT, DESKTOP], ids=["360", "1280"])
def test_no_table_cell_breaks_a_word(
    served: tuple, browser: Browser, viewport: dict[str, int]
) -> None:
    logins, port = served
    for page in _context_page(browser, viewport):
        _log_in(page, port, logins[MOTHER])
        cells = page.locator("#otm-app td, #otm-app th").count()
        assert cells > 20
        assert page.evaluate(BROKEN_WORDS) == []
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        heads = page.evaluate("getComputedStyle(document.querySelector('.grades thead')).position")
        assert heads == ("absolute" if viewport is VIEWPORT else "static")  # cards on a phone


def test_the_word_check_sees_a_word_broken_mid_letter(served: tuple, page: Page) -> None:
    """The check above, on a cell squeezed as the old page's «Со|гл|ас|ие» was."""
    logins, port = served
    _log_in(page, port, logins[MOTHER])
    squeezed = (
        '<table style="width:3em"><tr><td style="overflow-wrap:anywhere">Согласие</td></tr></table>'
    )
    page.evaluate(
        "html => document.querySelector('#otm-app').insertAdjacentHTML('beforeend', html)",
        squeezed,
    )
    assert page.evaluate(BROKEN_WORDS) == ["Согласие"]


def test_links_open_in_a_new_tab_and_back_never_locks(served: tuple, page: Page) -> None:
    logins, port = served
    _log_in(page, port, logins[MOTHER])
    links = page.locator("#otm-app a[href^='http']")
    assert links.count() >= 1
    for n in range(links.count()):
        assert links.nth(n).get_attribute("target") == "_blank"
        assert "noopener" in (links.nth(n).get_attribute("rel") or "").split()
    journal = page.url
    with page.context.expect_page() as opened:
        page.locator("#otm-app a", has_text="РЭШ").first.click()
    opened.value.wait_for_load_state()
    assert opened.value.url.startswith(f"http://127.0.0.1:{port}/index.html")
    assert page.url == journal
    assert page.evaluate("document.documentElement.dataset.otmState") == "unlocked"
    page.locator(".pg-nav a").nth(1).click()  # the second child's section
    page.go_back()
    assert page.evaluate("document.documentElement.dataset.otmState") == "unlocked"
    assert page.is_visible(".glance")


def test_consent_opens_the_diary_without_the_password(tmp_path: Path, page: Page) -> None:
    port = free_port()
    config, logins = _school(tmp_path / "school", port, consent=False)
    with waitress_server(create_app(config), port=port):
        _log_in(page, port, logins[MOTHER])
        page_file = config.site.output_dir / urlsplit(page.url).path.lstrip("/")
        consent_envelope = _envelope_of(page_file.read_text(encoding="utf-8"))
        assert "Иванова-Крылова" not in page.inner_text("#otm-app")
        page.check('[data-otm-confirm="granted"]')
        page.click('[data-otm-act="granted"]')
        reopen = page.locator("[data-otm-reopen]")
        reopen.wait_for()
        assert "пароль вводить не нужно" in page.inner_text('[data-otm-status="consent"]')
        assert "откройте её заново" not in page.inner_text("#otm-app")
        reopen.click()
        page.wait_for_selector('[data-otm-act="acknowledgement"]')
        assert "Иванова-Крылова Алёна" in page.inner_text("#otm-app")
        assert page.evaluate("document.documentElement.dataset.otmState") == "unlocked"
        assert not page.is_visible("#otm-password")
        # The offline copy follows the swap: a file saved now opens the diary, sealed.
        with page.expect_download() as waiting:
            page.click("[data-otm-save=offline]")
        saved = waiting.value.path().read_text(encoding="utf-8")
        diary_envelope = _envelope_of(page_file.read_text(encoding="utf-8"))
        assert diary_envelope != consent_envelope
        assert _envelope_of(saved) == diary_envelope
        assert "Иванова-Крылова" not in saved
        # «Выйти» still locks: the key lived in this tab only.
        page.click("#otm-logout")
        page.wait_for_selector("#otm-password", state="visible")
