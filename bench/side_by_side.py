"""Full builds (or school reports) by an earlier commit (the anchor) and by this checkout,
alternately, on copies of one project: the side-by-side that the build's and the report's
figures in RESULTS.md are judged by.

    .venv/bin/python bench/side_by_side.py [--anchor a031c52] [--rounds 3] [--students 2000]
        [--work build|report]

The anchor is checked out with `git worktree` into a temporary folder and imported instead of
this checkout through PYTHONPATH; it must have this checkout's layout (daemon/, db/ and
site_builder/ at the top, as every commit since the `otmetka` namespace has). One project is
made first: the demo school, with credentials issued at the lowest iteration count the config
allows (a build reuses each credential's cached key, so it does the same work at any count).
Then, round after round, for the anchor and then this checkout, the project is copied into a
new folder and `build_site(full=True)` runs in a process of its own, so that every page is
rendered, sealed and written; with `--work report`, the school report (`otmetka report`
with no class: every class's PDF and the school's, with the configured workers) instead, and
the peak memory of its biggest worker process besides. No folder is removed before the
end: on ext4 without a journal, files deleted minutes before slow down the creation of new
ones (RESULTS.md, the method note of 2026-12-06).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import biggest_descendant_peak, cpu_seconds, demo_project, record

from otmetka.daemon.access import credentials
from otmetka.daemon.core.config import config_from_dict
from otmetka.daemon.core.progress import Reporter
from otmetka.daemon.core.settings import build_options
from otmetka.daemon.paper import reports
from otmetka.daemon.runtime import open_project
from otmetka.site_builder.build import build_site

AS_OF = dt.date(2026, 12, 25)  # the last week of the 2nd quarter: a full term of marks
SETTINGS = {"site": {"kdf_iterations": 100_000}}
REPOSITORY = Path(__file__).resolve().parent.parent
PACKAGES = ("daemon", "db", "site_builder")


def _child(folder: Path, work: str) -> None:
    """Build every page (or print the school report) of the project in `folder`; print wall,
    CPU, what was made and the biggest worker's peak memory as JSON."""
    config = config_from_dict(SETTINGS, base_dir=folder, env={})
    open_project(config)
    before, started = cpu_seconds(), time.perf_counter()
    with biggest_descendant_peak() as worker_mb:
        if work == "report":
            made = reports.report_school(config, out=None, today=AS_OF).pages
        else:
            made = build_site(build_options(config, full=True, today=AS_OF)).written
    wall = time.perf_counter() - started
    main, workers = (a - b for a, b in zip(cpu_seconds(), before, strict=True))
    figures = {"wall": wall, "cpu": main + workers, "made": made, "worker_mb": worker_mb[0]}
    print(json.dumps(figures))


def _prepare(folder: Path, students: int) -> Path:
    project = folder / "project"
    config = demo_project(project, students, AS_OF, SETTINGS)
    credentials.issue_credentials(config, class_name=None, everyone=True, reporter=Reporter())
    return project


def _copy(project: Path, target: Path) -> None:
    """The project's database (through SQLite's backup) and its keys, in a new folder."""
    shutil.copytree(project / "var", target / "var")
    (target / "db").mkdir(parents=True)
    with (
        contextlib.closing(sqlite3.connect(project / "db" / "otmetka.sqlite3")) as source,
        contextlib.closing(sqlite3.connect(target / "db" / "otmetka.sqlite3")) as copy,
    ):
        source.backup(copy)


def _anchor_path(anchor: str, folder: Path) -> Path:
    """A folder to put on PYTHONPATH so that `otmetka` is the anchor's code."""
    tree = folder / "anchor"
    subprocess.run(
        ["git", "-C", str(REPOSITORY), "worktree", "add", "--detach", str(tree), anchor],
        check=True,
        capture_output=True,
    )
    links = folder / "links" / "otmetka"
    links.mkdir(parents=True)
    for package in PACKAGES:
        (links / package).symlink_to(tree / package)
    return links.parent


def _run(project: Path, target: Path, python_path: Path | None, work: str) -> dict[str, float]:
    _copy(project, target)
    env = dict(os.environ)
    if python_path is not None:
        env["PYTHONPATH"] = str(python_path)
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(target), "--work", work],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def _lines(anchor: str, work: str, runs: dict[str, list[dict[str, float]]]) -> list[str]:
    def figures(label: str) -> str:
        walls = ", ".join(f"{run['wall']:.1f}" for run in runs[label])
        cpus = ", ".join(f"{run['cpu']:.1f}" for run in runs[label])
        if work == "build":
            return f"{walls} s; CPU {cpus} s"
        rates = ", ".join(f"{run['made'] / run['wall']:.1f}" for run in runs[label])
        memory = ", ".join(f"{run['worker_mb']:.0f}" for run in runs[label])
        return f"{walls} s = {rates} pages/s; CPU {cpus} s; biggest worker {memory} MB"

    pairs = list(zip(runs["anchor"], runs["now"], strict=True))
    wall = ", ".join(f"{now['wall'] / old['wall']:.2f}" for old, now in pairs)
    cpu = ", ".join(f"{now['cpu'] / old['cpu']:.2f}" for old, now in pairs)
    return [
        f"{'pages written' if work == 'build' else 'report pages'} in each run: "
        f"{runs['now'][0]['made']:.0f} (the anchor's {runs['anchor'][0]['made']:.0f})",
        f"{anchor}: {figures('anchor')}",
        f"this checkout: {figures('now')}",
        f"this checkout / {anchor}: wall {wall}; CPU {cpu}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--anchor", default="a031c52")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--students", type=int, default=2000)
    parser.add_argument("--work", choices=("build", "report"), default="build")
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        _child(args.child, args.work)
        return
    folder = Path(tempfile.mkdtemp(prefix="side-by-side-"))
    try:
        project = _prepare(folder, args.students)
        anchor_path = _anchor_path(args.anchor, folder)
        runs: dict[str, list[dict[str, float]]] = {"anchor": [], "now": []}
        for round_ in range(args.rounds):
            for label, path in (("anchor", anchor_path), ("now", None)):
                target = folder / f"{label}-{round_}"
                runs[label].append(_run(project, target, path, args.work))
    finally:
        subprocess.run(
            ["git", "-C", str(REPOSITORY), "worktree", "remove", "--force", str(folder / "anchor")],
            capture_output=True,
        )
        shutil.rmtree(folder)
    command = (
        f"python bench/side_by_side.py --anchor {args.anchor} --rounds {args.rounds} "
        f"--students {args.students} --work {args.work}"
    )
    title = "Build side by side" if args.work == "build" else "School report side by side"
    lines = _lines(args.anchor, args.work, runs)
    record(title, command, lines, keep=not args.no_record)


if __name__ == "__main__":
    main()
