"""`otmetka backup` and `otmetka restore`: an archive of the database and the site secret
restores on an empty machine into the very same site; a damaged, truncated, tampered or
too-new backup is refused and nothing changes; the database replaced is kept aside."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import sqlite3
import stat
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from otmetka.daemon.acts import paper, registers
from otmetka.daemon.cli import main
from otmetka.daemon.core import pidfile
from otmetka.daemon.core.config import Config
from otmetka.daemon.core.errors import OtmetkaError
from otmetka.daemon.core.settings import build_options
from otmetka.daemon.ops import backup, restore
from otmetka.daemon.runner import scheduler
from otmetka.daemon.runtime import open_project
from otmetka.db import build_state, close_database, models
from otmetka.db.migrations import LATEST_VERSION
from otmetka.site_builder import build
from tests.support.acts_support import (
    MOTHER,
    TODAY,
    School,
    build_school,
    make_config,
    write_config_file,
)


@pytest.fixture
def school(project_dir: Path) -> School:
    """The small school with logins, the mother's paper consent, and its site built."""
    write_config_file(project_dir)
    config = make_config(project_dir)
    school = build_school(config)
    paper.register_consent(config, login=school.login(MOTHER), decision="granted", paper=True)
    open_project(config)
    # Full: a restored site is rebuilt whole, so compare it with a whole build of the
    # original (an incremental one may keep pages an act did not mark for a rebuild).
    build.build_site(build_options(config, today=TODAY, full=True))
    return school


@pytest.fixture
def elsewhere(tmp_path: Path) -> Config:
    """An empty machine: a new project folder with its own config file, nothing else."""
    folder = tmp_path / "new-server"
    folder.mkdir()
    write_config_file(folder)
    return make_config(folder)


def _hashes(config: Config) -> dict[str, str]:
    open_project(config)
    return {page_id: row.content_hash for page_id, row in build_state.manifest().items()}


def _cli(runner: CliRunner, config: Config, *args: str) -> tuple[int, str]:
    assert config.config_file is None  # made from a dict: the CLI reads the file beside it
    result = runner.invoke(main, ["--config", str(config.base_dir / "config.yaml"), *args])
    close_database()
    return result.exit_code, result.output


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_backup_restores_on_an_empty_machine_into_the_same_site(
    school: School, elsewhere: Config, runner: CliRunner, tmp_path: Path
) -> None:
    before, hashes = school.site(), _hashes(school.config)
    archive = tmp_path / "off-site" / "school.tar.gz"
    code, output = _cli(runner, school.config, "backup", "--out", str(archive))
    assert code == 0, output
    assert f"backup written to {archive}" in output
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600

    with tarfile.open(archive) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        secret = tar.extractfile("site.key").read()  # type: ignore[union-attr]
    assert names == ["manifest.json", "otmetka.sqlite3", "site.key"]
    assert manifest["schema_version"] == LATEST_VERSION and manifest["format"] == "otmetka-backup"
    assert manifest["members"]["site.key"]["sha256"] == hashlib.sha256(secret).hexdigest()
    assert secret == school.config.site.secret_file.read_bytes()

    code, output = _cli(runner, elsewhere, "restore", str(archive))
    assert code == 0, output
    assert "Run `otmetka build` now" in output
    open_project(elsewhere)
    result = build.build_site(build_options(elsewhere, today=TODAY))
    assert result.written == len(before)  # every page written anew on the new machine

    restored = School(elsewhere, school.logins)
    assert restored.site() == before  # same page ids, same passwords, same content
    assert _hashes(elsewhere) == hashes
    old_index = (school.config.site.output_dir / "index.html").read_bytes()
    assert (elsewhere.site.output_dir / "index.html").read_bytes() == old_index
    old_pages = sorted(p.name for p in (school.config.site.output_dir / "p").iterdir())
    assert sorted(p.name for p in (elsewhere.site.output_dir / "p").iterdir()) == old_pages
    database = elsewhere.database_path()
    assert database is not None and stat.S_IMODE(database.stat().st_mode) == 0o600
    assert stat.S_IMODE(elsewhere.site.secret_file.stat().st_mode) == 0o600


def _snapshot(config: Config) -> dict[str, str]:
    """Every file of the project folder with its hash: "nothing changed" made checkable."""
    close_database()  # a checkpoint-free, closed database: its bytes are its state
    return {
        str(p.relative_to(config.base_dir)): _sha(p)
        for p in sorted(config.base_dir.rglob("*"))
        if p.is_file()
    }


def _rewrite(
    archive: Path, target: Path, *, database: bytes | None = None, **manifest_edits: object
) -> Path:
    """A copy of `archive` with another database member and/or manifest fields."""
    members: dict[str, bytes] = {}
    with tarfile.open(archive) as tar:
        for info in tar.getmembers():
            members[info.name] = tar.extractfile(info).read()  # type: ignore[union-attr]
    manifest = json.loads(members["manifest.json"])
    if database is not None:
        members["otmetka.sqlite3"] = database
        manifest["members"]["otmetka.sqlite3"] = {
            "sha256": hashlib.sha256(database).hexdigest(),
            "size": len(database),
        }
    manifest.update(manifest_edits)
    members["manifest.json"] = json.dumps(manifest).encode()
    with tarfile.open(target, "w:gz") as tar:
        for name in ("manifest.json", *sorted(set(members) - {"manifest.json"})):
            info = tarfile.TarInfo(name)
            info.size = len(members[name])
            tar.addfile(info, io.BytesIO(members[name]))
    return target


