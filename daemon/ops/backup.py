"""Backups: the consistent copy of the database, the nightly copies and `otmetka backup`.

Two kinds of backup share one consistent copy, always a SQLite file (SQLite's online
backup API, or one read snapshot of PostgreSQL copied table by table; the daemon and the
endpoint keep writing meanwhile; checked with `PRAGMA integrity_check`):

- the nightly one the daemon writes (`paths.backup_dir/otmetka-YYYYMMDD-HHMMSS.sqlite3`,
  the newest `schedule.backup_keep` kept): the database alone;
- `otmetka backup`: one archive (tar + gzip) holding the database, the site secret and
  `manifest.json` with the SHA-256 and size of each member and the schema version.

`otmetka restore` takes either (otmetka.daemon.ops.restore).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import os
import sqlite3
import tarfile
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import IO, Any

from otmetka.daemon.core.config import Config
from otmetka.daemon.core.errors import OtmetkaError
from otmetka.daemon.core.private import PRIVATE_FILE, private_dir, private_file
from otmetka.daemon.ops import dbcopy
from otmetka.site_builder.atomic import atomic_writer, fsync_dir
from otmetka.site_builder.workers import worker_pool

# Nightly copies of the database alone (names sort by time).
BACKUP_PREFIX = "otmetka-"
BACKUP_SUFFIX = ".sqlite3"
# `otmetka backup` archives.
ARCHIVE_FORMAT = "otmetka-backup"
ARCHIVE_VERSION = 1
ARCHIVE_SUFFIX = ".tar.gz"
MANIFEST = "manifest.json"
DATABASE = "otmetka.sqlite3"
SECRET = "site.key"
SQLITE_MAGIC = b"SQLite format 3\x00"
CHUNK = 1024 * 1024


def _temporary_beside(target: Path) -> Path:
    """Where `target` is written before its rename: the temp naming every atomic write uses,
    fixed so a file left by a crash is removed by the next try."""
    return target.with_name(f".tmp-{target.name}")


# --- the consistent copy ---------------------------------------------------------------------


def copy_database(source: Path, target: Path) -> None:
    """SQLite's online backup into a new owner-only file: a consistent copy while others
    keep writing. The copy is a single file (rollback journal, not WAL), checked, fsynced."""
    if not source.is_file():
        raise OtmetkaError(f"no database at {source}: nothing to back up (run `otmetka init`)")
    private_file(target).close()
    try:
        with (
            contextlib.closing(sqlite3.connect(source)) as src,
            contextlib.closing(sqlite3.connect(target)) as dst,
        ):
            src.backup(dst)
        _seal(target, str(source))
    except BaseException:
        target.unlink(missing_ok=True)
        raise


def consistent_copy(config: Config, target: Path) -> None:
    """The project's database as one checked SQLite file at `target`, whichever database
    the school runs on: a backup restores anywhere, a PostgreSQL school's onto SQLite too."""
    path = config.database_path()
    if path is not None:
        copy_database(path, target)
        return
    private_file(target).close()
    try:
        # The copy binds the models to the new file: in a process of its own, never under
        # the daemon's threads that keep serving from the server.
        with worker_pool(1) as pool:
            url, timeout = config.database.url, config.database.busy_timeout_ms
            pool.submit(dbcopy.copy_to_new_file, url, timeout, str(target)).result()
        _seal(target, dbcopy.safe_url(url))
    except BaseException:
        target.unlink(missing_ok=True)
        raise


def file_from_rows(rows: dbcopy.ReadOut, target: str, source: str) -> None:
    """The rows `dbcopy.read_out` wrote, as one checked SQLite file at `target` (made
    owner-only by the caller); removed if anything fails. Runs in a process of its own,
    beside the restore that replaces those rows."""
    try:
        dbcopy.write_file(rows, target)
        _seal(Path(target), source)
    except BaseException:
        Path(target).unlink(missing_ok=True)
        raise


def _seal(copy: Path, source: str) -> None:
    """One file (no WAL beside it), intact, on the disk."""
    with contextlib.closing(sqlite3.connect(copy)) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")
        verdict = conn.execute("PRAGMA integrity_check").fetchone()[0]
    if verdict != "ok":
        raise OtmetkaError(f"backup of {source} failed its integrity check: {verdict}")
    with open(copy, "rb") as written:
        os.fsync(written.fileno())


