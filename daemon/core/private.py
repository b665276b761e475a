"""Owner-only files and folders: the modes of everything private, whatever the umask."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import IO

from otmetka.daemon.core.config import Config

log = logging.getLogger("otmetka.backup")

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def private_dir(folder: Path) -> Path:
    """Create `folder` if needed and make it owner-only (mkdir's mode obeys the umask)."""
    folder.mkdir(parents=True, exist_ok=True)
    _chmod(folder, PRIVATE_DIR)
    return folder


def _chmod(path: Path, mode: int) -> None:
    try:
        if path.stat().st_mode & 0o777 != mode:
            os.chmod(path, mode)
    except PermissionError:  # not ours (a shared mount): say so, do not stop the work
        log.warning("cannot make %s owner-only (mode %o): not its owner", path, mode)


def secure_private_paths(config: Config) -> None:
    """var/, the backups, the extracts, the one-time lists and the site secret: owner-only.

    A folder that holds output/ is left alone, since the web server must reach the site.
    """
    public = config.site.output_dir.resolve()
    if not public.is_relative_to(config.paths.var_dir.resolve()):
        private_dir(config.paths.var_dir)  # before anything (the site secret) is put in it
    folders = [
        config.paths.var_dir,
        config.paths.backup_dir,
        config.paths.var_dir / "credentials",
        config.printing.extracts_dir,
    ]
    for folder in folders:
        if folder.is_dir() and not public.is_relative_to(folder.resolve()):
            _chmod(folder, PRIVATE_DIR)
    if config.site.secret_file.is_file():
        _chmod(config.site.secret_file, PRIVATE_FILE)


def private_file(path: Path) -> IO[bytes]:
    """A new file, owner-only from its first byte (not chmod-ed after the umask made it)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    return os.fdopen(descriptor, "wb")
