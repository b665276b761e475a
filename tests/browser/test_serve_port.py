"""A demo site served on a port it was not built for: the page was built with the default
loopback address (port 8080), is served by `otmetka serve --port N`, and its act still
lands, because a page served over http(s) from a loopback-addressed site posts to the
server that served it. Debian's chromium through Playwright, waitress on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from otmetka.daemon.acts import paper
from otmetka.daemon.core import settings
from otmetka.daemon.endpoint.app import create_app
from otmetka.db import close_database
from tests.support.acts_support import MOTHER, School, build_school, make_config, rows, serve
from tests.support.servers import free_port

from .conftest import log_in

pytestmark = pytest.mark.browser

BUILT_FOR = 8080  # endpoint.port, and so the port of the default loopback address


@pytest.fixture
def school(project_dir: Path) -> Iterator[School]:
    built = build_school(make_config(project_dir, endpoint={"port": BUILT_FOR}))
    yield built
    close_database()


def _log_in(page: Page, base: str, row: dict[str, str]) -> None:
    log_in(page, base, row)


def test_an_act_from_a_page_served_on_another_port_lands(school: School, browser: Browser) -> None:
    config = school.config
    assert settings.api_url(config) == f"http://127.0.0.1:{BUILT_FOR}/api/v1/"
    assert school.page_data(MOTHER)["api"] == settings.api_url(config)
    paper.register_consent(config, login=school.login(MOTHER), decision="granted", paper=True)
    port = free_port()
    assert port != BUILT_FOR
    posted: list[str] = []
    context = browser.new_context(viewport={"width": 360, "height": 740}, locale="ru-RU")
    try:
        page = context.new_page()
        page.on("request", lambda r: posted.append(r.url) if r.method == "POST" else None)
        with serve(create_app(config), port=port):
            _log_in(page, f"http://127.0.0.1:{port}/", school.logins[MOTHER])
            page.click('[data-otm-act="acknowledgement"]')
            status = '[data-otm-status="acknowledgement"][data-state="sent"]'
            assert "отправлено" in page.locator(status).inner_text()
    finally:
        context.close()
    assert posted == [f"http://127.0.0.1:{port}/api/v1/acknowledgements"]
    (event,) = rows("acknowledgement")
    assert event.guardian_id == "g-1" and event.channel == "electronic"


def test_a_site_with_its_own_address_keeps_it(project_dir: Path) -> None:
    """The loopback rule is for the default address only: a configured one is used as is,
    and a loopback one follows the port the server listens on (OTMETKA_ENDPOINT_PORT)."""
    lan = make_config(project_dir, school={"lan_url": "http://school.lan/"})
    assert settings.api_url(lan) == "http://school.lan/api/v1/"
    public = make_config(project_dir, endpoint={"public_url": "https://school.example/"})
    assert settings.api_url(public) == "https://school.example/api/v1/"
    moved = make_config(project_dir, endpoint={"port": 9123})
    assert settings.site_url(moved) == "http://127.0.0.1:9123/"
    assert settings.api_url(moved) == "http://127.0.0.1:9123/api/v1/"
