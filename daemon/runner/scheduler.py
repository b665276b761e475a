"""`otmetka run`: the endpoint, the scheduler and the inbox watcher in one process (and
the endpoint with the page refresh alone for `otmetka demo`).

One process and one writer: every job (pull, inbox, build, outbox, backup, deadline checks)
runs in the main thread, one after another; the endpoint answers in waitress's threads and
the watchdog thread only wakes the main loop. A job that fails is logged and recorded in
the status file, and the daemon goes on. SIGTERM or Ctrl-C stops it between two pages of a
pull (each page is one transaction), closes the endpoint and the watcher, removes the pid
file and marks the status file "stopped". A second Ctrl-C interrupts at once; the running
transaction is rolled back, so nothing is half-applied either way.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import logging.handlers
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import schedule
import waitress
from waitress import wasyncore

from otmetka.daemon import runtime
from otmetka.daemon.core import jobs, pidfile, settings
from otmetka.daemon.core.config import Config
from otmetka.daemon.core.errors import OtmetkaError
from otmetka.daemon.core.progress import Reporter
from otmetka.daemon.endpoint import app
from otmetka.daemon.exchange import http
from otmetka.daemon.exchange.inbox import Inbox, InboxWatcher
from otmetka.daemon.mail import outbox
from otmetka.daemon.ops import backup
from otmetka.db import build_state, close_database

log = logging.getLogger("otmetka.scheduler")

# --- deadline checks --------------------------------------------------------------------------

# The checks themselves are registered in core/jobs.py by the runtime's wiring (which
# open_project runs); the scheduler runs them all each `schedule.deadline_check_minutes`.


def run_deadline_checks(config: Config) -> str | None:
    lines, failures = [], []
    for name, check in jobs.DEADLINE_CHECKS.items():
        try:
            line = check(config)
        except Exception as error:  # one broken check must not hide the others
            log.exception("deadline check %s failed", name)
            failures.append(f"{name}: {error}")
            continue
        if line:
            lines.append(f"{name}: {line}")
    if failures:
        raise OtmetkaError("deadline checks failed: " + "; ".join(failures))
    return "; ".join(lines) or None


# --- backups ----------------------------------------------------------------------------------

# The nightly copy lives in ops/backup.py with `otmetka backup` and `otmetka restore`; these
# names stay here for the daemon and its tests.
BACKUP_PREFIX = backup.BACKUP_PREFIX
BACKUP_SUFFIX = backup.BACKUP_SUFFIX
backups = backup.backups
backup_due = backup.backup_due
backup_now = backup.nightly_backup


# --- the daemon -----------------------------------------------------------------------------


Job = Callable[[], str | None]


def _listening_socket(host: str, port: int) -> socket.socket:
    """Bound here rather than by waitress, so a busy port is one clear message and the
    socket is closed, not leaked."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise OtmetkaError(
            f"cannot listen on {host}:{port} ({error.strerror}); another program (otmetka "
            "serve?) uses the port: stop it or change endpoint.port"
        ) from None
    return sock


