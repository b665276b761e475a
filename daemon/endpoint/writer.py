"""The act writer: one thread commits the acts waiting at that moment in ONE transaction,
each in its own savepoint (group commit).

SQLite with synchronous=FULL pays one fsync per commit, so batching is what lets a school's
parents post at once.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import peewee

from otmetka.daemon.acts import rules as acts
from otmetka.db import database, write_transaction

log = logging.getLogger("otmetka.endpoint")


@dataclass
class _Job:
    ctx: acts.ActContext
    run: Callable[[], acts.Outcome]
    done: threading.Event = field(default_factory=threading.Event)
    outcome: acts.Outcome | None = None
    error: BaseException | None = None


class DatabaseBusy(Exception):
    """The database stayed locked (a long import) longer than endpoint.write_wait_s."""


def _locked(error: peewee.OperationalError) -> bool:
    # SQLite: "database is locked"; PostgreSQL: "canceling statement due to lock timeout".
    text = str(error).lower()
    return "locked" in text or "busy" in text or "lock timeout" in text


class ActWriter:
    """One thread writes every act: it takes all acts waiting, runs each in a savepoint of
    one transaction and commits once. A database locked by an import is waited for."""

    IDLE_S = 30.0  # the thread ends when idle this long and starts again on demand
    MAX_BATCH = 256

    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s
        self.jobs: queue.Queue[_Job] = queue.Queue()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def submit(self, ctx: acts.ActContext, run: Callable[[], acts.Outcome]) -> acts.Outcome:
        job = _Job(ctx, run)
        self.jobs.put(job)
        self._ensure_thread()
        if not job.done.wait(self.wait_s + 30):
            raise DatabaseBusy("the act writer did not answer in time")
        if job.error is not None:
            raise job.error
        assert job.outcome is not None
        return job.outcome

    def _ensure_thread(self) -> None:
        with self.lock:
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._loop, name="act-writer", daemon=True)
                self.thread.start()

    def _loop(self) -> None:
        try:
            while True:
                try:
                    first = self.jobs.get(timeout=self.IDLE_S)
                except queue.Empty:
                    with self.lock:
                        if self.jobs.empty():
                            self.thread = None
                            return
                    continue
                self._write([first, *self._more()])
        finally:
            if database.obj is not None:
                database.close()  # this thread's connection

    def _more(self) -> list[_Job]:
        found: list[_Job] = []
        while len(found) < self.MAX_BATCH:
            try:
                found.append(self.jobs.get_nowait())
            except queue.Empty:
                break
        return found

    def _write(self, batch: list[_Job]) -> None:
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                with write_transaction():
                    for job in batch:
                        self._run_one(job)
                break
            except peewee.OperationalError as error:
                self._undo(batch)
                if not _locked(error) or time.monotonic() > deadline:
                    self._fail(batch, DatabaseBusy(str(error)))
                    return
                time.sleep(0.05)
            except Exception as error:  # a failed commit: nothing of the batch is stored
                log.exception("writing %d acts failed", len(batch))
                self._undo(batch)
                self._fail(batch, error)
                return
        for job in batch:
            job.done.set()

    @staticmethod
    def _run_one(job: _Job) -> None:
        job.outcome, job.error = None, None
        job.ctx.after.clear()
        try:
            with database.atomic():  # a savepoint: one refused act leaves the others
                job.outcome = job.run()
        except peewee.OperationalError:
            raise  # the database itself (locked, I/O): the whole batch is retried or fails
        except Exception as error:  # this act only: its savepoint is rolled back
            if not isinstance(error, acts.ActRefused | peewee.IntegrityError):
                log.exception("recording an act failed")
            acts.run_all(job.ctx.undo)
            job.ctx.undo.clear()
            job.error = error

    @staticmethod
    def _undo(batch: list[_Job]) -> None:
        for job in batch:
            acts.run_all(job.ctx.undo)
            job.ctx.undo.clear()
            job.ctx.after.clear()

    @staticmethod
    def _fail(batch: list[_Job], error: BaseException) -> None:
        for job in batch:
            job.outcome, job.error = None, error
            job.done.set()
