"""The unlock experience in a real Chromium: http://127.0.0.1 (WebCrypto), http://school.lan
(not a secure context: the vendored bundle must run, its WebAssembly PBKDF2 first) and
file:// (a saved page); and the login through `otmetka serve` (one gzipped request a page)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from otmetka.daemon.core.config import config_from_dict
from otmetka.daemon.endpoint.app import create_app
from otmetka.db import close_database
from otmetka.site_builder import crypto
from tests.support import paths
from tests.support.servers import waitress_server

from .conftest import ARTIFACTS, LAN_HOST, VIEWPORT, Location, SampleSite, make_location

pytestmark = pytest.mark.browser

WRONG_PASSWORD = "Неверный пароль. Проверьте и попробуйте ещё раз."
VECTORS = json.loads((paths.VECTORS / "envelope-v1.json").read_text(encoding="utf-8"))["vectors"]

# Records whether the password form was ever shown (for "no password asked").
WATCH_FORM = """
window.__formShown = false;
document.addEventListener('DOMContentLoaded', function () {
  var form = document.getElementById('otm-form');
  if (!form) return;
  new MutationObserver(function () {
    if (!form.hidden) window.__formShown = true;
  }).observe(form, {attributes: true});
});
"""

# Takes away what engines before ~2021 lack, to prove the bundle and the fflate path.
LEGACY_ENGINE = """
delete window.BigInt;
delete DataView.prototype.setBigUint64;
delete DataView.prototype.getBigUint64;
delete Object.hasOwn;
delete window.DecompressionStream;
delete window.globalThis;
window.__missing = [typeof BigInt, typeof Object.hasOwn, typeof DataView.prototype.setBigUint64,
  typeof DecompressionStream, typeof globalThis].join(' ');
"""
# A browser without WebAssembly: PBKDF2 must fall back to noble's plain JS.
NO_WASM = "delete window.WebAssembly;"


def state(page: Page) -> str:
    return str(page.evaluate("document.documentElement.getAttribute('data-otm-state')"))


def goto(page: Page, location: Location, path: str) -> None:
    page.goto(location.base_url + path)


def wait_for_form(page: Page) -> None:
    page.wait_for_selector("#otm-form", state="visible")


def wait_unlocked(page: Page) -> None:
    page.wait_for_function(
        "() => document.documentElement.getAttribute('data-otm-state') === 'unlocked'"
    )


def submit_password(page: Page, password: str, *, remember: bool = False) -> None:
    wait_for_form(page)
    page.fill("#otm-password", password)
    if remember:
        page.check("#otm-remember")
    page.click("#otm-submit")


def stored_keys(page: Page, prefix: str, storage: str = "localStorage") -> list[str]:
    script = f"(p) => Object.keys({storage}).filter((k) => k.indexOf(p) === 0)"
    return list(page.evaluate(script, prefix))


def kdf_path(location: Location) -> str:
    """Where WebCrypto is missing, PBKDF2 runs on the bundle's WebAssembly."""
    return "webcrypto" if location.crypto_path == "webcrypto" else "wasm"


def assert_unlocked(page: Page, location: Location, kdf: str | None = None) -> None:
    wait_unlocked(page)
    app = page.locator("#otm-app")
    assert "Оценки" in app.inner_text()
    assert "Выучить стихотворение «Зимнее утро»" in app.inner_text()
    assert page.evaluate("document.documentElement.dataset.cryptoPath") == location.crypto_path
    assert page.evaluate("document.documentElement.dataset.kdfPath") == (kdf or kdf_path(location))
    assert page.locator("#otm-logout").is_visible()
    assert page.locator("#otm-password").count() == 0
    assert "?" not in page.url and "K7MP" not in page.url


# ---- the four cases, at each location --------------------------------------------------


def test_wrong_password_is_refused(page: Page, location: Location, site: SampleSite) -> None:
    goto(page, location, site.page_path("main"))
    submit_password(page, "K7MP-2X4Q-ABCD-EF24")
    page.wait_for_function(
        "(t) => document.getElementById('otm-error').textContent === t", arg=WRONG_PASSWORD
    )
    assert state(page) == "locked"
    assert page.locator("#otm-form").is_visible()
    assert page.locator("#otm-submit").is_enabled()
    assert page.locator("#otm-error").get_attribute("aria-live") == "assertive"
    page.check("#otm-show")  # «Показать пароль»
    assert page.get_attribute("#otm-password", "type") == "text"
    page.uncheck("#otm-show")
    assert "Оценки" not in page.locator("#otm-app").inner_text()
    if location.name == "lan":
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "wrong-password-360.png"))


