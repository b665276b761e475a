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
# The folders otmetka.daemon.exchange.inbox moves imported (DONE) and refused (QUARANTINE)
# files into.
INBOX_SUBFOLDERS = ("done", "quarantine")


def private_dir(folder: Path) -> Path:
    """Create `folder` if needed and make it owner-only (mkdir's mode obeys the umask)."""
    new_private_dirs(folder)
    _chmod(folder, PRIVATE_DIR)
    return folder


def new_private_dirs(folder: Path) -> Path:
    """Create `folder` and its missing parents, each owner-only; folders already there keep
    their mode (one the operator chose for `--out` is theirs)."""
    missing = []
    step = folder
    while not step.exists() and step != step.parent:
        missing.append(step)
        step = step.parent
    for new in reversed(missing):
        try:
            new.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:  # made meanwhile by another process
            continue
        _chmod(new, PRIVATE_DIR)  # the umask can only take bits away; this sets them exactly
    return folder


def _chmod(path: Path, mode: int) -> None:
    try:
        if path.stat().st_mode & 0o777 != mode:
            os.chmod(path, mode)
    except PermissionError:  # not ours (a shared mount): say so, do not stop the work
        log.warning("cannot make %s owner-only (mode %o): not its owner", path, mode)


def secure_private_paths(config: Config) -> None:
    """var/, the backups, the extracts, the one-time lists, the site secret and the inbox's
    done/ and quarantine/: owner-only.

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
    _secure_inbox(config)


def _secure_inbox(config: Config) -> None:
    """The inbox's done/ and quarantine/ keep every upstream file, imported or refused: made
    owner-only before the first file goes there. An inbox the operator made keeps its mode
    (a group may drop files in it); one otmetka makes is owner-only."""
    inbox = config.paths.inbox_dir
    if config.source.kind != "inbox" and not inbox.is_dir():
        return
    new_private_dirs(inbox)
    for name in INBOX_SUBFOLDERS:
        private_dir(inbox / name)


def private_file(path: Path) -> IO[bytes]:
    """A new file, owner-only from its first byte (not chmod-ed after the umask made it)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    return os.fdopen(descriptor, "wb")
