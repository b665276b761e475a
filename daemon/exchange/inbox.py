"""The inbox folder: files dropped by a person, a USB stick or a file-sync tool.

A file is taken only when it is complete: its size and modification time (for a folder,
those of every file in it) have not changed for `source.inbox_settle_s`, and its name is
not a temporary one (`.part`, `.tmp`, `.crdownload`, `~$…`, hidden files…), which is how
browsers, Office and sync tools write a file before renaming it into place. Files are
taken in name order, so numbered deltas apply in sequence.

An imported file moves to `inbox/done/`; a rejected one to `inbox/quarantine/` with
`<name>.error.txt` beside it saying what was wrong. If the daemon dies between the import
and the move, the file is imported again on restart, which the importer recognises as
already imported, and then moved.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import peewee
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from otmetka.daemon.core.config import Config
from otmetka.daemon.core.errors import OtmetkaError
from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.core.private import private_dir
from otmetka.daemon.exchange import files, importer, oneroster, oneroster_csv
from otmetka.daemon.exchange.reader import BatchError

log = logging.getLogger("otmetka.sources.inbox")

SOURCE = "inbox"
DONE = "done"
QUARANTINE = "quarantine"
TEMPORARY_SUFFIXES = (
    ".tmp",
    ".temp",
    ".part",
    ".partial",
    ".crdownload",
    ".download",
    ".filepart",
    ".swp",
    ".lock",
    ".error.txt",
    "~",
)
ACCEPTED = (
    ".json, .jsonl, .json.gz, .zip (exchange files or a OneRoster bundle), a folder, "
    ".xlsx (a class list exported by `otmetka lists export`)"
)

Progress = Callable[[int], None]
Signature = tuple[Any, ...]


def is_candidate(path: Path) -> bool:
    name = path.name
    if name in (DONE, QUARANTINE) or name.startswith((".", "~")):
        return False
    return not name.lower().endswith(TEMPORARY_SUFFIXES)


def candidates(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if is_candidate(path))


def signature(path: Path) -> Signature | None:
    """What changes while a file is still being written; None if it vanished."""
    try:
        if path.is_dir():
            return tuple(
                (str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns)
                for p in sorted(path.rglob("*"))
                if p.is_file()
            )
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_size, stat.st_mtime_ns)


class Settler:
    """Holds each candidate back until its signature has stayed the same for `settle_s`."""

    def __init__(self, settle_s: float) -> None:
        self.settle_s = settle_s
        self.seen: dict[Path, tuple[Signature, float]] = {}
        self.failed: dict[Path, Signature] = {}  # left in place after an unexpected error

    def ready(self, paths: list[Path], now: float) -> list[Path]:
        ready = []
        for path in paths:
            current = signature(path)
            if current is None or self.failed.get(path) == current:
                continue
            known = self.seen.get(path)
            if known is None or known[0] != current:
                self.seen[path] = (current, now)
            if now - self.seen[path][1] >= self.settle_s:
                ready.append(path)
        self.seen = {p: v for p, v in self.seen.items() if p in paths}
        return ready

    @property
    def pending(self) -> bool:
        return bool(self.seen)

    def forget(self, path: Path) -> None:
        self.seen.pop(path, None)


# --- importing one dropped file ---------------------------------------------------------


@dataclass
class InboxOutcome:
    name: str
    ok: bool
    message: str
    records: int = 0
    moved_to: Path | None = None

    @property
    def changed(self) -> bool:
        return self.records > 0


@dataclass
class _Done:
    records: int = 0
    lines: list[str] = field(default_factory=list)


def _import_exchange(path: Path, rules: MarkRules, progress: Progress | None) -> _Done:
    done = _Done()
    imported: list[str] = []
    batches = files.exchange_batches(path)
    try:
        for name, raw in batches:
            result = importer.import_batch(raw, rules, source=SOURCE, progress=progress)
            done.records += result.records
            done.lines.append(result.summary())
            imported.append(name)
    except BatchError as error:
        if not imported:
            raise
        raise BatchError(
            path.name,
            [
                f"{path.name}: stopped at a bad member; the members before it were imported "
                f"and stay imported ({', '.join(imported)}); importing the fixed archive "
                "again skips them",
                *error.problems,
            ],
        ) from None
    return done


def _import_roster(
    config: Config, path: Path, rules: MarkRules, progress: Progress | None
) -> _Done:
    result = oneroster.import_bundle(
        path, rules, tz=config.school.tz, school_id=config.school.school_id, progress=progress
    )
    return _Done(result.records, [result.summary()])


# Files a feature above the exchange reads (a class list edited by its teacher, .xlsx),
# by lower-case suffix: registered through the runtime's wiring, so the inbox never imports
# them. A handler returns (records changed, summary lines).
FileHandler = Callable[[Config, Path, MarkRules], tuple[int, list[str]]]
_FILE_HANDLERS: dict[str, FileHandler] = {}


def register_file_handler(suffix: str, handler: FileHandler) -> None:
    """Hand inbox files ending in `suffix` (e.g. ".xlsx") to `handler`."""
    _FILE_HANDLERS[suffix.lower()] = handler


def import_path(
    config: Config, path: Path, rules: MarkRules, progress: Progress | None = None
) -> _Done:
    handler = _FILE_HANDLERS.get(path.suffix.lower())
    if handler is not None:
        return _Done(*handler(config, path, rules))
    kind = files.kind_of(path)
    if kind == "oneroster" or (kind == "zip" and oneroster_csv.is_bundle_zip(path)):
        return _import_roster(config, path, rules, progress)
    if kind is None:
        raise BatchError(path.name, [f"{path.name}: not a file otmetka reads ({ACCEPTED})"])
    return _import_exchange(path, rules, progress)


def _free_name(folder: Path, name: str) -> Path:
    target = folder / name
    if not target.exists():
        return target
    base, dot, rest = name.partition(".")
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    for n in range(1, 1000):
        target = folder / f"{base}-{stamp}{f'-{n}' if n > 1 else ''}{dot}{rest}"
        if not target.exists():
            return target
    raise OtmetkaError(f"{folder}: too many files named like {name}; clean the folder up")


def move_aside(path: Path, folder: Path) -> Path:
    private_dir(folder)  # done/ and quarantine/ hold upstream files: owner-only
    target = _free_name(folder, path.name)
    os.replace(path, target)
    return target


def _quarantine(path: Path, message: str) -> Path:
    target = move_aside(path, path.parent / QUARANTINE)
    note = target.with_name(target.name + ".error.txt")
    note.write_text(
        f"{message}\n\nFix the file and drop it into the inbox folder again; nothing of it was "
        "imported unless the message says otherwise.\n",
        encoding="utf-8",
    )
    return target


def process(
    config: Config, path: Path, rules: MarkRules, progress: Progress | None = None
) -> InboxOutcome:
    """Import one dropped file or folder, then move it to done/ or quarantine/."""
    try:
        done = import_path(config, path, rules, progress)
    except (BatchError, OtmetkaError) as error:
        target = _quarantine(path, str(error))
        log.warning("inbox: %s rejected, moved to %s: %s", path.name, target, error)
        return InboxOutcome(path.name, False, str(error), moved_to=target)
    target = move_aside(path, path.parent / DONE)
    message = "; ".join(done.lines) or f"{path.name}: nothing to import"
    log.info("inbox: %s", message)
    return InboxOutcome(path.name, True, message, done.records, target)


# --- the folder as a whole ------------------------------------------------------------------


class Inbox:
    """The inbox of one project: which files are complete, and importing them in order."""

    def __init__(self, config: Config, rules: MarkRules) -> None:
        self.config = config
        self.rules = rules
        self.folder = config.paths.inbox_dir
        self.settler = Settler(config.source.inbox_settle_s)

    def tick(self, now: float | None = None) -> list[InboxOutcome]:
        moment = time.monotonic() if now is None else now
        outcomes = []
        for path in self.settler.ready(candidates(self.folder), moment):
            self.settler.forget(path)
            try:
                outcomes.append(process(self.config, path, self.rules))
            except peewee.OperationalError:
                raise  # database locked or disk full: the file stays and is tried again
            except Exception:
                # Our fault, not the file's: leave it, and do not retry it until it changes.
                self.settler.failed[path] = signature(path) or ()
                raise
        return outcomes

    @property
    def pending(self) -> bool:
        return self.settler.pending


def process_now(
    config: Config, rules: MarkRules, progress: Progress | None = None
) -> list[InboxOutcome]:
    """`otmetka sync --inbox`: import what is complete in the inbox now (one settle wait)."""
    inbox = Inbox(config, rules)
    start = time.monotonic()
    inbox.settler.ready(candidates(inbox.folder), start)
    if inbox.pending and inbox.settler.settle_s:
        time.sleep(inbox.settler.settle_s)
    return inbox.tick(start + inbox.settler.settle_s)


# --- watching -----------------------------------------------------------------------------


class _Poke(FileSystemEventHandler):
    def __init__(self, folder: Path, wake: threading.Event) -> None:
        self.folder = folder
        self.ignored = (folder / DONE, folder / QUARANTINE)
        self.wake = wake
        self.poked = threading.Event()

    def on_any_event(self, event: FileSystemEvent) -> None:
        path = Path(os.fsdecode(event.src_path))
        if path == self.folder:
            return  # the folder's own mtime: the file inside reports itself
        if any(path == folder or folder in path.parents for folder in self.ignored):
            return  # our own moves into done/ and quarantine/
        self.poked.set()
        self.wake.set()


class InboxWatcher:
    """watchdog on the inbox: any change wakes the daemon, which then checks for complete
    files (the daemon also rescans now and then: events get lost on some mounts)."""

    def __init__(self, folder: Path, wake: threading.Event) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.handler = _Poke(folder, wake)
        self.observer = Observer()
        self.observer.schedule(self.handler, str(folder), recursive=True)

    def start(self) -> None:
        self.observer.start()

    def take_poke(self) -> bool:
        poked = self.handler.poked.is_set()
        self.handler.poked.clear()
        return poked

    def stop(self) -> None:
        self.observer.stop()
        self.observer.join(timeout=5)
