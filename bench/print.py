"""Printing benchmark: extracts of the whole demo school, and the cache.

    .venv/bin/python bench/print.py [--students 2000] [--workers 2]

Generates and imports the demo school, then prints every class's extracts
(`printing.print_extracts --all`) three ways, each time into a fresh output folder:

1. one document per student, cold cache: what `otmetka print extracts --all` does;
2. the same again: every extract is unchanged, so nothing is rendered (cache hits only);
3. one document per class (page numbers restart per student through page groups, but
   without «из N»), cold cache: the alternative, for comparison.

Reported: pages and pages per second of rendering, and the peak memory (RSS) of the
busiest worker process. Target (2 cores, printing.workers = 2): >= 8 pages/s with
<= 200 MB per worker.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import tempfile
from pathlib import Path

from common import peak_rss_mb, record

from otmetka.daemon.core.config import Config, config_from_dict
from otmetka.daemon.core.progress import Reporter
from otmetka.daemon.core.settings import mark_rules
from otmetka.daemon.demo.school import generate_school
from otmetka.daemon.exchange.importer import import_document
from otmetka.daemon.paper import printing
from otmetka.daemon.runtime import open_project
from otmetka.site_builder.pdf.extracts import Layout

AS_OF = dt.date(2026, 12, 25)  # the last week of the 2nd quarter: a full term of marks


def _run(config: Config, layout: Layout, out: Path) -> printing.ExtractsResult:
    return printing.print_extracts(
        config,
        class_name=None,
        everyone=True,
        period=None,
        paper_only=False,
        out=out,
        reporter=Reporter(),
        layout=layout,
        today=AS_OF,
    )


def _line(name: str, result: printing.ExtractsResult) -> str:
    rate = result.rendered_pages / result.seconds if result.seconds else 0.0
    return (
        f"{name}: {result.extracts} extracts, {result.pages} pages in {result.seconds:.0f} s; "
        f"rendered {result.rendered_pages} pages = {rate:.1f} pages/s; "
        f"peak worker RSS {result.peak_worker_mb:.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        settings = {"printing": {"workers": args.workers}}
        config = config_from_dict(settings, base_dir=folder, env={})
        open_project(config)
        document = generate_school(students=args.students, seed=1, as_of=AS_OF)
        import_document(document, "demo", mark_rules(config))
        del document
        per_student = _run(config, "student", folder / "out-1")
        cached = _run(config, "student", folder / "out-2")
        shutil.rmtree(config.printing.extracts_dir / "cache")
        per_class = _run(config, "class", folder / "out-3")
    target = "target >= 8 pages/s, <= 200 MB per worker"
    lines = [
        f"students: {args.students}; classes: {per_student.classes}; "
        f"workers: {args.workers}; {target}",
        _line("one document per student (cold cache)", per_student),
        _line("one document per student, nothing changed (cache)", cached),
        _line("one document per class (cold, no per-student page total)", per_class),
        f"peak RSS of the main process {peak_rss_mb():.0f} MB",
    ]
    command = f"python bench/print.py --students {args.students} --workers {args.workers}"
    record("Print", command, lines, keep=not args.no_record)


if __name__ == "__main__":
    main()