class Daemon:
    """Everything `otmetka run` runs; tests drive it with `tick()`."""

    def __init__(
        self, config: Config, *, serve: bool = True, watch: bool = True, pages_only: bool = False
    ) -> None:
        self.config = config
        self.serve = serve
        self.watch = watch and config.source.kind != "none"  # inbox also for http: USB sticks
        self.pages_only = pages_only  # the demo: no pulls, mail, backups or deadline checks
        self.stop_event = threading.Event()
        self.wake = threading.Event()
        self.lock = pidfile.PidLock(pidfile.pid_path(config))
        endpoint = f"http://{config.endpoint.host}:{config.endpoint.port}/"
        self.status = pidfile.StatusFile(pidfile.status_path(config), endpoint)
        self.inbox = Inbox(config, settings.mark_rules(config))
        self.watcher: InboxWatcher | None = None
        self.server: Any = None
        self.server_thread: threading.Thread | None = None
        self.sched = schedule.Scheduler()
        self.build_wanted = False
        self.last_scan = 0.0

    # --- starting and stopping ---

    def start(self) -> None:
        self.lock.acquire()
        try:
            runtime.open_project(self.config)
            if self.serve:
                self._start_endpoint()
            if self.watch:
                self.watcher = InboxWatcher(self.config.paths.inbox_dir, self.wake)
                self.watcher.start()
            self._plan_jobs()
            self.status.write()
        except BaseException:
            self.close()
            raise

    def _start_endpoint(self) -> None:
        self.server = waitress.create_server(
            app.create_app(self.config),
            sockets=[_listening_socket(self.config.endpoint.host, self.config.endpoint.port)],
            threads=self.config.endpoint.threads,
            ident="otmetka",
        )
        self.server_thread = threading.Thread(target=self.server.run, name="endpoint", daemon=True)
        self.server_thread.start()

    def _plan_jobs(self) -> None:
        s = self.config.schedule
        every = s.staff_refresh_seconds
        self.sched.every(every).seconds.do(self.run_job, "pages", self.pages_waiting)
        if self.pages_only:
            return
        if self.config.source.kind == "http":
            self.sched.every(s.pull_minutes).minutes.do(self.run_job, "pull", self.pull)
        self.sched.every(s.outbox_minutes).minutes.do(self.run_job, "outbox", self.flush_outbox)
        self.sched.every(1).minutes.do(self.run_job, "backup", self.backup_if_due)
        self.sched.every(s.deadline_check_minutes).minutes.do(
            self.run_job, "deadlines", lambda: run_deadline_checks(self.config)
        )

    def request_stop(self) -> None:
        self.stop_event.set()
        self.wake.set()

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        if self.server is not None:
            self.server.close()
            wasyncore.close_all(self.server._map)  # open keep-alive connections too
            self.server.task_dispatcher.shutdown(timeout=5)
        if self.server_thread is not None:
            self.server_thread.join(timeout=5)
        with contextlib.suppress(OSError):
            self.status.stopped()
        self.lock.release()
        close_database()

    # --- the loop ---

    def run_forever(self) -> None:
        self.sched.run_all()  # pull, push and check once at start, then on schedule
        while not self.stop_event.is_set():
            self.tick()
            self.wake.wait(timeout=1.0)
            self.wake.clear()

    def tick(self) -> None:
        self.sched.run_pending()
        self._inbox_if_needed()
        if self.build_wanted and not self.stop_event.is_set():
            self.run_job("build", self.build)

    def _inbox_if_needed(self) -> None:
        now = time.monotonic()
        poked = self.watcher.take_poke() if self.watcher is not None else False
        due = now - self.last_scan >= self.config.schedule.inbox_scan_seconds
        if self.watch and (poked or due or self.inbox.pending):
            self.last_scan = now
            self.run_job("inbox", self.take_inbox)

    def run_job(self, name: str, job: Job) -> None:
        """Run one job; its failure is logged and recorded, and never stops the daemon."""
        if self.stop_event.is_set():
            return
        self.status.job_started(name)
        try:
            message = job()
        except OtmetkaError as error:
            log.error("%s failed: %s", name, error)
            self.status.job_finished(name, False, str(error))
        except Exception as error:
            log.exception("%s failed", name)
            self.status.job_finished(name, False, f"{type(error).__name__}: {error}")
        else:
            if message:
                log.info("%s", message)
                self.status.job_finished(name, True, message)
            else:
                self.status.idle()  # a check with nothing to do leaves no trace

    # --- the jobs ---

    def pull(self) -> str:
        runtime.open_project(self.config)
        params = http.params_from_config(self.config)
        result = http.pull(params, rules=settings.mark_rules(self.config), stop=self.stop_event)
        self.build_wanted |= result.changed
        return result.summary()

    def take_inbox(self) -> str | None:
        runtime.open_project(self.config)
        outcomes = self.inbox.tick()
        self.build_wanted |= any(outcome.changed for outcome in outcomes)
        return "; ".join(outcome.message for outcome in outcomes) or None

    def pages_waiting(self) -> str | None:
        """Acts recorded by the endpoint mark pages to redo (a class teacher's control table
        shows who consented and acknowledged): the build runs right after this job, in the
        same tick. With nothing to build, the deputy heads' pages older than the latest act
        are redone here."""
        runtime.open_project(self.config)
        self.build_wanted |= build_state.any_dirty()
        return None if self.build_wanted else self.refresh_deputies()

    def build(self) -> str:
        self.build_wanted = False  # a failed build waits for the next change, not 1 s
        result = runtime.build(self.config, Reporter(quiet=True))
        deputies = self.refresh_deputies()
        return result.summary() + (f"; {deputies}" if deputies else "")

    def refresh_deputies(self) -> str | None:
        result = runtime.refresh_staff_pages(self.config)
        return f"deputy heads' pages redone: {result.written} written" if result else None

    def flush_outbox(self) -> str | None:
        runtime.open_project(self.config)
        result = outbox.flush(self.config, stop=self.stop_event)
        if result.errors:
            raise OtmetkaError(result.summary())
        return result.summary() if result.sent or result.failed else None

    def backup_if_due(self) -> str | None:
        if not backup_due(self.config, dt.datetime.now(dt.UTC)):
            return None
        return f"backup written to {backup_now(self.config)}"


# --- `otmetka run` ------------------------------------------------------------------------------


def _log_to_file(config: Config) -> logging.Handler:
    folder = config.paths.var_dir / "log"
    folder.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        folder / "otmetka.log", maxBytes=5 * 1024**2, backupCount=5, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    return handler


@contextlib.contextmanager
def _logging(config: Config) -> Iterator[None]:
    logger = logging.getLogger("otmetka")
    handler = _log_to_file(config)
    level = logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)  # a daemon says what it does; the CLI alone stays terse
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()


@contextlib.contextmanager
def _stop_signals(daemon: Daemon) -> Iterator[None]:
    def stop(signum: int, frame: FrameType | None) -> None:
        if daemon.stop_event.is_set():
            raise KeyboardInterrupt  # asked twice: stop now, the open transaction rolls back
        log.info("signal %s: stopping after the current step", signal.Signals(signum).name)
        daemon.request_stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run(config: Config, reporter: Reporter) -> None:
    """Run until SIGTERM or Ctrl-C."""
    daemon = Daemon(config)
    with _logging(config), _stop_signals(daemon):
        daemon.start()
        try:
            reporter.summary(_banner(config))
            daemon.run_forever()
        finally:
            daemon.close()
    reporter.summary("otmetka run: stopped cleanly")


def serve(config: Config) -> None:
    """`otmetka demo`: the site and its API, with the pages an act changes rebuilt as under
    `otmetka run` (but no pulls, inbox, mail, backups or deadline checks), until Ctrl-C."""
    daemon = Daemon(config, watch=False, pages_only=True)
    with _stop_signals(daemon):
        daemon.start()
        try:
            daemon.run_forever()
        finally:
            daemon.close()


def _banner(config: Config) -> str:
    pulls = (
        f"pulling {config.source.url} every {config.schedule.pull_minutes} min"
        if config.source.kind == "http"
        else "no pulls (source.kind is not http)"
    )
    return (
        f"otmetka run: serving http://{config.endpoint.host}:{config.endpoint.port}/, {pulls}, "
        f"watching {config.paths.inbox_dir}; Ctrl-C or SIGTERM stops"
    )