def test_right_password_shows_content(page: Page, location: Location, site: SampleSite) -> None:
    goto(page, location, site.page_path("main"))
    # Typed the way people do: lower case, spaces instead of dashes.
    submit_password(page, " k7mp 2x4q abcd ef23")
    assert_unlocked(page, location)
    assert stored_keys(page, "otm:key:") == []  # not remembered unless asked
    # Scripts inside the decrypted content are inert.
    assert page.locator('#otm-app script[type="text/otm-inert"]').count() == 1
    if location.name == "local":
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "unlocked-360.png"), full_page=True)


def test_remember_survives_reload_and_logout_forgets(
    page: Page, location: Location, site: SampleSite
) -> None:
    page.add_init_script(WATCH_FORM)
    goto(page, location, site.page_path("main"))
    submit_password(page, "K7MP-2X4Q-ABCD-EF23", remember=True)
    assert_unlocked(page, location)
    account = site.accounts["main"]
    record = json.loads(
        page.evaluate("(k) => localStorage.getItem(k)", f"otm:key:{account.page_id}")
    )
    assert set(record) == {"v", "key", "exp"} and "K7MP" not in json.dumps(record)
    assert len(base64.b64decode(record["key"])) == 32
    assert "Вход запомнен на этом устройстве до" in page.inner_text("#otm-bar")

    page.reload()
    assert_unlocked(page, location, "remembered")
    assert page.evaluate("window.__formShown") is False  # no password asked

    page.click("#otm-logout")
    wait_for_form(page)
    assert state(page) == "locked"
    assert stored_keys(page, "otm:key:") == []
    assert page.locator("#otm-bar").count() == 0
    assert "Оценки" not in page.locator("#otm-app").inner_text()

    page.reload()
    wait_for_form(page)
    assert state(page) == "locked"


def test_login_page_opens_the_right_page(page: Page, location: Location, site: SampleSite) -> None:
    account = site.accounts["main"]
    goto(page, location, "index.html")
    page.wait_for_selector("#otm-login-form", state="visible")
    page.fill("#otm-login", " K7MP-2X4Q ")
    page.fill("#otm-password", "k7mp-2x4q-abcd-ef23")
    page.click("#otm-submit")
    page.wait_for_url(f"**/p/{account.page_id}.html")
    assert_unlocked(page, location)
    assert stored_keys(page, "otm:handoff:", "sessionStorage") == []


# ---- details, at one location each ----------------------------------------------------


@pytest.mark.parametrize("location", ["file"], indirect=True)
def test_login_with_wrong_password_lands_on_form_with_message(
    page: Page, location: Location, site: SampleSite
) -> None:
    account = site.accounts["main"]
    goto(page, location, "index.html")
    page.wait_for_selector("#otm-login-form", state="visible")
    page.fill("#otm-login", account.login)
    page.fill("#otm-password", "K7MP-2X4Q-ABCD-0000")
    page.click("#otm-submit")
    page.wait_for_url(f"**/p/{account.page_id}.html")
    wait_for_form(page)
    assert page.inner_text("#otm-error") == WRONG_PASSWORD
    assert stored_keys(page, "otm:handoff:", "sessionStorage") == []


@pytest.mark.parametrize("location", ["local"], indirect=True)
def test_expired_or_garbled_remembered_key_is_removed(
    page: Page, location: Location, site: SampleSite
) -> None:
    account = site.accounts["main"]
    goto(page, location, site.page_path("main"))
    wait_for_form(page)
    envelope = json.loads(page.inner_text("#otm-envelope"))
    salt = base64.b64decode(envelope["salt"])
    good_key = base64.b64encode(crypto.derive_key(account.password, salt, account.iterations))
    name = f"otm:key:{account.page_id}"
    for record in (
        {"v": 1, "key": good_key.decode(), "exp": 1000},  # long expired
        {"v": 1, "key": base64.b64encode(bytes(32)).decode(), "exp": 4e12},  # wrong key
        "not json",
    ):
        value = record if isinstance(record, str) else json.dumps(record)
        page.evaluate("([k, v]) => localStorage.setItem(k, v)", [name, value])
        page.reload()
        wait_for_form(page)
        assert stored_keys(page, "otm:key:") == [], record
    # And a valid one opens the page without a password.
    page.evaluate(
        "([k, key]) => localStorage.setItem(k, JSON.stringify({v: 1, key: key, "
        "exp: Date.now() + 60000}))",
        [name, good_key.decode()],
    )
    page.reload()
    assert_unlocked(page, location, "remembered")


