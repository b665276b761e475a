"""Shared helpers for the benchmarks: a machine line and appending to RESULTS.md."""

from __future__ import annotations

import contextlib
import datetime as dt
import mmap
import os
import platform
import resource
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from otmetka.daemon.core.config import Config

RESULTS = Path(__file__).with_name("RESULTS.md")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = os.getloadavg()[0]
    return (
        f"{platform.system()} {platform.release()}, {os.cpu_count()} cores ({cpu}), "
        f"{memory_gb:.0f} GiB, Python {platform.python_version()}; load average {load:.1f}; "
        f"speed probes: Python {python_probe_ms():.0f} ms, "
        f"fresh memory {fresh_memory_mb_s():.0f} MB/s"
    )


def python_probe_ms() -> float:
    """A fixed piece of pure Python (dicts, strings, tuples), best of five: the same machine
    can run it at different speeds on different days, and every figure moves with it."""
    best = float("inf")
    for _ in range(5):
        started = time.process_time()
        table = {f"k{n}": (n, str(n)) for n in range(200_000)}
        sum(len(text) for _number, text in table.values())
        best = min(best, time.process_time() - started)
    return best * 1000


def fresh_memory_mb_s(size: int = 256 * 2**20) -> float:
    """How fast this process writes to memory it has not touched before: the kernel hands
    out a zeroed page at each first touch (on a virtual machine the host may have to back
    it too). Writing pages to files and large buffers pay it."""
    area = mmap.mmap(-1, size)
    started = time.perf_counter()
    for offset in range(0, size, mmap.PAGESIZE):
        area[offset] = 1
    elapsed = time.perf_counter() - started
    area.close()
    return size / 2**20 / elapsed


def cpu_seconds() -> tuple[float, float]:
    """CPU time of this process, and of the worker processes: those it has reaped, and the
    ones its live children have reaped or are (the fork server's workers are its children,
    not ours: their time is in the server's cutime once they end)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, reaped.ru_utime + reaped.ru_stime + _live_children_cpu()


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        for children in Path(f"/proc/{todo.pop()}/task").glob("*/children"):
            try:
                pids = [int(p) for p in children.read_text().split()]
            except FileNotFoundError:
                continue
            found += pids
            todo += pids
    return found


def _peak_rss_mb_of(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return 0.0
    line = next((line for line in status.splitlines() if line.startswith("VmHWM:")), "0 0")
    return int(line.split()[1]) / 1024


@contextlib.contextmanager
def biggest_descendant_peak(every: float = 0.25) -> Iterator[list[float]]:
    """The highest peak RSS (MB) of any process below this one while the block runs, in
    `[0]`: worker processes started by a fork server are not our children, so getrusage
    never sees them; their peaks are read from /proc while they live."""
    peak = [0.0]
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(every):
            for pid in _descendants(os.getpid()):
                peak[0] = max(peak[0], _peak_rss_mb_of(pid))

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        stop.set()
        thread.join()


def system_seconds() -> float:
    """CPU time this process has spent in the kernel (writing files, page faults): on a
    virtual machine it swings more from run to run than the time spent in Python."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


def _live_children_cpu() -> float:
    ticks = 0
    for children in Path("/proc/self/task").glob("*/children"):
        for pid in children.read_text().split():
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except FileNotFoundError:
                continue
            fields = stat.rsplit(")", 1)[1].split()  # after the command, which may hold spaces
            ticks += sum(int(n) for n in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def record(title: str, command: str, lines: list[str], *, keep: bool = True) -> None:
    """Append one dated result block to bench/RESULTS.md and echo it; with `keep` false
    (a bench's --no-record) only print the figures."""
    if not keep:
        print("\n".join(lines))
        return
    block = [
        f"## {title}: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"- machine: {machine()}",
        f"- command: `{command}`",
        *[f"- {line}" for line in lines],
        "",
    ]
    text = "\n".join(block) + "\n"
    print(text)
    if not RESULTS.exists():
        RESULTS.write_text(
            "# Benchmark results\n\nNewest last. Each block says when, where, "
            "how it was run and what it measured.\n\n",
            encoding="utf-8",
        )
    with RESULTS.open("a", encoding="utf-8") as handle:
        handle.write(text)


def demo_project(
    folder: Path, students: int, as_of: dt.date, settings: dict[str, Any] | None = None
) -> Config:
    """A fresh project in `folder` holding the demo school, imported through the importer;
    `settings` are config.yaml's keys, if any differ from the defaults."""
    from otmetka.daemon.core.config import config_from_dict
    from otmetka.daemon.core.settings import mark_rules
    from otmetka.daemon.demo.school import generate_school
    from otmetka.daemon.exchange.importer import import_document
    from otmetka.daemon.runtime import open_project

    config = config_from_dict(settings or {}, base_dir=folder, env={})
    open_project(config)
    document = generate_school(students=students, seed=1, as_of=as_of)
    import_document(document, "demo", mark_rules(config))
    return config
