"""The pid file and the status file of `otmetka run`, and how `otmetka status` reads them.

The pid file is held with an exclusive `flock` for the life of the daemon: the kernel drops
the lock when the process dies, however it dies, so "a pid file exists but nobody holds its
lock" reliably means the daemon was killed or crashed (a recycled pid cannot fool it). A
clean stop removes the pid file. The status file is JSON, rewritten atomically whenever a
job starts or ends, so an operator (or `otmetka status`) sees what each job last did.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otmetka.daemon.core.config import Config
from otmetka.daemon.core.errors import OtmetkaError
from otmetka.site_builder.atomic import write_atomic

PID_NAME = "otmetka.pid"
STATUS_NAME = "otmetka-status.json"
_LOCK_PATIENCE_S = 2.0  # `otmetka status` holds the lock for a moment while it probes


def pid_path(config: Config) -> Path:
    return config.paths.var_dir / PID_NAME


def status_path(config: Config) -> Path:
    return config.paths.var_dir / STATUS_NAME


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


class PidLock:
    """One daemon per project: the second `otmetka run` stops with a clear message."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + _LOCK_PATIENCE_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise OtmetkaError(
                        f"otmetka run is already running (pid {_read_pid(self.path)}, "
                        f"{self.path}); stop it first, or use another config"
                    ) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None


@contextlib.contextmanager
def daemon_stopped(config: Config) -> Iterator[None]:
    """Hold the daemon's pid lock for a job that must not run beside it (a restore, a
    secret rotation): refuses while `otmetka run` runs, and keeps it from starting."""
    lock = PidLock(pid_path(config))
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


class StatusFile:
    """What the running daemon is doing, for `otmetka status` and for people."""

    def __init__(self, path: Path, endpoint: str) -> None:
        self.path = path
        self.data: dict[str, Any] = {
            "pid": os.getpid(),
            "state": "running",
            "started_at": _now(),
            "endpoint": endpoint,
            "current": None,
            "jobs": {},
        }

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.data, ensure_ascii=False, indent=2)
        write_atomic(self.path, text.encode("utf-8"))

    def job_started(self, name: str) -> None:
        self.data["current"] = {"job": name, "since": _now()}
        self.write()

    def job_finished(self, name: str, ok: bool, message: str) -> None:
        job = self.data["jobs"].setdefault(name, {})
        job["last_run_at"] = _now()
        if ok:
            job.update(last_ok_at=job["last_run_at"], last_result=message)
        else:
            job.update(last_error_at=job["last_run_at"], last_error=message)
        job["ok"] = ok
        self.data["current"] = None
        self.write()

    def idle(self) -> None:
        self.data["current"] = None
        self.write()

    def stopped(self) -> None:
        self.data.update(state="stopped", stopped_at=_now(), current=None)
        self.write()


@dataclass
class DaemonState:
    running: bool
    expected: bool  # a pid file is there: the daemon should be running
    line: str
    status: dict[str, Any] | None


def read_status(config: Config) -> dict[str, Any] | None:
    try:
        data = json.loads(status_path(config).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _lock_is_held(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops a lock we may have taken
    return False


def probe(config: Config) -> DaemonState:
    """Is `otmetka run` up? Down after a crash? Stopped on purpose? Never started?"""
    path = pid_path(config)
    status = read_status(config)
    if _lock_is_held(path):
        pid = _read_pid(path)
        current = (status or {}).get("current")
        busy = f"; now: {current['job']} since {current['since']}" if current else ""
        started = (status or {}).get("started_at", "?")
        return DaemonState(
            True, True, f"daemon: running (pid {pid}, since {started}){busy}", status
        )
    if path.exists():
        return DaemonState(
            False,
            True,
            f"daemon: DOWN: {path} was left by pid {_read_pid(path)}, which is not running "
            "(killed, crashed or power lost); start it again with `otmetka run`",
            status,
        )
    if status and status.get("state") == "stopped":
        return DaemonState(
            False, False, f"daemon: stopped cleanly at {status.get('stopped_at')}", status
        )
    return DaemonState(False, False, "daemon: not running (never started here)", status)
