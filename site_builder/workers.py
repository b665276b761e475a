"""Worker processes for the long jobs (rendering classes, printing extracts), and how many
cores this process may use.

Spawned, not forked: a worker must not inherit the parent's open database connection or a
daemon's threads. Each worker also watches its parent: if the parent is killed (SIGKILL, a
power button, the OOM killer), nothing closes the pool, and a worker waiting for its next
task would wait forever; instead it exits within a second.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from otmetka.db.connection import opened_url

_WATCH_S = 0.5


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
    while os.getppid() == parent:
        time.sleep(_WATCH_S)
    os._exit(1)


def _start(parent: int, initializer: Callable[..., None] | None, args: tuple[Any, ...]) -> None:
    threading.Thread(target=_exit_with, args=(parent,), name="parent-watch", daemon=True).start()
    if initializer is not None:
        initializer(*args)


def spawn_pool(
    workers: int,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
) -> ProcessPoolExecutor:
    """A pool of `workers` spawned processes that end when this process ends."""
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start,
        initargs=(os.getpid(), initializer, initargs),
    )
