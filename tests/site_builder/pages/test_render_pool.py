"""Classes rendered by worker processes give exactly the pages rendered in this process."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.demo.school import generate_school
from otmetka.daemon.exchange.importer import import_document
from otmetka.site_builder.pages import render
from otmetka.site_builder.workers import database_url, keep_freed_memory, worker_pool
from tests.support.analytics_factories import analytics_school

TODAY = dt.date(2026, 9, 16)
DEMO_DAY = dt.date(2026, 11, 27)


@pytest.fixture
def demo_school(file_db: Path) -> None:
    """Every class 1-11, siblings in different classes, deputy heads."""
    import_document(generate_school(students=60, seed=1, as_of=DEMO_DAY), "demo", MarkRules())


def test_pages_rendered_by_workers_equal_the_pages_rendered_here(demo_school: None) -> None:
    assert database_url() is not None
    here = dict(render.render_pages(DEMO_DAY))
    pooled = list(render.render_pages(DEMO_DAY, workers=2))
    assert len(pooled) == len(here)  # each page exactly once
    assert dict(pooled) == here
    kinds = {kind for kind, _ in here}
    assert kinds == {"student", "guardian", "teacher"} and len(here) > 100


def test_some_pages_by_workers_equal_the_same_pages_here(demo_school: None) -> None:
    everyone = dict(render.render_pages(DEMO_DAY))
    wanted = {key for key in everyone if key[0] != "student"}
    assert dict(render.render_pages(DEMO_DAY, wanted, workers=3)) == {
        key: everyone[key] for key in wanted
    }


def test_pages_given_meanwhile_come_out_once_among_the_workers_pages(demo_school: None) -> None:
    everyone = dict(render.render_pages(DEMO_DAY))
    guardians = sorted(key for key in everyone if key[0] == "guardian")
    others = {key for key in everyone if key[0] != "guardian"}
    consent = [(key, f"consent form of {key[1]}") for key in guardians]
    pooled = list(render.render_pages(DEMO_DAY, others, workers=2, meanwhile=consent))
    assert len(pooled) == len(everyone)  # each page exactly once
    assert dict(pooled) == {**{key: everyone[key] for key in others}, **dict(consent)}
    # The consent pages are not held back to the end: the first come before the last class.
    last_class_page = max(i for i, (key, _) in enumerate(pooled) if key[0] == "student")
    assert pooled.index(consent[0]) < last_class_page


def test_an_in_memory_database_is_rendered_here(memory_db: None) -> None:
    import_document(analytics_school(), "school.json", MarkRules())
    assert database_url() is None
    assert dict(render.render_pages(TODAY, workers=2)) == dict(render.render_pages(TODAY))


_POOL_SCRIPT = """
import os, sys
from otmetka.site_builder.workers import worker_pool
if __name__ == "__main__":
    pool = worker_pool(2)
    pids = {pool.submit(os.getpid).result() for _ in range(20)}
    parents = {pool.submit(os.getppid).result() for _ in range(20)}
    print(" ".join(map(str, pids)), flush=True)
    print(" ".join(map(str, parents)), flush=True)
    sys.stdin.read()  # until killed
"""


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\\tZ (zombie)" not in status  # an orphan nobody reaps is dead all the same


def test_workers_end_when_their_parent_is_killed(tmp_path: Path) -> None:
    command = [sys.executable, "-c", _POOL_SCRIPT]
    with subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as parent:
        assert parent.stdout is not None
        workers = [int(pid) for pid in parent.stdout.readline().split()]
        assert workers and all(_alive(pid) for pid in workers)
        # Not forked from the parent (its connection, its threads) but from the fork server,
        # which lives on while they do: they must watch the parent itself.
        assert parent.pid not in {int(pid) for pid in parent.stdout.readline().split()}
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers)


_EARLY_SCRIPT = """
import os, pathlib, sys
from otmetka.site_builder.pages import render_pool
def children():
    tasks = pathlib.Path("/proc/self/task").glob("*/children")
    pids = [pid for f in tasks for pid in f.read_text().split()]
    return [pathlib.Path(f"/proc/{pid}/cmdline").read_text() for pid in pids]
if __name__ == "__main__":
    assert not any("forkserver" in c for c in children())
    render_pool.start_early()
    print(sum("forkserver" in c for c in children()), flush=True)
"""


def test_the_workers_server_can_start_before_the_first_pool() -> None:
    # A full build starts it first thing, so that its imports overlap the build's first steps.
    command = [sys.executable, "-c", _EARLY_SCRIPT]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == ["1"]


def _memory_kept_after_freeing(size: int) -> int:
    """How much of a buffer of `size` bytes, written and freed, this process still holds."""

    def resident() -> int:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    before = resident()
    buffer = b"x" * size
    del buffer
    return resident() - before


def test_a_render_worker_keeps_the_memory_it_frees_for_its_next_class() -> None:
    # A class's pages are megabytes, pickled to be sent back: mapping fresh pages for each
    # class and handing them back cost the pickling half its time.
    size = 24 * 2**20
    with worker_pool(1, keep_freed_memory) as pool:
        kept = pool.submit(_memory_kept_after_freeing, size).result()
    assert kept >= size * 0.9  # by default a buffer this big is mapped, and unmapped when freed