@pytest.mark.parametrize("location", ["local", "lan"], indirect=True)
def test_default_iterations_complete(page: Page, location: Location, site: SampleSite) -> None:
    """600,000 PBKDF2 rounds finish; on the bundle's WebAssembly path (reached here through
    the login page's handoff, while the form stays hidden) the progress bar counts up."""
    account = site.accounts["slow"]
    assert account.iterations == crypto.DEFAULT_ITERATIONS
    if location.crypto_path == "noble":
        goto(page, location, "index.html")
        page.wait_for_selector("#otm-login-form", state="visible")
        page.fill("#otm-login", account.login)
        page.fill("#otm-password", account.password)
        page.click("#otm-submit")
        page.wait_for_url(f"**/p/{account.page_id}.html")
        page.wait_for_function(
            "() => { const pct = document.getElementById('otm-progress-pct');"
            " return pct !== null && /^[1-9][0-9]? %$/.test(pct.textContent); }"
        )
        assert page.locator("#otm-progress-bar").is_visible()
        assert not page.locator("#otm-form").is_visible()
    else:
        goto(page, location, site.page_path("slow"))
        submit_password(page, account.password)
    page.wait_for_function(
        "() => document.documentElement.getAttribute('data-otm-state') === 'unlocked'",
        timeout=60_000,
    )
    assert page.evaluate("document.documentElement.dataset.cryptoPath") == location.crypto_path
    assert page.evaluate("document.documentElement.dataset.kdfPath") == kdf_path(location)
    assert not page.locator("#otm-progress").is_visible()


@pytest.mark.parametrize("location", ["lan"], indirect=True)
def test_lan_is_not_a_secure_context(page: Page, location: Location, site: SampleSite) -> None:
    goto(page, location, site.page_path("main"))
    assert page.evaluate("window.isSecureContext") is False
    assert page.evaluate("typeof (window.crypto && window.crypto.subtle)") == "undefined"
    assert page.evaluate("window.OtmUnlock.hasWebCrypto()") is False
    assert page.evaluate("window.OtmUnlock.hasWasm()") is True


@pytest.mark.parametrize("location", ["local"], indirect=True)
def test_page_hook_runs_and_content_scripts_do_not(
    page: Page, location: Location, site: SampleSite
) -> None:
    failed: dict[str, str | None] = {}
    page.on("requestfailed", lambda request: failed.update({request.url: request.failure}))
    account = site.accounts["hooked"]
    goto(page, location, site.page_path("hooked"))
    submit_password(page, account.password)
    wait_unlocked(page)
    assert page.get_attribute("#otm-app", "data-hooked") == account.page_id
    assert page.evaluate("window.otmInitCount") == 1
    assert page.evaluate("typeof window.pwned") == "undefined"  # <script> and onerror
    # Images are stopped by the page's CSP before any network access (self-contained pages).
    for _ in range(100):
        if "https://example.invalid/track.png" in failed:
            break
        page.wait_for_timeout(20)
    assert failed.get("https://example.invalid/track.png") == "csp"
    page.click("#otm-logout")
    assert page.evaluate("window.otmDestroyed") is True


@pytest.mark.parametrize("location", ["local"], indirect=True)
def test_only_same_origin_requests_and_no_console_errors(
    page: Page, location: Location, site: SampleSite
) -> None:
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    goto(page, location, "index.html")
    page.wait_for_selector("#otm-login-form", state="visible")
    page.fill("#otm-login", "k7mp2x4q")
    page.fill("#otm-password", "K7MP2X4QABCDEF23")
    page.click("#otm-submit")
    assert_unlocked(page, location)
    assert requests and all(url.startswith(location.base_url) for url in requests), requests
    assert errors == []


