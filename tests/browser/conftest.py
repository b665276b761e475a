"""Fixtures for the browser tests: a sample encrypted site, a static HTTP server, Chromium.

Chromium is Debian's /usr/bin/chromium driven by Playwright; no browser is downloaded.
Two browsers are launched: a plain one, and one that resolves school.lan to 127.0.0.1,
since http://school.lan/ is not a secure context and has no WebCrypto, like a school LAN.
"""

from __future__ import annotations

import datetime as dt
import functools
import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from otmetka.daemon.core.config import Config, config_from_dict
from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.core.settings import build_options
from otmetka.daemon.exchange.importer import import_document
from otmetka.db import close_database, migrate, open_database
from otmetka.site_builder import build, crypto
from otmetka.site_builder.shell import render_login_page, render_shell
from tests.support import paths
from tests.support.acts_support import logins_for_everyone
from tests.support.extract_support import print_class
from tests.support.page_factories import page_school
from tests.support.servers import CHROMIUM_ARGS, wait_until_listening

CHROMIUM = Path("/usr/bin/chromium")
LAN_HOST = "school.lan"
VIEWPORT = {"width": 360, "height": 740}
PUBLIC_SALT = "test-school-public-salt"
FAST_ITERATIONS = 2000
REMEMBER_DAYS = 30
ARTIFACTS = paths.ARTIFACTS

SAMPLE_FRAGMENT = """<section class="grades"><h2>Оценки</h2>
<table><thead><tr><th>Предмет</th><th>Оценки</th><th>Средний</th></tr></thead><tbody>
<tr><td>Математика</td><td>5 4- 5</td><td>4,67</td></tr>
<tr><td>Русский язык</td><td>4 4 зачёт</td><td>4,00</td></tr>
</tbody></table></section>
<section class="homework"><h2>Домашнее задание</h2>
<p>Выучить стихотворение «Зимнее утро», № 214–216 по алгебре.</p></section>
<script type="text/otm-inert">{"token": "not-run"}</script>"""


@dataclass(frozen=True)
class Account:
    login: str
    password: str
    page_id: str
    iterations: int


@dataclass
class SampleSite:
    root: Path
    accounts: dict[str, Account] = field(default_factory=dict)

    def page_path(self, name: str) -> str:
        return f"p/{self.accounts[name].page_id}.html"


def write_page(
    site: SampleSite, name: str, login: str, password: str, iterations: int, **shell: Any
) -> Account:
    """Encrypt ``shell.pop('fragment', SAMPLE_FRAGMENT)`` for one account into p/<id>.html."""
    fragment: str = shell.pop("fragment", SAMPLE_FRAGMENT)
    page_id = crypto.page_id_for_login(login, PUBLIC_SALT)
    salt = crypto.new_salt()
    key = crypto.derive_key(password, salt, iterations)
    envelope = crypto.encrypt_page(fragment.encode(), key, salt, page_id, iterations)
    html = render_shell(
        envelope, page_id, title="Дневник школы №42", remember_days=REMEMBER_DAYS, **shell
    )
    (site.root / "p" / f"{page_id}.html").write_bytes(html)
    account = Account(login, password, page_id, iterations)
    site.accounts[name] = account
    return account


HOOK_SCRIPT = """
window.OtmPage = {
  init: function (root, info) {
    root.setAttribute('data-hooked', info.pageId);
    window.otmInitCount = (window.otmInitCount || 0) + 1;
  },
  destroy: function (root) { window.otmDestroyed = true; }
};
"""
HOSTILE_FRAGMENT = (
    SAMPLE_FRAGMENT + '<script>window.pwned = "script";</script>'
    '<img src="x.png" onerror="window.pwned = \'onerror\'" alt="">'
    '<img src="https://example.invalid/track.png" alt="">'
)


