"""Backups and restores, and the owner-only modes of everything private.

Two kinds of backup share one consistent copy, always a SQLite file (SQLite's online
backup API, or one read snapshot of PostgreSQL copied table by table; the daemon and the
endpoint keep writing meanwhile; checked with `PRAGMA integrity_check`):

- the nightly one the daemon writes (`paths.backup_dir/otmetka-YYYYMMDD-HHMMSS.sqlite3`,
  the newest `schedule.backup_keep` kept): the database alone;
- `otmetka backup`: one archive (tar + gzip) holding the database, the site secret and
  `manifest.json` with the SHA-256 and size of each member and the schema version.

`otmetka restore FILE` takes either. It checks everything before touching anything (the
manifest, every hash, the integrity of the database copy, a schema not newer than this
otmetka) and refuses a damaged or truncated file with a message saying so. Then it sets the
current database aside as `<database>.before-restore-<time>`, puts the restored one in
place with an atomic rename (the site secret likewise), and marks every page for a rebuild:
the restored manifest describes a site that may no longer be the one in output/. On
PostgreSQL the current rows are copied aside into `paths.backup_dir` and replaced by the
backup's in one transaction.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import logging
import os
import shutil
import sqlite3
import tarfile
import tempfile
import zlib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import IO, Any

from otmetka.daemon.core.config import Config
from otmetka.daemon.core.errors import OtmetkaError
from otmetka.daemon.core.pidfile import daemon_stopped
from otmetka.daemon.core.progress import Reporter
from otmetka.daemon.ops import dbcopy
from otmetka.site_builder.atomic import fsync_dir
from otmetka.site_builder.workers import spawn_pool

log = logging.getLogger("otmetka.backup")

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700

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
_CHUNK = 1024 * 1024


class DamagedBackup(OtmetkaError):
    """The file is not a complete, intact otmetka backup; nothing was changed."""


# --- owner-only files and folders ------------------------------------------------------------


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


def _private_file(path: Path) -> IO[bytes]:
    """A new file, owner-only from its first byte (not chmod-ed after the umask made it)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    return os.fdopen(descriptor, "wb")


# --- the consistent copy ---------------------------------------------------------------------


def copy_database(source: Path, target: Path) -> None:
    """SQLite's online backup into a new owner-only file: a consistent copy while others
    keep writing. The copy is a single file (rollback journal, not WAL), checked, fsynced."""
    if not source.is_file():
        raise OtmetkaError(f"no database at {source}: nothing to back up (run `otmetka init`)")
    _private_file(target).close()
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
    _private_file(target).close()
    try:
        # The copy binds the models to the new file: in a process of its own, never under
        # the daemon's threads that keep serving from the server.
        with spawn_pool(1) as pool:
            url, timeout = config.database.url, config.database.busy_timeout_ms
            pool.submit(dbcopy.copy_to_new_file, url, timeout, str(target)).result()
        _seal(target, dbcopy.safe_url(url))
    except BaseException:
        target.unlink(missing_ok=True)
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
    temporary = folder / f".{name}.tmp"
    temporary.unlink(missing_ok=True)  # left by a crash
    consistent_copy(config, temporary)
    os.replace(temporary, target)
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
        while chunk := handle.read(_CHUNK):
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
    """Manifest first, then the members; owner-only temp file, fsync, rename over."""
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.unlink(missing_ok=True)
    try:
        with _private_file(temporary) as raw:
            with tarfile.open(fileobj=raw, mode="w:gz", compresslevel=6) as archive:
                text = json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8")
                _tar_member(archive, MANIFEST, io.BytesIO(text), len(text))
                for name, path in staged.items():
                    with path.open("rb") as handle:
                        _tar_member(archive, name, handle, path.stat().st_size)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(temporary, target)
        fsync_dir(target.parent)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


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
            with _private_file(staged[SECRET]) as handle:
                handle.write(config.site.secret_file.read_bytes())
        schema = schema_version_of(staged[DATABASE])
        manifest = _manifest(staged, schema, moment)
        _write_archive(target, manifest, staged)
    return BackupResult(target, target.stat().st_size, schema, manifest["members"])


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
    with _private_file(target) as out:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    wanted = expected if isinstance(expected, dict) else {}
    if size != wanted.get("size") or digest.hexdigest() != wanted.get("sha256"):
        raise _damaged(path, f"{info.name} does not match the SHA-256 in {MANIFEST}")


def _check_database(path: Path, database: Path) -> int:
    """integrity_check on the copy; its schema version, refused if newer than ours."""
    from otmetka.db.migrations import LATEST_VERSION

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
    temporary = secret_file.with_name(f".{secret_file.name}.tmp")
    temporary.unlink(missing_ok=True)
    with _private_file(temporary) as handle:
        handle.write(new)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, secret_file)
    fsync_dir(secret_file.parent)
    return True, aside


def _rebuild_everything(config: Config) -> None:
    """The restored manifest describes pages output/ may no longer hold: forget it, and
    mark everyone dirty so the next build renders and writes every page."""
    from otmetka.daemon.runtime import open_project
    from otmetka.db import build_state as site_state
    from otmetka.db import journal, write_transaction

    open_project(config)
    with write_transaction():
        site_state.forget_pages(list(site_state.manifest()))
        journal.mark_dirty("all", ["*"])


def restore(config: Config, path: Path, now: dt.datetime | None = None) -> RestoreResult:
    """Check `path` completely, then put its database (and site secret) in place."""
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
            result = _restore_onto_server(config, checked, path, moment)
        else:
            result = _restore_file(checked, path, database, moment)
        _restore_secret(config, checked, result, moment)
        _rebuild_everything(config)
    log.info("%s", result.summary())
    return result


def _restore_file(
    checked: CheckedBackup, path: Path, database: Path, moment: dt.datetime
) -> RestoreResult:
    """SQLite: the current file set aside, the checked copy renamed into its place."""
    from otmetka.db import close_database

    close_database()  # this process's own connection to the database being replaced
    result = RestoreResult(path, str(database), checked.schema_version, checked.kind)
    aside = _set_aside_database(database, moment)
    result.set_aside += [aside] if aside else []
    _install_database(checked.database, database)
    close_database()
    return result


def _restore_onto_server(
    config: Config, checked: CheckedBackup, path: Path, moment: dt.datetime
) -> RestoreResult:
    """PostgreSQL: a copy of what it holds now kept in paths.backup_dir, then every row
    replaced by the backup's in one transaction (a failure changes nothing)."""
    from otmetka.daemon.runtime import open_project
    from otmetka.db import close_database

    dbcopy.migrate_file(checked.database)  # a backup from an older otmetka: this schema
    open_project(config)  # the server's schema up to date too
    close_database()
    target = dbcopy.safe_url(config.database.url)
    result = RestoreResult(path, target, checked.schema_version, checked.kind)
    aside = config.paths.backup_dir / f"before-restore-{moment:%Y%m%d-%H%M%S}{BACKUP_SUFFIX}"
    consistent_copy(config, aside)
    result.set_aside.append(aside)
    dbcopy.replace_database(config, checked.database, Reporter(quiet=True))
    return result


def _restore_secret(
    config: Config, checked: CheckedBackup, result: RestoreResult, moment: dt.datetime
) -> None:
    if checked.secret is None:
        return
    restored, aside = _install_secret(checked.secret, config.site.secret_file, moment)
    result.secret_restored = restored
    result.set_aside += [aside] if aside else []