@pytest.mark.parametrize("location", ["local"], indirect=True)
def test_print_hides_bar_and_form(page: Page, location: Location, site: SampleSite) -> None:
    goto(page, location, site.page_path("main"))
    page.emulate_media(media="print")
    assert not page.locator("#otm-lock").is_visible()
    page.emulate_media(media="screen")
    submit_password(page, "K7MP-2X4Q-ABCD-EF23")
    wait_unlocked(page)
    page.emulate_media(media="print")
    assert not page.locator("#otm-bar").is_visible()
    assert page.locator("#otm-app h2").first.is_visible()


# ---- known-answer vectors in the browser, on both crypto paths --------------------------

RUN_VECTORS = """
async ({vectors, path, inflater}) => {
  const U = window.OtmUnlock;
  const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  const bytes = (h) => new Uint8Array(h.match(/../g).map((x) => parseInt(x, 16)));
  const out = [];
  const cipher = path === 'webcrypto' ? 'webcrypto' : 'noble';  // PBKDF2 alone has a wasm path
  for (const v of vectors) {
    const salt = bytes(v.salt_hex);
    const key = await U.deriveKey(v.password, salt, v.iterations, path, null);
    const plain = await U.openEnvelope(v.envelope, bytes(v.key_hex), v.page_id, cipher, inflater);
    let wrong = null;
    try {
      await U.openEnvelope(v.envelope, bytes(v.key_hex), 'f'.repeat(32), cipher, inflater);
    } catch (e) {
      wrong = e.otmWrongKey === true;
    }
    let reference = null;
    if (path !== 'webcrypto') {
      const C = window.OtmCrypto;
      const secret = C.utf8(U.normalisePassword(v.password));
      reference = hex(C.pbkdf2(C.sha256, secret, salt, {c: v.iterations, dkLen: 32}));
    }
    out.push({
      key: hex(key), plain, wrong, reference,
      norm: U.normalisePassword(v.password),
      header: U.canonicalHeader(v.envelope),
      aad: hex(U.associatedData(v.page_id, v.envelope)),
    });
  }
  return out;
}
"""


def check_vectors(page: Page, path: str, inflater: str) -> None:
    args = {"vectors": VECTORS, "path": path, "inflater": inflater}
    results: list[dict[str, Any]] = page.evaluate(RUN_VECTORS, args)
    for vector, got in zip(VECTORS, results, strict=True):
        name = vector["name"]
        assert got["key"] == vector["key_hex"], name
        assert got["plain"] == vector["plaintext"], name
        assert got["wrong"] is True, name
        assert got["norm"] == vector["password_normalised"], name
        assert got["header"] == vector["header"], name
        assert got["aad"] == vector["aad_hex"], name
        if path != "webcrypto":
            assert got["reference"] == vector["key_hex"], name


def check_login_vectors(page: Page) -> None:
    script = """async (vectors) => Promise.all(vectors.map(async (v) => [
        window.OtmLogin.normaliseLogin(v.login),
        await window.OtmLogin.pageIdFor(v.login, v.public_salt)]))"""
    results = page.evaluate(script, VECTORS)
    expected = [[v["login_normalised"], v["page_id"]] for v in VECTORS]
    assert results == expected


@pytest.mark.parametrize(
    ("location", "path", "inflater"),
    [
        ("local", "webcrypto", "stream"),
        ("local", "noble", "fflate"),
        ("local", "wasm", "stream"),
        ("lan", "noble", "stream"),
        ("lan", "wasm", "fflate"),
        ("file", "webcrypto", "fflate"),
        ("file", "wasm", "stream"),
    ],
    indirect=["location"],
)
def test_vectors_in_browser(
    page: Page, location: Location, site: SampleSite, path: str, inflater: str
) -> None:
    goto(page, location, site.page_path("main"))
    wait_for_form(page)
    check_vectors(page, path, inflater)
    goto(page, location, "index.html")
    check_login_vectors(page)


