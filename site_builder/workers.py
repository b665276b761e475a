"""Worker processes for the long jobs (rendering classes, printing extracts), and how many
cores this process may use.

Never forked from this process: a worker must not inherit its open database connection or a
daemon's threads. Workers are forked from multiprocessing's fork server instead: a clean
process, started once, that imports the modules of ours this process has loaded; a worker
then starts in milliseconds, where a spawned one imported some 600 modules again (0.75 s of
CPU each). Where there is no fork server or no pidfd (see below), workers are spawned.

Each worker watches this process: if it is killed (SIGKILL, a power button, the OOM killer),
nothing closes the pool, and a worker waiting for its next task would wait forever; instead
it exits at once. A worker of the fork server is not this process's child (and the server
lives on while its workers do), so it watches through a pidfd.
"""

from __future__ import annotations

import ctypes
import functools
import multiprocessing
import multiprocessing.forkserver
import os
import select
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from otmetka.db.connection import opened_url

_WATCH_S = 0.5
_PACKAGE = __name__.split(".")[0] + "."


def database_url() -> str | None:
    """The URL workers open to read what this process reads; None for a database they
    cannot share (in memory): then the work is done in this process."""
    url = opened_url()
    return None if url is None or ":memory:" in url else url


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity (taskset, a container's cpuset)
    where the system has one, else every core of the machine."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # no affinity outside Linux
        return os.cpu_count() or 1


def _exit_with(parent: int) -> None:
    """End this worker once `parent` has ended: its pidfd turns readable then (Linux 5.3 and
    later), or else, the worker being its child, its parent id changes."""
    try:
        handle = os.pidfd_open(parent)
    except ProcessLookupError:
        os._exit(1)
    except (AttributeError, OSError):
        while os.getppid() == parent:
            time.sleep(_WATCH_S)
        os._exit(1)
    select.select([handle], [], [])
    os._exit(1)


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEEP_FREED_BYTES = 256 * 2**20
_HEAP_UP_TO_BYTES = 32 * 2**20  # glibc's largest mmap threshold


def keep_freed_memory() -> None:
    """Have malloc keep the memory this process frees for its next allocations: for a worker
    that makes and frees buffers of megabytes for each task (a render worker's class of
    pages, pickled to be sent back). By default each is mapped afresh and handed back to the
    system when freed, and touching fresh pages cost the pickling half its time (more on a
    virtual machine). For a worker that lives for one job: what it keeps is bounded by its
    peak, but it keeps it until it ends. Elsewhere than glibc, malloc is left as it is."""
    if _on_glibc():
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_MMAP_THRESHOLD, _HEAP_UP_TO_BYTES)
        libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_FREED_BYTES)


def _on_glibc() -> bool:
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (AttributeError, ValueError, OSError):  # no confstr, or no such name here
        return False


def _start(parent: int, initializer: Callable[..., None] | None, args: tuple[Any, ...]) -> None:
    threading.Thread(target=_exit_with, args=(parent,), name="parent-watch", daemon=True).start()
    if initializer is not None:
        initializer(*args)


@functools.cache
def _can_watch_any_process() -> bool:
    """Whether a pidfd can be had here (Linux 5.3 and later)."""
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):
        return False
    return True


def _context(initializer: Callable[..., None] | None) -> multiprocessing.context.BaseContext:
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" not in methods or not _can_watch_any_process():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_preload(initializer))  # read once, when the server starts
    return context


def _preload(initializer: Callable[..., None] | None) -> list[str]:
    """What the fork server imports: every module of ours this process has (a worker re-runs
    the main script, whose imports are then at hand) and the initializer's. The server's
    own '__main__' is no help: Python 3.11 never passes it the main script's path."""
    ours = [name for name in sys.modules if name.startswith(_PACKAGE)]
    return sorted({*ours, *([initializer.__module__] if initializer is not None else [])})


def start_server(initializer: Callable[..., None] | None = None) -> None:
    """Start the fork server now, where workers come from one: it imports our modules
    (about 0.7 s), and a pool made a moment later would wait for that."""
    if _context(initializer).get_start_method() == "forkserver":
        multiprocessing.forkserver.ensure_running()


def worker_pool(
    workers: int,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
) -> ProcessPoolExecutor:
    """A pool of `workers` fresh processes that end when this process ends."""
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=_context(initializer),
        initializer=_start,
        initargs=(os.getpid(), initializer, initargs),
    )
