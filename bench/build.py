"""Build benchmark on the demo school: full build, no-change rebuild, one new mark, page
sizes, and time to unlock a guardian page in chromium on both crypto paths.

    .venv/bin/python bench/build.py [--students 2000]

Targets (2-core machine): full build <= 6 s, no-change <= 1 s, one mark <= 1 s, a guardian
page for a full term <= 80 KB. Credentials are issued at the configured 600,000 iterations
first (slow, and not part of the build: the builder reuses the cached keys).
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

from common import cpu_seconds, demo_project, peak_rss_mb, record, system_seconds

from otmetka.daemon.access import credentials
from otmetka.daemon.core.config import Config
from otmetka.daemon.core.progress import Reporter
from otmetka.daemon.core.settings import build_options, mark_rules
from otmetka.daemon.exchange.importer import import_document
from otmetka.db import models
from otmetka.site_builder.build import build_site

AS_OF = dt.date(2026, 12, 25)  # the last week of the 2nd quarter: a full term of marks
QUIET = Reporter(quiet=True)


def _timed_build(config: Config, full: bool = False) -> tuple[float, int]:
    started = time.perf_counter()
    result = build_site(build_options(config, full=full, today=AS_OF))
    return time.perf_counter() - started, result.written


def _one_new_mark() -> dict:
    """A mark in this week's lesson of a student, so their page really changes."""
    m, lessons = models.Membership, models.Lesson
    member = m.select().order_by(m.student_id).first()
    lesson = (
        lessons.select()
        .where(lessons.group_id == member.group_id, lessons.date <= AS_OF)
        .where(lessons.status == "held")
        .order_by(lessons.date.desc())
        .first()
    )
    data = {
        "student_id": member.student_id,
        "subject_id": lesson.subject_id,
        "date": lesson.date.isoformat(),
        "lesson_id": lesson.id,
        "raw": "5",
    }
    return {
        "format": "otmetka-exchange",
        "version": 1,
        "school_id": "demo-school",
        "tz": "Europe/Moscow",
        "mode": "delta",
        "cursor": "bench-1",
        "generated_at": "2026-12-25T18:00:00+03:00",
        "changes": [
            {
                "type": "mark",
                "id": "bench-mark-1",
                "op": "upsert",
                "updated_at": "2026-12-25T18:00:00+03:00",
                "data": data,
            }
        ],
    }


def _page_sizes(config: Config) -> dict[str, list[int]]:
    sizes: dict[str, list[int]] = {}
    for page in models.BuildManifest.select():
        path = config.site.output_dir / "p" / f"{page.page_id}.html"
        sizes.setdefault(page.person_kind, []).append(path.stat().st_size)
    return sizes


def _unlock_seconds(config: Config, login: str, password: str) -> dict[str, float]:
    """Median of 3 unlocks per path, from submit to the page being shown."""
    import sys

    from playwright.sync_api import sync_playwright

    from otmetka.daemon.endpoint.app import create_app

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests package
    from tests.support.servers import CHROMIUM_ARGS, waitress_server

    args = [*CHROMIUM_ARGS, "--host-resolver-rules=MAP school.lan 127.0.0.1"]
    results: dict[str, float] = {}
    with waitress_server(create_app(config)) as port, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        for name, host in (("webcrypto", "127.0.0.1"), ("noble", "school.lan")):
            runs = []
            for _ in range(3):
                page = browser.new_context().new_page()
                page.goto(f"http://{host}:{port}/index.html")
                page.fill("#otm-login", login)
                page.fill("#otm-password", password)
                started = time.perf_counter()
                page.click("#otm-submit")
                page.wait_for_selector("html[data-otm-state=unlocked]", timeout=120_000)
                runs.append(time.perf_counter() - started)
                assert page.evaluate("document.documentElement.dataset.cryptoPath") == name
                page.context.close()
            results[name] = statistics.median(runs)
        browser.close()
    return results


def _counts(sizes: dict[str, list[int]]) -> str:
    return ", ".join(f"{kind} {len(values)}" for kind, values in sizes.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=2000)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        config = demo_project(Path(name), args.students, AS_OF)
        started = time.perf_counter()
        issued = credentials.issue_credentials(
            config, class_name=None, everyone=True, reporter=Reporter()
        )
        issuing = time.perf_counter() - started
        cpu_before, system_before = cpu_seconds(), system_seconds()
        full, written = _timed_build(config, full=True)
        main_cpu, workers_cpu = (a - b for a, b in zip(cpu_seconds(), cpu_before, strict=True))
        main_system = system_seconds() - system_before
        unchanged, rewritten = _timed_build(config)
        import_document(_one_new_mark(), "one mark", mark_rules(config))
        one_mark, after_mark = _timed_build(config)
        sizes = _page_sizes(config)
        guardian = next(k for k in issued.secrets if k[0] == "guardian")
        unlock = _unlock_seconds(config, *issued.secrets[guardian])
    lines = [
        f"students: {args.students}; pages: {written} ({_counts(sizes)})",
        f"issuing {issued.issued} credentials at 600,000 iterations (not part of a build): "
        f"{issuing:.0f} s, {issued.issued / max(issuing, 1e-9):.1f} a second",
        f"full build: {full:.1f} s (target <= 6 s); CPU: this process {main_cpu:.1f} s "
        f"(sealing, writing; {main_system:.1f} s of it in the kernel), "
        f"render workers {workers_cpu:.1f} s",
        f"no-change rebuild: {unchanged:.2f} s, {rewritten} pages written (target <= 1 s)",
        f"rebuild after one new mark: {one_mark:.2f} s, {after_mark} pages written (target <= 1 s)",
        *[
            f"{kind} page size: median {statistics.median(v) / 1024:.0f} KB, "
            f"max {max(v) / 1024:.0f} KB"
            for kind, v in sizes.items()
        ],
        "unlock a guardian page in chromium (600,000 iterations): "
        f"WebCrypto {unlock['webcrypto']:.1f} s, noble fallback {unlock['noble']:.1f} s",
        f"peak RSS {peak_rss_mb():.0f} MB",
    ]
    record(
        "Build", f"python bench/build.py --students {args.students}", lines, keep=not args.no_record
    )


if __name__ == "__main__":
    main()
