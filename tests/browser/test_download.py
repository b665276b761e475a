"""The class teacher downloads the class's extracts from their encrypted page: the builder's
real site with a printed class, served by the app under waitress, in Debian's chromium over
WebCrypto (127.0.0.1) and the vendored fallback (a LAN host name). Also: the login page
fills in the login from a slip's QR code address, and a saved copy opened from file://
says why it cannot download."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page
from pypdf import PdfReader

from otmetka.daemon.core.config import Config
from otmetka.daemon.core.progress import Reporter
from otmetka.daemon.endpoint.app import create_app
from tests.support.servers import waitress_server

from .conftest import LAN_HOST, VIEWPORT, log_in, printed_site

TODAY = dt.date(2026, 9, 16)
QUIET = Reporter(quiet=True)
TEACHER = "Королёва Анна Петровна"


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Config, dict[str, dict[str, str]], Path, int]]:
    config, logins, printed = printed_site(tmp_path_factory.mktemp("school"))
    with waitress_server(create_app(config)) as port:
        yield config, logins, printed, port


def _context(chromium: Browser) -> BrowserContext:
    context = chromium.new_context(viewport=VIEWPORT, locale="ru-RU", accept_downloads=True)
    context.set_default_timeout(30_000)
    return context


def _log_in(page: Page, base: str, row: dict[str, str]) -> None:
    log_in(page, base, row)


@pytest.mark.parametrize(("where", "crypto_path"), [("local", "webcrypto"), ("lan", "noble")])
def test_class_teacher_downloads_the_class_extracts(
    where: str, crypto_path: str, served: tuple, browser: Browser, lan_browser: Browser
) -> None:
    _config, logins, printed, port = served
    host = LAN_HOST if where == "lan" else "127.0.0.1"
    context = _context(lan_browser if where == "lan" else browser)
    page = context.new_page()
    try:
        _log_in(page, f"http://{host}:{port}/", logins[TEACHER])
        assert page.evaluate("document.documentElement.dataset.cryptoPath") == crypto_path
        link = page.locator("#otm-app a[data-otm-file]")
        assert link.inner_text() == "Скачать выписки класса (PDF)"
        with page.expect_download() as waiting:
            link.click()
        download = waiting.value
        assert download.suggested_filename.startswith("Выписки 7Б ")
        data = Path(download.path()).read_bytes()
        assert data.startswith(b"%PDF") and data == printed.read_bytes()
        text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages)
        assert "Иванова-Крылова Алёна" in text and "С информацией ознакомлен(а)" in text
        status = page.locator(".otm-file-status")
        assert status.get_attribute("data-state") == "done"
    finally:
        context.close()


def test_after_logout_the_file_cannot_be_opened(served: tuple, browser: Browser) -> None:
    _config, logins, _printed, port = served
    context = _context(browser)
    page = context.new_page()
    try:
        _log_in(page, f"http://127.0.0.1:{port}/", logins[TEACHER])
        href = page.get_attribute("#otm-app a[data-otm-file]", "href")
        file_id = page.get_attribute("#otm-app a[data-otm-file]", "data-otm-file")
        page.click("#otm-logout")
        page.wait_for_selector("html[data-otm-state=locked]")
        error = page.evaluate(
            """([href, id]) => fetch(href).then(r => r.json())
                 .then(env => OtmUnlock.openFile(env, id)).then(() => 'opened', e => e.message)""",
            [f"http://127.0.0.1:{port}/f/{href.rsplit('/', 1)[1]}", file_id],
        )
        assert error == "the page is locked"
    finally:
        context.close()


def test_a_saved_page_says_why_it_cannot_download(served: tuple, browser: Browser) -> None:
    config, logins, _printed, _port = served
    context = _context(browser)
    page = context.new_page()
    try:
        _log_in(page, config.site.output_dir.as_uri() + "/", logins[TEACHER])
        page.click("#otm-app a[data-otm-file]")
        status = page.locator(".otm-file-status[data-state=failed]")
        assert "с сайта школы" in status.inner_text()
    finally:
        context.close()


def test_login_page_fills_in_the_login_from_a_slip(served: tuple, browser: Browser) -> None:
    _config, logins, _printed, port = served
    row = logins[TEACHER]
    base = f"http://127.0.0.1:{port}/index.html"
    context = _context(browser)
    page = context.new_page()
    try:
        page.goto(f"{base}#login={row['login']}")
        page.wait_for_selector("#otm-login-form", state="visible")
        assert page.input_value("#otm-login") == row["login"]
        assert page.evaluate("document.activeElement.id") == "otm-password"
        assert page.evaluate("location.hash") == ""  # gone from the address bar
        page.goto("about:blank")
        page.goto(f"{base}#login={row['login']}&password={row['password']}")  # --qr-password
        page.wait_for_selector("#otm-login-form", state="visible")
        assert page.input_value("#otm-password") == row["password"]
        assert page.evaluate("document.activeElement.id") == "otm-submit"
        assert "password" not in page.evaluate("location.href")
        page.click("#otm-submit")
        page.wait_for_selector("html[data-otm-state=unlocked]")
        assert "Класс 7Б" in page.inner_text("#otm-app")
    finally:
        context.close()