def test_legacy_engine_without_bigint_hasown_streams(
    site: SampleSite, http_port: int, browser: Browser, lan_browser: Browser
) -> None:
    """Old Android/iOS engines: no BigInt, Object.hasOwn, globalThis, DecompressionStream."""
    location = make_location("lan", site, http_port, browser, lan_browser)
    context = lan_browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        page.add_init_script(LEGACY_ENGINE)
        goto(page, location, site.page_path("main"))
        assert page.evaluate("window.__missing") == " ".join(["undefined"] * 5)
        # compat.js filled what noble needs; the global BigInt is left alone.
        assert page.evaluate("typeof Object.hasOwn + ' ' + typeof BigInt") == "function undefined"
        assert page.evaluate("window.OtmUnlock.inflatePath()") == "fflate"
        check_vectors(page, "noble", "fflate")
        check_vectors(page, "wasm", "fflate")
        submit_password(page, "K7MP-2X4Q-ABCD-EF23")
        assert_unlocked(page, location)
        assert page.evaluate("document.documentElement.dataset.inflatePath") == "fflate"
        goto(page, location, "index.html")
        check_login_vectors(page)
    finally:
        context.close()


def test_without_webassembly_pbkdf2_runs_on_noble(
    site: SampleSite, http_port: int, browser: Browser, lan_browser: Browser
) -> None:
    location = make_location("lan", site, http_port, browser, lan_browser)
    context = lan_browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        page.add_init_script(NO_WASM)
        goto(page, location, site.page_path("main"))
        assert page.evaluate("window.OtmUnlock.hasWasm()") is False
        check_vectors(page, "noble", "stream")
        submit_password(page, "K7MP-2X4Q-ABCD-EF23")
        assert_unlocked(page, location, "noble")
    finally:
        context.close()


# ---- through `otmetka serve`: one request a page, gzipped ------------------------------


@pytest.fixture(scope="module")
def serve_port(site: SampleSite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The sample site served by the real endpoint, as `otmetka serve` does."""
    project = tmp_path_factory.mktemp("project")
    config = config_from_dict({"site": {"output_dir": str(site.root)}}, base_dir=project, env={})
    with waitress_server(create_app(config)) as port:
        yield port
    close_database()


def served(port: int, browser: Browser) -> Location:
    return Location("served", f"http://{LAN_HOST}:{port}/", browser, "noble")


def log_in(
    page: Page, location: Location, login: str, password: str, *, remember: bool = False
) -> None:
    goto(page, location, "index.html")
    page.wait_for_selector("#otm-login-form", state="visible")
    page.fill("#otm-login", login)
    page.fill("#otm-password", password)
    if remember:
        page.check("#otm-remember")
    page.click("#otm-submit")


def test_login_opens_the_page_in_one_gzipped_request(
    site: SampleSite, serve_port: int, lan_browser: Browser
) -> None:
    location = served(serve_port, lan_browser)
    account = site.accounts["main"]
    context = lan_browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        asked: list[tuple[str, str]] = []
        page.on("request", lambda r: asked.append((r.method, r.url)))
        encodings: dict[str, str | None] = {}
        page.on("response", lambda r: encodings.update({r.url: r.headers.get("content-encoding")}))
        log_in(page, location, account.login, account.password)
        page.wait_for_url(f"**/p/{account.page_id}.html")
        assert_unlocked(page, location)
        url = f"{location.base_url}p/{account.page_id}.html"
        assert [a for a in asked if a[1] == url] == [("GET", url)]  # no HEAD before it
        assert not any(method == "HEAD" for method, _url in asked)
        assert encodings[url] == "gzip"
        assert encodings[f"{location.base_url}index.html"] == "gzip"
    finally:
        context.close()


def test_unknown_login_comes_back_to_the_form_with_what_was_typed(
    serve_port: int, lan_browser: Browser
) -> None:
    location = served(serve_port, lan_browser)
    context = lan_browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        log_in(page, location, "nosuch22", "AAAA-BBBB-CCCC-DDDD", remember=True)
        page.wait_for_function("() => document.getElementById('otm-error').textContent !== ''")
        assert "не найдена" in page.inner_text("#otm-error")
        assert page.url.endswith("/index.html")  # the fragment is gone from the address
        assert page.input_value("#otm-login") == "nosuch22"
        assert page.input_value("#otm-password") == "AAAA-BBBB-CCCC-DDDD"
        assert page.is_checked("#otm-remember")
        assert stored_keys(page, "otm:handoff:", "sessionStorage") == []
        page.reload()  # nothing left to put back
        page.wait_for_selector("#otm-login-form", state="visible")
        assert page.inner_text("#otm-error") == ""
    finally:
        context.close()
