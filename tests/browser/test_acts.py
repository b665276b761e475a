"""Acts from a real page in chromium: the page is opened from file:// and posts to the
endpoint (waitress on loopback) named in its data. With the endpoint down an act waits on
the phone («ожидает связи») and arrives, once, when the endpoint is back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route

from otmetka.daemon.acts import paper
from otmetka.daemon.core.config import Config
from otmetka.daemon.endpoint.app import create_app
from otmetka.db import close_database
from tests.support.acts_support import MOTHER, School, build_school, make_config, rows, serve
from tests.support.servers import free_port

from .conftest import VIEWPORT


@pytest.fixture
def api_port() -> int:
    return free_port()  # nothing listens here until a test starts the endpoint


@pytest.fixture
def school(project_dir: Path, api_port: int) -> Iterator[School]:
    config = make_config(project_dir, endpoint={"public_url": f"http://127.0.0.1:{api_port}/"})
    built = build_school(config)
    yield built
    close_database()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport=VIEWPORT, locale="ru-RU")
    ctx.set_default_timeout(30_000)
    yield ctx
    ctx.close()


def _open(page: Page, config: Config, row: dict[str, str]) -> None:
    page.goto(config.site.output_dir.as_uri() + "/index.html")
    page.wait_for_selector("#otm-login-form", state="visible")
    page.fill("#otm-login", row["login"])
    page.fill("#otm-password", row["password"])
    page.click("#otm-submit")
    page.wait_for_selector("html[data-otm-state=unlocked]")


def _status(page: Page, name: str, state: str) -> str:
    locator = page.locator(f'[data-otm-status="{name}"][data-state="{state}"]')
    locator.wait_for()
    return locator.inner_text()


def _retry_now(context: BrowserContext) -> None:
    """What a phone sees when the network comes back: the 'online' event."""
    context.set_offline(True)
    context.set_offline(False)


def test_acknowledgement_waits_offline_and_arrives_once(
    school: School, api_port: int, context: BrowserContext
) -> None:
    config = school.config
    paper.register_consent(config, login=school.login(MOTHER), decision="granted", paper=True)
    page = context.new_page()
    _open(page, config, school.logins[MOTHER])
    page.click('[data-otm-act="acknowledgement"]')
    assert "ожидает связи" in _status(page, "acknowledgement", "pending")
    assert "ожидает связи" in page.inner_text("[data-otm-queue]")
    assert rows("acknowledgement") == []
    with serve(create_app(config), port=api_port):
        _retry_now(context)
        assert "отправлено" in _status(page, "acknowledgement", "sent")
        assert page.evaluate("window.OtmPage.pending()") == 0
        _open(page, config, school.logins[MOTHER])  # on load: nothing left to send again
        assert "отправлено" in _status(page, "acknowledgement", "sent")
    (event,) = rows("acknowledgement")
    assert event.guardian_id == "g-1" and event.channel == "electronic"
    data = page.evaluate(
        "JSON.parse(localStorage.getItem('otm:done:' + "
        "document.querySelector('meta[name=otm-page-id]').content))"
    )
    assert data["acknowledgement"]["event_id"] == event.event_id


def test_an_answer_lost_on_the_way_is_sent_again_with_the_same_id(
    school: School, api_port: int, context: BrowserContext
) -> None:
    config = school.config
    paper.register_consent(config, login=school.login(MOTHER), decision="granted", paper=True)
    page = context.new_page()
    api = f"http://127.0.0.1:{api_port}/api/v1/acknowledgements"
    delivered: list[int] = []

    def lose_the_answer(route: Route) -> None:
        delivered.append(route.fetch().status)  # the server records the act...
        route.abort()  # ...and the phone never hears back

    with serve(create_app(config), port=api_port):
        page.route(api, lose_the_answer)
        _open(page, config, school.logins[MOTHER])
        page.click('[data-otm-act="acknowledgement"]')
        _status(page, "acknowledgement", "pending")
        assert delivered == [201] and len(rows("acknowledgement")) == 1
        page.unroute(api)
        _retry_now(context)
        assert "отправлено" in _status(page, "acknowledgement", "sent")
    assert len(rows("acknowledgement")) == 1


def test_consent_from_the_page_opens_the_diary(
    school: School, api_port: int, context: BrowserContext
) -> None:
    config = school.config
    page = context.new_page()
    with serve(create_app(config), port=api_port):
        _open(page, config, school.logins[MOTHER])
        text = page.inner_text("#otm-app")
        assert "Согласие на обработку персональных данных" in text
        assert "Иванова-Крылова" not in text and "Математика" not in text
        assert page.is_disabled('[data-otm-act="granted"]')
        page.check('[data-otm-confirm="granted"]')
        page.click('[data-otm-act="granted"]')
        assert "отправлено" in _status(page, "consent", "sent")
        page.reload()
        page.wait_for_selector("html[data-otm-state=locked]")
        _open(page, config, school.logins[MOTHER])
        text = page.inner_text("#otm-app")
        assert "Иванова-Крылова Алёна" in text.replace("\n", " ")
        assert page.is_visible('[data-otm-act="acknowledgement"]')
    (event,) = rows("consent")
    assert event.guardian_id == "g-1"


def test_breach_report_from_the_page_blocks_it(
    school: School, api_port: int, context: BrowserContext
) -> None:
    config = school.config
    row = school.logins["Петров Иван"]
    page = context.new_page()
    with serve(create_app(config), port=api_port):
        _open(page, config, row)
        page.click('[data-otm-block="breach"] summary')
        page.fill('[data-otm-note="breach"]', "листок с паролем потерялся")
        page.check('[data-otm-confirm="breach"]')
        page.click('[data-otm-act="breach"]')
        notice = _status(page, "breach", "sent")
        assert "заблокирован" in notice
        assert "Петров" not in page.inner_text("#otm-app")  # the data left the screen
    (event,) = rows("breach_report")
    assert "потерялся" in event.payload
    page.goto(config.site.output_dir.as_uri() + "/index.html")
    _log_in_blocked(page, row)
    assert "Доступ заблокирован" in page.inner_text("body")


def _log_in_blocked(page: Page, row: dict[str, str]) -> None:
    page.wait_for_selector("#otm-login-form", state="visible")
    page.fill("#otm-login", row["login"])
    page.fill("#otm-password", row["password"])
    page.click("#otm-submit")
    page.wait_for_selector("#otm-blocked")