def build_sample_site(root: Path) -> SampleSite:
    """index.html and a few pages: fast KDF, the default KDF, and a page with a page hook."""
    site = SampleSite(root)
    (root / "p").mkdir(parents=True)
    (root / "index.html").write_text(
        render_login_page(PUBLIC_SALT, title="Дневник школы №42"), encoding="utf-8"
    )
    write_page(site, "main", "k7mp2x4q", "K7MP-2X4Q-ABCD-EF23", FAST_ITERATIONS)
    write_page(site, "slow", "h3r5t7v9", "H3R5-T7V9-WXYZ-2345", crypto.DEFAULT_ITERATIONS)
    write_page(
        site,
        "hooked",
        "zz99aa88",
        "ZZ99-AA88-BB77-CC66",
        FAST_ITERATIONS,
        fragment=HOSTILE_FRAGMENT,
        scripts=[HOOK_SCRIPT],
    )
    return site


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> SampleSite:
    return build_sample_site(tmp_path_factory.mktemp("site"))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def http_port(site: SampleSite) -> Iterator[int]:
    """Serves the sample site on 127.0.0.1 (any port) for the whole session."""
    handler = functools.partial(_QuietHandler, directory=str(site.root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="site-server", daemon=True)
    thread.start()
    port = int(server.server_address[1])
    wait_until_listening(port)
    try:
        yield port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="session")
def playwright_session() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is not installed: run `make test`, which installs it")
    with sync_playwright() as pw:
        yield pw


def _launch(pw: Playwright, *extra: str) -> Browser:
    return pw.chromium.launch(executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, *extra])


@pytest.fixture(scope="session")
def browser(playwright_session: Playwright) -> Iterator[Browser]:
    chromium = _launch(playwright_session)
    yield chromium
    chromium.close()


@pytest.fixture(scope="session")
def lan_browser(playwright_session: Playwright) -> Iterator[Browser]:
    chromium = _launch(playwright_session, f"--host-resolver-rules=MAP {LAN_HOST} 127.0.0.1")
    yield chromium
    chromium.close()


@dataclass(frozen=True)
class Location:
    """Where the site is opened from, and which crypto path must run there."""

    name: str
    base_url: str
    browser: Browser
    crypto_path: str


def make_location(
    name: str, site: SampleSite, port: int, browser: Browser, lan_browser: Browser
) -> Location:
    if name == "local":
        return Location(name, f"http://127.0.0.1:{port}/", browser, "webcrypto")
    if name == "lan":
        return Location(name, f"http://{LAN_HOST}:{port}/", lan_browser, "noble")
    # Chromium treats file:// as a secure context, so WebCrypto is there.
    return Location(name, site.root.as_uri() + "/", browser, "webcrypto")


@pytest.fixture(params=["local", "lan", "file"])
def location(
    request: pytest.FixtureRequest,
    site: SampleSite,
    http_port: int,
    browser: Browser,
    lan_browser: Browser,
) -> Location:
    return make_location(request.param, site, http_port, browser, lan_browser)


@pytest.fixture
def context(location: Location) -> Iterator[BrowserContext]:
    ctx = location.browser.new_context(viewport=VIEWPORT, locale="ru-RU")
    ctx.set_default_timeout(15_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def log_in(page: Page, base: str, row: dict[str, str]) -> None:
    """Log in on the site's login page at `base` (ending in "/") as a parent would type it,
    and wait for the unlocked page."""
    page.goto(base + "index.html")
    page.wait_for_selector("#otm-login-form", state="visible")
    page.fill("#otm-login", row["login"])
    page.fill("#otm-password", row["password"])
    page.click("#otm-submit")
    page.wait_for_selector("html[data-otm-state=unlocked]")


PRINTED_ON = dt.date(2026, 9, 16)  # the page school's week


def printed_site(folder: Path) -> tuple[Config, dict[str, dict[str, str]], Path]:
    """The page school built with the class's extracts printed (so the class teacher's page
    links a file): the config, logins by name from the one-time list, and the extract PDF."""
    config = config_from_dict({"site": {"kdf_iterations": 100_000}}, base_dir=folder, env={})
    open_database(config.database.url)
    try:
        migrate()
        import_document(page_school(), "school.json", MarkRules())
        logins = logins_for_everyone(config)
        extracts = print_class(config, today=PRINTED_ON)
        build.build_site(build_options(config, today=PRINTED_ON))
    finally:
        close_database()
    return config, logins, extracts.files[0]
