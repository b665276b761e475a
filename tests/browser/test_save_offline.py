"""«Сохранить для работы без интернета» on a decrypted page of the builder's real site, at
360 px in Debian's chromium: Chrome's own «Скачать» would save the decrypted journal, so the
page saves itself as it was served instead: the envelope still encrypted, and the same
scripts, so that the file opened from disk, with no network, unlocks with the password."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from otmetka.daemon.core.config import Config
from otmetka.daemon.core.progress import Reporter
from otmetka.daemon.endpoint.app import create_app
from tests.support.servers import waitress_server

from .conftest import VIEWPORT, log_in, printed_site

TODAY = dt.date(2026, 9, 16)
QUIET = Reporter(quiet=True)
TEACHER = "Королёва Анна Петровна"
PUPIL = "Иванова-Крылова Алёна"  # on the class teacher's page once it is decrypted
SAVE = "Сохранить для работы без интернета"
_SCRIPTS = re.compile(r"<script\b[^>]*>(.*?)</script>", re.DOTALL)
_ENVELOPE = re.compile(r'<script type="application/json" id="otm-envelope">(.*?)</script>')


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Config, dict[str, dict[str, str]], int]]:
    config, logins, _extract = printed_site(tmp_path_factory.mktemp("school"))
    with waitress_server(create_app(config)) as port:
        yield config, logins, port


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport=VIEWPORT, locale="ru-RU", accept_downloads=True)
    context.set_default_timeout(30_000)
    yield context
    context.close()


def _log_in(page: Page, port: int, row: dict[str, str]) -> Path:
    """Logs in at the site's login page; the path of the page it opened, under output/."""
    log_in(page, f"http://127.0.0.1:{port}/", row)
    path = urlsplit(page.url).path
    assert re.fullmatch(r"/p/[0-9a-f]+\.html", path), path
    return Path(path.lstrip("/"))


def _unlock(page: Page, url: str, password: str) -> None:
    page.goto(url)
    page.wait_for_selector("#otm-form", state="visible")
    page.fill("#otm-password", password)
    page.click("#otm-submit")
    page.wait_for_selector("html[data-otm-state=unlocked]")


def test_the_saved_page_is_the_encrypted_one_and_opens_offline(
    served: tuple, context: BrowserContext, browser: Browser, tmp_path: Path
) -> None:
    config, logins, port = served
    row = logins[TEACHER]
    page = context.new_page()
    served_file = config.site.output_dir / _log_in(page, port, row)
    assert PUPIL in page.inner_text("#otm-app")
    offer = page.locator("#otm-app header.pg .otm-offline")
    assert "останется зашифрованным" in offer.inner_text()
    button = offer.get_by_role("button", name=SAVE)
    box = button.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= VIEWPORT["width"]

    with page.expect_download() as waiting:
        button.click()
    download = waiting.value
    assert download.suggested_filename.endswith(".html")
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    copy = saved.read_text(encoding="utf-8")
    original = served_file.read_text(encoding="utf-8")

    envelope = _ENVELOPE.search(original)
    assert envelope is not None and envelope.group(0) in copy, "the same ciphertext"
    assert PUPIL not in copy, "the journal must not be saved in plain text"
    markup = _SCRIPTS.sub("", copy)  # the scripts' code names the bar and the button
    assert 'id="otm-bar"' not in markup and "otm-offline" not in markup
    assert 'data-otm-state="locked"' in markup and 'id="otm-lock"' in markup
    # Every inline script, in order and unchanged, so the page's CSP hashes still match.
    assert len(_SCRIPTS.findall(original)) >= 4  # bundle, unlock.js, page.js, download.js
    assert _SCRIPTS.findall(copy) == _SCRIPTS.findall(original)

    offline = browser.new_context(viewport=VIEWPORT, locale="ru-RU")
    offline.set_offline(True)
    try:
        opened = offline.new_page()
        _unlock(opened, saved.as_uri(), row["password"])
        assert PUPIL in opened.inner_text("#otm-app")
        assert opened.locator("#otm-app .otm-offline button").inner_text() == SAVE
    finally:
        offline.close()


def test_the_button_is_gone_after_logout(served: tuple, context: BrowserContext) -> None:
    _config, logins, port = served
    page = context.new_page()
    _log_in(page, port, logins[TEACHER])
    page.click("#otm-logout")
    page.wait_for_selector("html[data-otm-state=locked]")
    assert page.locator(".otm-offline").count() == 0
