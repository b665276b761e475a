"""The staff pages as a class teacher and a deputy head use them, in Debian's chromium at
360 px, served by the daemon's own loop (as `otmetka run` and `otmetka demo` serve): a
parent's consent shows on both pages within a minute with no manual build, every staff
page says when its data was read in the reader's time, the «не ознакомлены» filter and the
keyboard reach the tables, and axe-core (vendored for the tests only) finds nothing serious
or moderate on the staff pages and the family page."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from otmetka.daemon.acts import paper
from otmetka.daemon.core import settings
from otmetka.daemon.core.config import Config, config_from_dict
from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.core.progress import Reporter
from otmetka.daemon.exchange.importer import import_document
from otmetka.daemon.runner import scheduler
from otmetka.daemon.runtime import build, open_project
from tests.support.acts_support import logins_for_everyone
from tests.support.analytics_factories import analytics_school
from tests.support.servers import free_port

from .conftest import VIEWPORT, log_in

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
QUIET = Reporter(quiet=True)
TEACHER, DEPUTY = "Дмитриева Дарья Сергеевна", "Завучева Зоя"
PARENT, STUDENT = "Алексеева Алла", "Алексеев Антон"
REFRESH_S = 5


@dataclass
class Served:
    config: Config
    logins: dict[str, dict[str, str]]
    port: int


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The hand-made class built for today, Алла's consent and acknowledgement on paper,
    served by the daemon's loop with the page refresh every REFRESH_S seconds."""
    sections = {
        "site": {"kdf_iterations": 100_000},
        "endpoint": {"port": free_port()},
        "schedule": {"staff_refresh_seconds": REFRESH_S},
    }
    folder = tmp_path_factory.mktemp("school")
    config = config_from_dict(sections, base_dir=folder, env={})
    daemon = scheduler.Daemon(config, watch=False, pages_only=True)
    daemon.start()
    loop = threading.Thread(target=daemon.run_forever, name="daemon-loop", daemon=True)
    try:
        logins = _school(config)
        loop.start()
        yield Served(config, logins, config.endpoint.port)
    finally:
        daemon.request_stop()
        if loop.is_alive():
            loop.join(timeout=30)
        daemon.close()


def _school(config: Config) -> dict[str, dict[str, str]]:
    open_project(config)
    import_document(analytics_school(), "school.json", MarkRules())
    logins = logins_for_everyone(config)
    alla = logins[PARENT]["login"]
    paper.register_consent(config, login=alla, decision="granted", paper=True)
    paper.register_ack(config, login=alla, paper=True, date=settings.today_in(config).isoformat())
    build(config, QUIET, full=True)
    return logins


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(
        viewport=VIEWPORT, locale="ru-RU", timezone_id="Asia/Yekaterinburg"
    )
    context.set_default_timeout(30_000)
    yield context.new_page()
    context.close()


def _log_in(page: Page, served: Served, name: str) -> None:
    row = served.logins[name]
    log_in(page, f"http://127.0.0.1:{served.port}/", row)


def _app_text(page: Page) -> str:
    return page.locator("#otm-app").inner_text()


def test_a_consent_reaches_the_class_teacher_and_the_deputy_within_a_minute(
    served: Served, page: Page
) -> None:
    _log_in(page, served, TEACHER)
    assert "согласие дали 1" in _app_text(page)
    _log_in(page, served, DEPUTY)
    row = page.locator("#otm-school table").first.locator("tbody tr", has_text="5А")
    assert "1 из 3 (33,3 %)" in row.inner_text().split("\t")[-1]
    vera = served.logins["Васильева Вера"]["login"]
    given = time.monotonic()
    paper.register_consent(served.config, login=vera, decision="granted", paper=True)
    for name, wanted in ((TEACHER, "согласие дали 2"), (DEPUTY, "2 из 3 (66,7 %)")):
        while True:
            _log_in(page, served, name)
            if wanted in _app_text(page):
                break
            assert time.monotonic() - given < 60, f"{name}'s page still lacks «{wanted}»"
            page.wait_for_timeout(1000)
    assert time.monotonic() - given < 60


