"""Rendering classes in worker processes.

A full build of a big school spends nearly all its time on per-class work (one bundle of
the class's journal, each child's section, the staff tables), which one process does on
one core. With `site.build_workers` > 1 each worker renders whole classes and sends back
an `assembly.ClassWork`; the builder takes them in school order, assembles the pages that
gather several classes (guardians, class and deputy heads) and encrypts and writes pages
while the workers render the next classes.

Each worker (otmetka.site_builder.workers) opens the same database and reads it as the parent does;
an in-memory database cannot be shared, so it is rendered in this process.
"""

from __future__ import annotations

import datetime as dt
import gc
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor

from otmetka.db import open_database
from otmetka.site_builder.pages import assembly, audience
from otmetka.site_builder.workers import (
    database_url,
    keep_freed_memory,
    start_server,
    worker_pool,
)

_AHEAD_PER_WORKER = 2  # classes handed out and not yet taken: bounds the pages held

_build: assembly.PageBuild | None = None  # a worker's own view of the school, made once


# A class makes hundreds of thousands of small objects (rows, views, tuples) that live until
# its work is sent back, and no cycles to speak of: with the default threshold the cyclic
# collector ran every 700 of them and took a sixth of the render time.
_GC_THRESHOLD = 50_000


def _start(url: str, today: dt.date, wanted: set[audience.PageKey] | None) -> None:
    global _build
    keep_freed_memory()
    open_database(url)
    _build = assembly.build_for(today, wanted)
    gc.freeze()  # the school's lookups stay for the worker's life: never scan them again
    gc.set_threshold(_GC_THRESHOLD, *gc.get_threshold()[1:])


def _work(class_id: str) -> assembly.ClassWork:
    assert _build is not None, "the worker was not started"
    return _build.class_work(class_id)


def start_early() -> None:
    """Have the workers' server start importing while the build gets ready (see
    otmetka.site_builder.workers)."""
    start_server(_start)


def class_works(
    todo: list[str], today: dt.date, wanted: set[audience.PageKey] | None, workers: int
) -> Iterator[Future[assembly.ClassWork]]:
    """The work of every class in `todo`, in that order, rendered by `workers` processes: a
    future each, so the caller can do something else while the next is not done. The next
    classes are handed out as the caller takes futures."""
    url = database_url()
    assert url is not None
    pool = worker_pool(min(workers, len(todo)), _start, (url, today, wanted))
    # The first submissions wait while the workers start: a thread of its own makes them,
    # and this process seals the pages it has meanwhile.
    submitter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="submit")
    pending: deque[Future[assembly.ClassWork]] = deque()
    try:
        for class_id in todo:
            pending.append(_submitted(submitter, pool, class_id))
            if len(pending) >= workers * _AHEAD_PER_WORKER:
                yield pending.popleft()
        while pending:
            yield pending.popleft()
    finally:
        submitter.shutdown(wait=True)
        pool.shutdown(wait=True, cancel_futures=True)


def _submitted(
    submitter: ThreadPoolExecutor, pool: ProcessPoolExecutor, class_id: str
) -> Future[assembly.ClassWork]:
    """The work of `class_id` in `pool`, submitted there by `submitter`."""
    work: Future[assembly.ClassWork] = Future()

    def relay(done: Future[assembly.ClassWork]) -> None:
        if done.cancelled():
            work.cancel()
        elif (error := done.exception()) is not None:
            work.set_exception(error)
        else:
            work.set_result(done.result())

    def chain(submission: Future[Future[assembly.ClassWork]]) -> None:
        if (error := submission.exception()) is not None:
            work.set_exception(error)
        else:
            submission.result().add_done_callback(relay)

    submitter.submit(pool.submit, _work, class_id).add_done_callback(chain)
    return work
