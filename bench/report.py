"""Analytics benchmark on the demo school: the whole school's analytics (what the deputy
head's page costs), a class report and the school report as PDF, and lists round-trip.

    .venv/bin/python bench/report.py [--students 2000]

These run on demand (`otmetka report`), or once in DEPUTY_REFRESH for the deputy's page;
the figures say what an operator waits. The school report's target is >= 15 pages/s with
the configured workers (2 by default), as for the extracts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

from common import cpu_seconds, demo_project, peak_rss_mb, record

from otmetka.daemon.lists import export, recording
from otmetka.daemon.paper import reports
from otmetka.db import queries
from otmetka.site_builder.pages import audience, render

AS_OF = dt.date(2026, 12, 25)  # the last week of the 2nd quarter: a full term of marks


def _deputy_render() -> float:
    """Render the deputy head's page alone: every class loaded and analysed."""
    roster = audience.roster(AS_OF)
    wanted = {("teacher", tid) for tid in roster.deputies}
    started = time.perf_counter()
    pages = list(render.render_pages(AS_OF, wanted))
    assert pages, "the demo school has a deputy head"
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=2000)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        config = demo_project(Path(name), args.students, AS_OF)
        classes = queries.class_units()
        deputy = _deputy_render()
        started = time.perf_counter()
        one = reports.report_class(config, class_name=classes[-1].name, out=None, today=AS_OF)
        one_class = time.perf_counter() - started
        started, cpu_before = time.perf_counter(), cpu_seconds()
        school = reports.report_school(config, out=None, today=AS_OF)
        whole = time.perf_counter() - started
        main_cpu, workers_cpu = (a - b for a, b in zip(cpu_seconds(), cpu_before, strict=True))
        started = time.perf_counter()
        exported = export.export_list(config, class_name=classes[-1].name, out=None)
        export_s = time.perf_counter() - started
        started = time.perf_counter()
        recording.import_list(config, exported.path)
        import_s = time.perf_counter() - started
    lines = [
        f"students: {args.students}, classes: {len(classes)}",
        f"deputy head's page alone (every class loaded and analysed): {deputy:.1f} s",
        f"report class {classes[-1].name}: {one_class:.1f} s, {one.pages} pages",
        f"report school: {whole:.1f} s, {school.pages} pages in the school PDF "
        f"= {school.pages / whole:.1f} pages/s (target >= 15; {config.printing.workers} "
        f"workers), {len(school.files) - 1} class PDFs",
        # what the wall clock would give with the cores to itself: a busy machine slows it
        f"  CPU: main {main_cpu:.1f} s + workers {workers_cpu:.1f} s = "
        f"{(main_cpu + workers_cpu) / school.pages * 1000:.0f} ms a page, about "
        f"{school.pages * config.printing.workers / (main_cpu + workers_cpu):.1f} pages/s "
        f"on {config.printing.workers} idle cores",
        f"lists export of {exported.students} students: {export_s:.2f} s; "
        f"import of the unchanged file: {import_s:.2f} s",
        f"peak RSS {peak_rss_mb():.0f} MB",
    ]
    record(
        "Analytics",
        f"python bench/report.py --students {args.students}",
        lines,
        keep=not args.no_record,
    )


if __name__ == "__main__":
    main()
