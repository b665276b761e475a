"""The real thing: the builder's site for the small school, served by `otmetka serve`'s app
under waitress, opened in chromium at 127.0.0.1 (WebCrypto), at a LAN host name (no
WebCrypto: the vendored fallback), and from file://."""

from __future__ import annotations

import datetime as dt
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
from tests.support.acts_support import logins_for_everyone
from tests.support.page_factories import page_school
from tests.support.servers import waitress_server

from .conftest import ARTIFACTS, LAN_HOST, VIEWPORT

TODAY = dt.date(2026, 9, 16)


def _build_school(folder: Path) -> tuple[Config, dict[str, dict[str, str]]]:
    config = config_from_dict({"site": {"kdf_iterations": 100_000}}, base_dir=folder, env={})
    open_database(config.database.url)
    try:
        migrate()
        import_document(page_school(), "school.json", MarkRules())
        logins = logins_for_everyone(config)
        # Her page shows the children only once she has consented (on paper here).
        mother = logins["Иванова Мария"]["login"]
        paper.register_consent(config, login=mother, decision="granted", paper=True)
        build.build_site(build_options(config, today=TODAY))
    finally:
        close_database()
    return config, logins


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Config, dict, int]]:
    config, logins = _build_school(tmp_path_factory.mktemp("school"))
    with waitress_server(create_app(config)) as port:
        yield config, logins, port


def _base(where: str, config: Config, port: int) -> str:
    if where == "lan":
        return f"http://{LAN_HOST}:{port}/"
    if where == "file":
        return config.site.output_dir.as_uri() + "/"
    return f"http://127.0.0.1:{port}/"


def _log_in(page: Page, base: str, row: dict[str, str], password: str | None = None) -> None:
    page.goto(base + "index.html")
    page.wait_for_selector("#otm-login-form", state="visible")
    page.fill("#otm-login", row["login"])
    page.fill("#otm-password", password or row["password"].lower().replace("-", " "))
    page.click("#otm-submit")


@pytest.mark.parametrize(
    ("where", "expected_path"), [("local", "webcrypto"), ("lan", "noble"), ("file", "webcrypto")]
)
def test_guardian_opens_both_children(
    where: str, expected_path: str, built: tuple, browser: Browser, lan_browser: Browser
) -> None:
    config, logins, port = built
    chromium = lan_browser if where == "lan" else browser
    context = chromium.new_context(viewport=VIEWPORT, locale="ru-RU")
    context.set_default_timeout(30_000)
    page = context.new_page()
    try:
        _log_in(page, _base(where, config, port), logins["Иванова Мария"], "WRONG-0000-0000-0000")
        page.wait_for_function("() => document.getElementById('otm-error').textContent")
        assert "Неверный пароль" in page.inner_text("#otm-error")
        _log_in(page, _base(where, config, port), logins["Иванова Мария"])
        page.wait_for_selector("html[data-otm-state=unlocked]")
        assert page.evaluate("document.documentElement.dataset.cryptoPath") == expected_path
        text = page.inner_text("#otm-app")
        assert "Иванова-Крылова" in text and "Иванов Артём" in text.replace("\n", " ")
        assert "4-" in text and "Математика" in text
        assert page.locator("#otm-app strong", has_text="№ 12").count() >= 1
        box = page.locator("#otm-logout").bounding_box()
        assert box is not None and box["y"] >= 0, "«Выйти» must be in view after unlocking"
        # static/save.js offers the encrypted copy wherever the page opened, WebCrypto or not
        offer = page.locator("#otm-app header.pg .otm-offline button[data-otm-save=offline]")
        assert offer.count() == 1
        if where == "lan":
            assert page.evaluate("window.isSecureContext") is False
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "guardian-page-360.png"), full_page=False)
    finally:
        context.close()