def _newer_schema(archive: Path, folder: Path) -> bytes:
    with tarfile.open(archive) as tar:
        data = tar.extractfile("otmetka.sqlite3").read()  # type: ignore[union-attr]
    path = folder / "newer.sqlite3"
    path.write_bytes(data)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
        conn.commit()
    return path.read_bytes()


def _bad_files(archive: Path, folder: Path) -> dict[str, tuple[Path, str]]:
    data = archive.read_bytes()
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    cases = {
        "truncated": (data[: len(data) // 2], "damaged or truncated"),
        "cut at the end": (data[:-40], "not an intact otmetka backup"),
        "a flipped byte": (bytes(flipped), "not an intact otmetka backup"),
        "not a backup": (b"hello, this is a text file\n" * 50, "damaged or truncated"),
        "empty": (b"", "damaged or truncated"),
    }
    found = {}
    for name, (content, message) in cases.items():
        path = folder / f"{name}.tar.gz"
        path.write_bytes(content)
        found[name] = (path, message)
    listed = json.loads(_manifest_of(archive))["members"]
    listed["otmetka.sqlite3"]["sha256"] = "0" * 64
    found["a member that does not match its hash"] = (
        _rewrite(archive, folder / "tampered.tar.gz", members=listed),
        "does not match the SHA-256",
    )
    found["a newer schema"] = (
        _rewrite(archive, folder / "newer.tar.gz", database=_newer_schema(archive, folder)),
        "newer than this otmetka",
    )
    found["a manifest that lies about the schema"] = (
        _rewrite(archive, folder / "lies.tar.gz", schema_version=1),
        "schema version in the manifest does not match",
    )
    return found


def _manifest_of(archive: Path) -> bytes:
    with tarfile.open(archive) as tar:
        return tar.extractfile("manifest.json").read()  # type: ignore[union-attr]


def test_a_damaged_backup_is_refused_and_nothing_changes(
    school: School, runner: CliRunner, tmp_path: Path
) -> None:
    config = school.config
    archive = backup.backup(config, tmp_path / "good.tar.gz").path
    bad_folder = tmp_path / "bad"
    bad_folder.mkdir()
    cases = _bad_files(archive, bad_folder)
    before = _snapshot(config)
    for name, (path, message) in cases.items():
        code, output = _cli(runner, config, "restore", str(path))
        assert code == 1, f"{name}: {output}"
        assert message in output, f"{name}: {output}"
        assert "Traceback" not in output
        assert _snapshot(config) == before, f"{name} changed something"


def test_restore_keeps_the_replaced_database_aside(school: School, tmp_path: Path) -> None:
    config = school.config
    archive = backup.backup(config, tmp_path / "before.tar.gz").path
    son = school.login("Иванов Артём")
    # An act after the backup: it lives in the current database (partly still in its WAL).
    paper.register_breach(config, login=son, received_at="2026-09-16T10:00")
    open_project(config)
    assert models.BreachReport.select().count() == 1

    result = restore.restore(config, archive, reopen=open_project)
    assert result.secret_restored is False  # the same secret: kept as it was
    (aside,) = result.set_aside
    assert aside.name.startswith("otmetka.sqlite3.before-restore-")
    assert stat.S_IMODE(aside.stat().st_mode) == 0o600
    with contextlib.closing(sqlite3.connect(aside)) as old:
        assert old.execute("SELECT count(*) FROM breach_report").fetchone()[0] == 1
        assert old.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    open_project(config)
    assert models.BreachReport.select().count() == 0
    assert registers.verify_audit(config).ok
    assert build_state.manifest() == {}  # every page is rebuilt from the restored data
    build.build_site(build_options(config, today=TODAY))
    assert school.open_page(MOTHER) == school.site()[MOTHER][1]


def test_a_nightly_copy_restores_too_and_keeps_the_site_secret(school: School) -> None:
    config = school.config
    nightly = scheduler.backup_now(config)
    assert stat.S_IMODE(nightly.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.paths.backup_dir.stat().st_mode) == 0o700
    secret = config.site.secret_file.read_bytes()
    result = restore.restore(config, nightly, reopen=open_project)
    assert result.kind == "database copy" and not result.secret_restored
    assert config.site.secret_file.read_bytes() == secret


def test_restore_waits_for_the_daemon_to_stop(school: School, tmp_path: Path) -> None:
    config = school.config
    archive = backup.backup(config, tmp_path / "b.tar.gz").path
    database = config.database_path()
    assert database is not None
    close_database()
    digest = _sha(database)
    lock = pidfile.PidLock(pidfile.pid_path(config))
    lock.acquire()  # as `otmetka run` holds it
    try:
        with pytest.raises(OtmetkaError, match="already running"):
            restore.restore(config, archive, reopen=open_project)
    finally:
        lock.release()
    assert _sha(database) == digest