def schema_version_of(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


# --- nightly backups (the daemon's job) -----------------------------------------------------


def backups(folder: Path) -> list[Path]:
    """Nightly backups in the folder, oldest first (their names sort by time)."""
    return sorted(folder.glob(f"{BACKUP_PREFIX}*{BACKUP_SUFFIX}"))


def _stamp(config: Config, now: dt.datetime) -> str:
    return f"{now.astimezone(config.school.zone()):%Y%m%d-%H%M%S}"


def backup_due(config: Config, now: dt.datetime) -> bool:
    """Due once the backup time has passed today (school time) and no backup since."""
    local = now.astimezone(config.school.zone())
    hour, minute = (int(part) for part in config.schedule.backup_time.split(":"))
    slot = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if local < slot:
        return False
    first_due = f"{BACKUP_PREFIX}{slot:%Y%m%d-%H%M%S}"
    return not any(p.name >= first_due for p in backups(config.paths.backup_dir))


def nightly_backup(config: Config, now: dt.datetime | None = None) -> Path:
    """Write a copy into `paths.backup_dir` and keep the newest `schedule.backup_keep`."""
    folder = private_dir(config.paths.backup_dir)
    name = f"{BACKUP_PREFIX}{_stamp(config, now or dt.datetime.now(dt.UTC))}{BACKUP_SUFFIX}"
    target = folder / name
    temporary = _temporary_beside(target)
    temporary.unlink(missing_ok=True)  # left by a crash
    consistent_copy(config, temporary)
    os.replace(temporary, target)
    fsync_dir(folder)
    for old in backups(folder)[: -config.schedule.backup_keep]:
        old.unlink()
    return target


# --- `otmetka backup` -------------------------------------------------------------------------


@dataclass
class BackupResult:
    path: Path
    size: int
    schema_version: int
    members: dict[str, dict[str, Any]]

    def summary(self) -> str:
        return (
            f"backup written to {self.path} ({self.size / 1024**2:.1f} MB, owner-only): "
            f"the database (schema {self.schema_version}) and the site secret; keep it off "
            "this server, as safely as the server itself"
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _otmetka_version() -> str:
    try:
        return metadata.version("otmetka")
    except metadata.PackageNotFoundError:
        return "unknown"


def _manifest(staged: dict[str, Path], schema: int, now: dt.datetime) -> dict[str, Any]:
    return {
        "format": ARCHIVE_FORMAT,
        "version": ARCHIVE_VERSION,
        "created_at": now.astimezone(dt.UTC).isoformat(timespec="seconds"),
        "otmetka_version": _otmetka_version(),
        "schema_version": schema,
        "members": {
            name: {"sha256": _sha256(path), "size": path.stat().st_size}
            for name, path in staged.items()
        },
    }


def _tar_member(archive: tarfile.TarFile, name: str, data: IO[bytes], size: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, PRIVATE_FILE, int(dt.datetime.now().timestamp())
    archive.addfile(info, data)


def _write_archive(target: Path, manifest: dict[str, Any], staged: dict[str, Path]) -> None:
    """Manifest first, then the members, streamed to an owner-only temp file that is
    renamed over `target`."""
    with (
        atomic_writer(target, PRIVATE_FILE) as raw,
        tarfile.open(fileobj=raw, mode="w:gz", compresslevel=6) as archive,
    ):
        text = json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8")
        _tar_member(archive, MANIFEST, io.BytesIO(text), len(text))
        for name, path in staged.items():
            with path.open("rb") as handle:
                _tar_member(archive, name, handle, path.stat().st_size)
    fsync_dir(target.parent)


def default_archive(config: Config, now: dt.datetime) -> Path:
    return config.paths.backup_dir / f"otmetka-backup-{_stamp(config, now)}{ARCHIVE_SUFFIX}"


def backup(config: Config, out: Path | None = None, now: dt.datetime | None = None) -> BackupResult:
    """The database (a consistent copy) and the site secret in one owner-only archive."""
    moment = now or dt.datetime.now(dt.UTC)
    target = out or default_archive(config, moment)
    if target.is_dir():
        raise OtmetkaError(f"--out {target} is a folder; give a file name ending in .tar.gz")
    if out is None:
        private_dir(target.parent)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".otmetka-backup-") as work:
        staged = {DATABASE: Path(work) / DATABASE}
        consistent_copy(config, staged[DATABASE])
        if config.site.secret_file.is_file():
            staged[SECRET] = Path(work) / SECRET
            with private_file(staged[SECRET]) as handle:
                handle.write(config.site.secret_file.read_bytes())
        schema = schema_version_of(staged[DATABASE])
        manifest = _manifest(staged, schema, moment)
        _write_archive(target, manifest, staged)
    return BackupResult(target, target.stat().st_size, schema, manifest["members"])
