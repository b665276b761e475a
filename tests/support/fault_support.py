"""What the fault tests of tests/system share: the command line run as a process, the
database file of a config, and a small file system to fill."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from otmetka.daemon.core.config import Config
from tests.support.sync_support import OTMETKA, integrity


def run_otmetka(config: Path, *args: str, **options: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OTMETKA, "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        **options,
    )


def database_file(config: Config) -> Path:
    path = config.database_path()
    assert path is not None
    return path


def config_integrity(config: Config) -> str:
    return integrity(database_file(config))


@contextlib.contextmanager
def small_file_system(folder: Path, size_mb: int) -> Iterator[Path]:
    """A tmpfs of `size_mb` at `folder` (the test machines run as root)."""
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert mounted.returncode == 0, f"cannot mount a tmpfs (root needed): {mounted.stderr}"
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill_file_system(folder: Path, leave: int) -> Path:
    """Fill the file system to the last byte, then free `leave` bytes."""
    filler = folder / "filler.bin"
    chunk = b"\0" * 65536
    # suppress outermost: closing the file flushes what the last write left and fails too
    with contextlib.suppress(OSError), filler.open("wb") as handle:
        while True:
            handle.write(chunk)
            handle.flush()
    with filler.open("r+b") as handle:
        handle.truncate(max(0, filler.stat().st_size - leave))
    return filler
