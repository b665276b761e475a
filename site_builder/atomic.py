"""Writing a file all or nothing: what a reader, a mirror or a restart after a power cut sees
is the old file or the new one, never half of one. Every file otmetka writes goes through here.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def atomic_writer(path: Path, mode: int = 0o644) -> Iterator[BinaryIO]:
    """A binary file to write `path` through, for content too large to hold in memory.

    Temp file in the same folder, fsync, rename over on a clean exit; on an error the temp
    file is removed and `path` is untouched. `mode` is set before the rename, so a private
    file (0o600) is never readable by others, not even for a moment."""
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(handle, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp_name, mode)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write `data` to `path` all or nothing (see `atomic_writer`)."""
    with atomic_writer(path, mode) as out:
        out.write(data)


def write_new(path: Path, data: bytes, mode: int = 0o644, *, sync: bool = True) -> None:
    """Create `path`, which must not exist (a fresh random name), holding `data`; fsynced
    unless `sync` is false (the caller then syncs it with `fsync_files` before using it).

    No temp file and rename of its own: the caller renames it into place, and a file left
    half-written by a crash keeps its hidden name, which the next build's tidy-up removes."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(descriptor, mode)  # whatever the umask
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view) :]
        if sync:
            os.fsync(descriptor)
        else:
            _start_writing_out(descriptor)
    except BaseException:
        os.close(descriptor)
        path.unlink(missing_ok=True)
        raise
    os.close(descriptor)


def _start_writing_out(descriptor: int) -> None:
    """Have the kernel begin writing the file to disk now, without waiting for it: left to
    itself it would wait up to half a minute, and the sync at the end of a build would then
    write every page at once. (On Linux, POSIX_FADV_DONTNEED starts the write-back of dirty
    pages and drops only those already clean.)"""
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)


def fsync_files(paths: Iterable[Path]) -> None:
    """Make files already written and closed survive a power cut. Thousands written first
    and synced after cost a fraction of an fsync each: the kernel has begun writing them
    out meanwhile, and one journal commit covers many."""
    for path in paths:
        _fsync_file(path)


def _fsync_file(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in `folder` survive a power cut."""
    _fsync_file(folder)  # a folder opens read-only and syncs as a file does