def test_every_staff_page_says_when_its_data_was_read_in_the_reader_s_time(
    served: Served, page: Page
) -> None:
    for name in (TEACHER, DEPUTY):
        _log_in(page, served, name)
        stamp = page.locator("p.otm-asof time").first
        moment = stamp.get_attribute("datetime")
        assert moment is not None and moment.endswith("Z")
        shown = stamp.inner_text()
        assert "UTC" not in shown  # staff.js wrote it in the reader's time: UTC+5 here
        local_hour = (int(moment[11:13]) + 5) % 24
        assert shown.endswith(f", {local_hour:02d}:{moment[14:16]}"), shown


def test_the_filter_leaves_those_who_have_not_acknowledged(served: Served, page: Page) -> None:
    _log_in(page, served, TEACHER)
    table = page.locator("table.ctl")
    alla = table.locator("tbody tr", has_text=PARENT)
    assert alla.is_visible()
    page.get_by_label("Только не ознакомленные").check()
    assert not alla.is_visible()
    assert table.locator("tbody tr", has_text="Борисов Борис").is_visible()
    page.get_by_label("Только не ознакомленные").uncheck()
    assert alla.is_visible()


def test_the_journal_scrolls_by_keyboard(served: Served, page: Page) -> None:
    _log_in(page, served, TEACHER)
    maths = page.locator("details", has=page.locator("summary h4", has_text="Математика")).first
    maths.locator("summary").click()
    box = page.get_by_role("region", name="Журнал: Математика")
    assert box.evaluate("el => el.scrollWidth > el.clientWidth")  # wider than a phone
    box.focus()
    assert box.evaluate("el => document.activeElement === el")
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    box.evaluate(  # arrow keys scroll smoothly: wait for the box to move
        "el => new Promise((done, fail) => { const t0 = Date.now(); (function look() {"
        " if (el.scrollLeft > 0) done(); else if (Date.now() - t0 > 5000) fail('not scrolled');"
        " else requestAnimationFrame(look); })(); })"
    )
    assert box.evaluate("el => el.scrollLeft") > 0


def test_a_class_name_on_the_deputy_s_page_opens_the_class(served: Served, page: Page) -> None:
    _log_in(page, served, DEPUTY)
    page.locator("#otm-school table").first.get_by_role("link", name="5А").click()
    details = page.locator("details.cls", has=page.locator("summary h3", has_text="5А"))
    assert details.evaluate("el => el.open")
    assert details.get_by_role("table").first.is_visible()


def _axe(page: Page, exclude: tuple[str, ...] = ()) -> list[dict[str, object]]:
    page.evaluate(AXE.read_text(encoding="utf-8"))  # devtools evaluation: the CSP stays on
    found = page.evaluate(
        """async (exclude) => {
          document.querySelectorAll('details').forEach((d) => { d.open = true; });
          const context = {include: [document], exclude: exclude.map((s) => [s])};
          const result = await axe.run(context, {resultTypes: ['violations']});
          return result.violations.map((v) => ({
            id: v.id, impact: v.impact,
            nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')),
          }));
        }""",
        list(exclude),
    )
    return [v for v in found if v["impact"] in ("critical", "serious", "moderate")]


@pytest.mark.parametrize("name", [TEACHER, DEPUTY, PARENT, STUDENT])
def test_axe_finds_nothing_serious_or_moderate(served: Served, page: Page, name: str) -> None:
    _log_in(page, served, name)
    found = _axe(page)
    assert found == [], json.dumps(found, ensure_ascii=False, indent=1)


def test_axe_finds_nothing_in_the_unlocked_page_s_bar(served: Served, page: Page) -> None:
    _log_in(page, served, STUDENT)
    assert _axe(page) == []
