"""Unlock benchmark for an old phone on the school's network: a guardian page of the demo
school served by `otmetka serve`, opened in chromium with the CPU slowed 6 times and the
line at 400 kbit/s with 400 ms latency (CDP), from login submit to the page shown; on
WebCrypto (http://127.0.0.1) and on the fallback (school.lan mapped to 127.0.0.1: not a
secure context). Also the bare PBKDF2 (600,000 rounds) unthrottled on each path.

    .venv/bin/python bench/unlock.py [--students 60] [--runs 3] [--no-record]

Target (2-core machine): the fallback's key derivation <= 1.0 s unthrottled.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from common import demo_project, record
from playwright.sync_api import Browser, Page, sync_playwright

from otmetka.daemon.access import credentials
from otmetka.daemon.core.config import Config
from otmetka.daemon.core.progress import Reporter
from otmetka.daemon.core.settings import build_options
from otmetka.daemon.endpoint.app import create_app
from otmetka.db import models
from otmetka.site_builder import crypto, shell, static_files
from otmetka.site_builder.build import build_site

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.servers import CHROMIUM_ARGS, waitress_server

AS_OF = dt.date(2026, 12, 25)  # a full term of marks: a page as large as they get
LAN = "school.lan"
ITERATIONS = 600_000
OLD_PHONE_CPU = 6
LINE = {"offline": False, "latency": 400, "downloadThroughput": 50_000, "uploadThroughput": 50_000}
# A page without the shell's CSP, for the bare KDF of each path: the library's own speed.
KDF_PAGE = "bench-kdf.html"
TIME_KDF = """async ([path, rounds]) => {
  const salt = new Uint8Array(16).fill(7);
  const started = performance.now();
  await OtmUnlock.deriveKey('K7MP-2X4Q-ABCD-EF23', salt, rounds, path, null);
  return (performance.now() - started) / 1000;
}"""


def _site(folder: Path, students: int) -> tuple[Config, str, str, Path]:
    """The demo school built, a guardian's login and password, and the guardian's page."""
    config = demo_project(folder, students, AS_OF)
    first_class = models.ClassUnit.select().order_by(models.ClassUnit.name).first().name
    issued = credentials.issue_credentials(
        config, class_name=first_class, everyone=False, reporter=Reporter(quiet=True)
    )
    build_site(build_options(config, full=True, today=AS_OF))
    key = next(k for k in sorted(issued.secrets) if k[0] == "guardian")
    login, password = issued.secrets[key]
    found = models.Credential.get(models.Credential.login == crypto.normalise_login(login))
    page = config.site.output_dir / "p" / f"{found.page_id}.html"
    kdf_page = "<!doctype html><meta charset=utf-8><script>{}</script><script>{}</script>"
    bundle, unlock = static_files.text(shell.VENDOR_BUNDLE), static_files.script("unlock.js")
    (config.site.output_dir / KDF_PAGE).write_text(
        kdf_page.format(bundle, unlock), encoding="utf-8"
    )
    return config, login, password, page


@contextmanager
def _chromium() -> Iterator[Browser]:
    args = [*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {LAN} 127.0.0.1"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        try:
            yield browser
        finally:
            browser.close()


def _old_phone(page: Page) -> None:
    cdp = page.context.new_cdp_session(page)
    cdp.send("Emulation.setCPUThrottlingRate", {"rate": OLD_PHONE_CPU})
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", LINE)


def _login_to_page(browser: Browser, base: str, login: str, password: str) -> dict[str, Any]:
    """Seconds from submit to the page shown on an old phone, and which paths ran."""
    context = browser.new_context(viewport={"width": 360, "height": 740})
    try:
        page = context.new_page()
        page.goto(f"{base}/index.html")
        page.fill("#otm-login", login)
        page.fill("#otm-password", password)
        _old_phone(page)
        started = time.perf_counter()
        page.click("#otm-submit")
        page.wait_for_selector("html[data-otm-state=unlocked]", timeout=300_000)
        seconds = time.perf_counter() - started
        paths = page.evaluate(
            "[document.documentElement.dataset.kdfPath, "
            "document.documentElement.dataset.cryptoPath]"
        )
        return {"seconds": seconds, "kdf": paths[0], "cipher": paths[1]}
    finally:
        context.close()


def _bare_kdf(browser: Browser, base: str, path: str, runs: int) -> float:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{base}/{KDF_PAGE}")
        return statistics.median(page.evaluate(TIME_KDF, [path, ITERATIONS]) for _ in range(runs))
    finally:
        context.close()


def _measure(config: Config, login: str, password: str, runs: int) -> dict[str, Any]:
    found: dict[str, Any] = {}
    with waitress_server(create_app(config)) as port, _chromium() as browser:
        bases = {"webcrypto": f"http://127.0.0.1:{port}", "fallback": f"http://{LAN}:{port}"}
        for name, base in bases.items():
            tries = [_login_to_page(browser, base, login, password) for _ in range(runs)]
            found[name] = {
                "seconds": statistics.median(t["seconds"] for t in tries),
                "kdf": tries[0]["kdf"],
                "cipher": tries[0]["cipher"],
            }
        found["bare"] = {
            "webcrypto": _bare_kdf(browser, bases["webcrypto"], "webcrypto", runs),
            "wasm": _bare_kdf(browser, bases["fallback"], "wasm", runs),
            "noble": _bare_kdf(browser, bases["fallback"], "noble", runs),
        }
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=60)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        config, login, password, page = _site(Path(name), args.students)
        html = page.read_bytes()
        found = _measure(config, login, password, args.runs)
    web, fallback, bare = found["webcrypto"], found["fallback"], found["bare"]
    lines = [
        f"demo school of {args.students} students as of {AS_OF}; a guardian page: "
        f"{len(html) / 1024:.0f} KB, {len(gzip.compress(html)) / 1024:.0f} KB gzipped as served",
        f"old phone (CPU {OLD_PHONE_CPU}x slower, 400 kbit/s, 400 ms latency), login submit "
        f"to page shown, median of {args.runs}: WebCrypto {web['seconds']:.1f} s; "
        f"fallback {fallback['seconds']:.1f} s (PBKDF2 on {fallback['kdf']}, "
        f"AES-GCM on {fallback['cipher']})",
        f"bare PBKDF2, {ITERATIONS:,} rounds, unthrottled: WebCrypto {bare['webcrypto']:.2f} s, "
        f"WebAssembly {bare['wasm']:.2f} s, noble {bare['noble']:.2f} s (target <= 1.0 s)",
    ]
    command = f"python bench/unlock.py --students {args.students} --runs {args.runs}"
    record("Unlock on an old phone", command, lines, keep=not args.no_record)


if __name__ == "__main__":
    main()
