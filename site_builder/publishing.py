"""Writing the public folder so that it tells an observer nothing about its contents: every
file and folder of the site carries one fixed mtime (a mirror keeps timestamps, so they must
not show the write order or the time of each write), and the files of a build reach their
names in an order drawn with the system's CSPRNG (not class by class).

A file is first staged: written in full under a hidden random name beside its target
(`atomic.write_new`), then committed: synced to disk with the rest of its build, given the
fixed mtime and renamed over the target. A reader sees the old file or the new one, never
half of one, and never a new file with a telling mtime. Hidden names are never served
(`otmetka serve` refuses dotfiles) and a staged file a killed build left is removed by the
next build's tidy-up.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from otmetka.site_builder.atomic import fsync_files, write_new

FIXED_TIME = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
FIXED_MTIME = int(FIXED_TIME.timestamp())
# Starts like atomic.py's temp files, so the build's tidy-up treats both alike.
STAGE_PREFIX = ".tmp-stage-"

Move = tuple[Path, Path]  # (staged file, target)


def stage(target: Path, data: bytes) -> Path:
    """Write `data` to a hidden random name beside `target`; returns that name. Not synced
    yet: `commit_shuffled` syncs every staged file before the first rename."""
    staged = target.with_name(f"{STAGE_PREFIX}{secrets.token_hex(8)}{target.suffix}")
    write_new(staged, data, sync=False)
    return staged


def pin(path: Path | str) -> None:
    """Give one file or folder the fixed mtime."""
    os.utime(path, (FIXED_MTIME, FIXED_MTIME), follow_symlinks=False)


def commit(staged: Path, target: Path) -> None:
    """Give a staged file the fixed mtime, rename it over `target`, and give the folder
    (whose mtime the rename just set) the fixed mtime again."""
    pin(staged)
    os.replace(staged, target)
    pin(target.parent)


def commit_shuffled(moves: Iterable[Move]) -> None:
    """Commit every staged file, in an order drawn with the CSPRNG."""
    order = list(moves)
    fsync_files(staged for staged, _target in order)  # on disk before any is published
    secrets.SystemRandom().shuffle(order)
    for staged, target in order:
        commit(staged, target)


def discard(moves: Iterable[Move]) -> None:
    """Remove staged files that will not be committed (a build that failed)."""
    for staged, _target in moves:
        staged.unlink(missing_ok=True)


def write_public(target: Path, data: bytes) -> None:
    """Write one file of the site all or nothing, with the fixed mtime from the start."""
    commit_shuffled([(stage(target, data), target)])


def pin_times(folder: Path) -> None:
    """Give `folder`, and every file and folder in it, the fixed mtime (files written by
    other means, and folders whose mtime a rename just set). Hidden files are left."""
    for root, folders, files in os.walk(folder):  # faster than rglob on thousands of pages
        folders[:] = [name for name in folders if not name.startswith(".")]
        for name in files:
            if not name.startswith("."):
                pin(os.path.join(root, name))
        pin(root)
