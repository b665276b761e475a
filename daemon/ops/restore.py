"""`otmetka restore FILE`: checking a backup, then putting it in place.

It takes either kind of backup (otmetka.daemon.ops.backup) and checks everything before
touching anything (the manifest, every hash, the integrity of the database copy, a schema not
newer than this otmetka) and refuses a damaged or truncated file with a message saying so.
Then it sets the current database aside as `<database>.before-restore-<time>`, puts the
restored one in place with an atomic rename (the site secret likewise), and marks every page
for a rebuild: the restored manifest describes a site that may no longer be the one in
output/. On PostgreSQL the current rows are copied aside into `paths.backup_dir` and replaced
by the backup's in one transaction, which commits only once that copy is complete.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import tarfile
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otmetka.daemon.core.config import Config
from otmetka.daemon.core.errors import OtmetkaError
from otmetka.daemon.core.pidfile import daemon_stopped
from otmetka.daemon.core.private import PRIVATE_FILE, private_dir, private_file
from otmetka.daemon.core.progress import Reporter
from otmetka.daemon.ops import backup, dbcopy
from otmetka.daemon.ops.backup import (
    ARCHIVE_FORMAT,
    ARCHIVE_VERSION,
    BACKUP_SUFFIX,
    CHUNK,
    DATABASE,
    MANIFEST,
    SECRET,
    SQLITE_MAGIC,
    copy_database,
)
from otmetka.db import build_state, close_database, journal, write_transaction
from otmetka.db.migrations import LATEST_VERSION
from otmetka.site_builder.atomic import fsync_dir, write_atomic
from otmetka.site_builder.workers import worker_pool

# Opens the project on a database (runtime.open_project).
Opener = Callable[[Config], None]

log = logging.getLogger("otmetka.backup")


class DamagedBackup(OtmetkaError):
    """The file is not a complete, intact otmetka backup; nothing was changed."""


# --- checking a backup -------------------------------------------------------------------------


@dataclass
class CheckedBackup:
    """A backup unpacked into a staging folder and checked: safe to put in place."""

    database: Path
    secret: Path | None
    schema_version: int
    created_at: str
    kind: str  # "archive" or "database copy"


def _damaged(path: Path, why: str) -> DamagedBackup:
    return DamagedBackup(
        f"{path}: not an intact otmetka backup ({why}); nothing was changed. "
        "Take another backup file (an older nightly copy in paths.backup_dir, or the "
        "off-site copy)"
    )


def _read_manifest(path: Path, archive: tarfile.TarFile) -> dict[str, Any]:
    first = archive.next()
    if first is None or first.name != MANIFEST or not first.isfile():
        raise _damaged(path, f"{MANIFEST} is not its first member")
    handle = archive.extractfile(first)
    assert handle is not None
    try:
        manifest = json.loads(handle.read(1024 * 1024))
    except ValueError:
        raise _damaged(path, f"{MANIFEST} is not JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != ARCHIVE_FORMAT:
        raise _damaged(path, f"{MANIFEST} is not an otmetka backup manifest")
    if manifest.get("version") != ARCHIVE_VERSION:
        raise _damaged(path, f"backup format version {manifest.get('version')!r} is unknown")
    members = manifest.get("members")
    if not isinstance(members, dict) or DATABASE not in members:
        raise _damaged(path, f"{MANIFEST} lists no database")
    return manifest


def _unpack(path: Path, staging: Path) -> dict[str, Any]:
    """Every member into `staging`, each checked against the manifest."""
    with tarfile.open(path, mode="r:gz") as archive:
        manifest = _read_manifest(path, archive)
        expected: dict[str, Any] = manifest["members"]
        seen: set[str] = set()
        while (info := archive.next()) is not None:
            if info.name not in expected or info.name in seen or not info.isfile():
                raise _damaged(path, f"unexpected member {info.name!r}")
            _check_member(path, archive, info, expected[info.name], staging / info.name)
            seen.add(info.name)
        missing = sorted(set(expected) - seen)
        if missing:
            raise _damaged(path, f"missing {', '.join(missing)}: the file is cut off")
    return manifest


def _check_member(
    path: Path, archive: tarfile.TarFile, info: tarfile.TarInfo, expected: Any, target: Path
) -> None:
    source = archive.extractfile(info)
    assert source is not None
    digest, size = hashlib.sha256(), 0
    with private_file(target) as out:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    wanted = expected if isinstance(expected, dict) else {}
    if size != wanted.get("size") or digest.hexdigest() != wanted.get("sha256"):
        raise _damaged(path, f"{info.name} does not match the SHA-256 in {MANIFEST}")


def _check_database(path: Path, database: Path) -> int:
    """integrity_check on the copy; its schema version, refused if newer than ours."""
    try:
        with contextlib.closing(sqlite3.connect(database)) as conn:
            verdict = conn.execute("PRAGMA integrity_check").fetchone()[0]
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.DatabaseError as error:
        raise _damaged(path, f"the database in it cannot be read: {error}") from None
    if verdict != "ok":
        raise _damaged(path, f"the database in it fails its integrity check: {verdict}")
    if version > LATEST_VERSION:
        raise OtmetkaError(
            f"{path}: the database in it has schema version {version}, newer than this "
            f"otmetka ({LATEST_VERSION}); upgrade otmetka first. Nothing was changed"
        )
    return version


def check_backup(path: Path, staging: Path) -> CheckedBackup:
    """Unpack `path` into `staging` and check all of it; raises DamagedBackup."""
    if not path.is_file():
        raise OtmetkaError(f"{path}: no such file; give the backup to restore")
    with path.open("rb") as handle:
        head = handle.read(len(SQLITE_MAGIC))
    if head == SQLITE_MAGIC:  # a nightly copy: the database alone
        database = staging / DATABASE
        shutil.copyfile(path, database)
        version = _check_database(path, database)
        return CheckedBackup(database, None, version, "", "database copy")
    try:
        manifest = _unpack(path, staging)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        if isinstance(error, OSError) and error.errno is not None:
            raise  # a real I/O problem (disk full while unpacking), not a damaged file
        raise _damaged(path, f"damaged or truncated: {error}") from None
    version = _check_database(path, staging / DATABASE)
    if manifest.get("schema_version") != version:
        raise _damaged(path, "the schema version in the manifest does not match the database")
    secret = staging / SECRET if (staging / SECRET).is_file() else None
    return CheckedBackup(
        staging / DATABASE, secret, version, str(manifest.get("created_at", "")), "archive"
    )


# --- `otmetka restore` -------------------------------------------------------------------------


@dataclass
class RestoreResult:
    source: Path
    database: str  # the file, or the server's URL without its password
    schema_version: int
    kind: str
    set_aside: list[Path] = field(default_factory=list)
    secret_restored: bool = False

    def summary(self) -> str:
        aside = ", ".join(str(p) for p in self.set_aside) or "nothing (there was none)"
        secret = (
            "the site secret too"
            if self.secret_restored
            else "the site secret kept as it was (the backup holds none or the same)"
        )
        return (
            f"restored {self.database} from {self.source} ({self.kind}, schema "
            f"{self.schema_version}); {secret}; previous copies kept: {aside}. "
            "Run `otmetka build` now: every page is rebuilt from the restored data"
        )


def _aside_name(path: Path, now: dt.datetime) -> Path:
    return path.with_name(f"{path.name}.before-restore-{now:%Y%m%d-%H%M%S}")


def _set_aside_database(database: Path, now: dt.datetime) -> Path | None:
    """Copy the current database (with what its WAL holds) aside, then empty its WAL."""
    if not database.is_file():
        return None
    aside = _aside_name(database, now)
    copy_database(database, aside)
    with contextlib.closing(sqlite3.connect(database)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return aside


def _install_database(staged: Path, database: Path) -> None:
    """WAL and SHM of the old database go first (checkpointed: they hold nothing), so
    they can never be replayed onto the restored file; then one atomic rename."""
    for suffix in ("-wal", "-shm", "-journal"):
        database.with_name(database.name + suffix).unlink(missing_ok=True)
    os.chmod(staged, PRIVATE_FILE)
    os.replace(staged, database)
    fsync_dir(database.parent)


def _install_secret(staged: Path, secret_file: Path, now: dt.datetime) -> tuple[bool, Path | None]:
    new = staged.read_bytes()
    if secret_file.is_file() and secret_file.read_bytes() == new:
        return False, None
    private_dir(secret_file.parent)
    aside = None
    if secret_file.is_file():
        aside = _aside_name(secret_file, now)
        shutil.copy2(secret_file, aside)
        os.chmod(aside, PRIVATE_FILE)
    write_atomic(secret_file, new, mode=PRIVATE_FILE)
    fsync_dir(secret_file.parent)
    return True, aside


def _rebuild_everything(config: Config, reopen: Opener) -> None:
    """The restored manifest describes pages output/ may no longer hold: forget it, and
    mark everyone dirty so the next build renders and writes every page."""
    reopen(config)
    with write_transaction():
        build_state.forget_pages(list(build_state.manifest()))
        journal.mark_dirty("all", ["*"])


def restore(
    config: Config, path: Path, *, reopen: Opener, now: dt.datetime | None = None
) -> RestoreResult:
    """Check `path` completely, then put its database (and site secret) in place.

    `reopen` opens the project on the restored database (the entry point passes
    `runtime.open_project`: this module sits below the runtime)."""
    moment = (now or dt.datetime.now(dt.UTC)).astimezone(config.school.zone())
    private_dir(config.paths.var_dir)
    database = config.database_path()
    staging = database.parent if database is not None else private_dir(config.paths.backup_dir)
    staging.mkdir(parents=True, exist_ok=True)
    with (
        daemon_stopped(config),
        tempfile.TemporaryDirectory(dir=staging, prefix=".otmetka-restore-") as work,
    ):
        checked = check_backup(path, Path(work))
        if database is None:
            result = _restore_onto_server(config, checked, path, moment, reopen)
        else:
            result = _restore_file(checked, path, database, moment)
        _restore_secret(config, checked, result, moment)
        _rebuild_everything(config, reopen)
    log.info("%s", result.summary())
    return result


def _restore_file(
    checked: CheckedBackup, path: Path, database: Path, moment: dt.datetime
) -> RestoreResult:
    """SQLite: the current file set aside, the checked copy renamed into its place."""
    close_database()  # this process's own connection to the database being replaced
    result = RestoreResult(path, str(database), checked.schema_version, checked.kind)
    aside = _set_aside_database(database, moment)
    result.set_aside += [aside] if aside else []
    _install_database(checked.database, database)
    close_database()
    return result


def _restore_onto_server(
    config: Config, checked: CheckedBackup, path: Path, moment: dt.datetime, reopen: Opener
) -> RestoreResult:
    """PostgreSQL: a copy of what it holds now kept in paths.backup_dir, then every row
    replaced by the backup's in one transaction (a failure changes nothing)."""
    dbcopy.migrate_file(checked.database)  # a backup from an older otmetka: this schema
    reopen(config)  # the server's schema up to date too
    close_database()
    target = dbcopy.safe_url(config.database.url)
    result = RestoreResult(path, target, checked.schema_version, checked.kind)
    folder = private_dir(config.paths.backup_dir)
    aside = folder / f"before-restore-{moment:%Y%m%d-%H%M%S}{BACKUP_SUFFIX}"
    with tempfile.TemporaryDirectory(dir=folder, prefix=".otmetka-aside-") as rows:
        _replace_beside_aside(config, checked.database, Path(rows), aside)
    result.set_aside.append(aside)
    return result


def _replace_beside_aside(config: Config, staged: Path, rows: Path, aside: Path) -> None:
    """The rows there now are read out in one snapshot (quick: the server's COPY text into
    files), then made into the SQLite file `aside` in a process of its own while this one
    copies the backup in: the two cores share the work, and the replacing transaction
    commits only once that file is complete and checked, or rolls back. The process is
    waited for even when the replace fails, so the file is whole or not there."""
    url, timeout = config.database.url, config.database.busy_timeout_ms
    read = dbcopy.read_out(url, timeout, rows)
    private_file(aside).close()
    with worker_pool(1) as pool:
        writing = pool.submit(backup.file_from_rows, read, str(aside), dbcopy.safe_url(url))
        try:
            dbcopy.replace_database(config, staged, Reporter(quiet=True), writing.result)
        except BaseException:
            with contextlib.suppress(Exception):
                writing.result()  # its own failure removed the file; the replace's is told
            raise


def _restore_secret(
    config: Config, checked: CheckedBackup, result: RestoreResult, moment: dt.datetime
) -> None:
    if checked.secret is None:
        return
    restored, aside = _install_secret(checked.secret, config.site.secret_file, moment)
    result.secret_restored = restored
    result.set_aside += [aside] if aside else []
