"""File modes over a real demo site, made under the loosest umask (000) so that nothing
passes by the umask's grace: the database (and its WAL and SHM), the site secret, backups,
one-time credential lists, paper extracts, analytics reports and the inbox's done/ and
quarantine/ are owner-only (files 0600, folders 0700); output/ is world-readable and nobody
else's to write (files 0644, folders 0755)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from otmetka.daemon.core.config import Config, config_from_dict, load_config
from otmetka.daemon.core.private import secure_private_paths
from otmetka.daemon.demo import school
from otmetka.db import close_database, database, open_database
from tests.support.factories import envelope, write_json
from tests.support.sync_support import OTMETKA


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _otmetka(config_path: Path, *args: str, status: int = 0) -> str:
    done = subprocess.run(
        [OTMETKA, "--config", str(config_path), *args],
        capture_output=True,
        text=True,
        umask=0,
        timeout=300,
        check=False,
    )
    assert done.returncode == status, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Config:
    """The demo school built, backed up, its extracts and reports printed and published, an
    inbox file imported and another refused, all under umask 000."""
    folder = tmp_path_factory.mktemp("permissions")
    config_path = folder / "config.yaml"
    config_path.write_text(
        "site:\n  kdf_iterations: 100000\ndatabase:\n  url: sqlite:///data/otmetka.sqlite3\n",
        encoding="utf-8",
    )
    (folder / "inbox").mkdir()
    os.chmod(folder / "inbox", 0o755)  # the operator's, as the operator made it
    _otmetka(config_path, "demo", "--students", "12", "--no-serve")
    _otmetka(config_path, "backup")
    _otmetka(config_path, "print", "extracts", "--all")
    _otmetka(config_path, "report", "school")
    empty = envelope([], mode="delta", school_id=school.SCHOOL_ID)
    write_json(folder / "inbox" / "good.json", empty)
    (folder / "inbox" / "bad.json").write_text("{not json", encoding="utf-8")
    _otmetka(config_path, "sync", "--inbox", status=1)  # 1: a file was refused
    _otmetka(config_path, "build")  # publishes the class teachers' encrypted extracts
    _otmetka(config_path, "status")
    return load_config(config_path)


def test_private_files_are_owner_only(demo: Config) -> None:
    var = demo.paths.var_dir
    assert _mode(var) == 0o700
    assert _mode(demo.site.secret_file) == 0o600
    database = demo.database_path()
    assert database is not None
    assert _mode(database) == 0o600 and _mode(database.parent) == 0o700
    lists = sorted((var / "credentials").iterdir())
    assert {p.suffix for p in lists} == {".csv", ".pdf"}  # the list and its slips
    assert _mode(var / "credentials") == 0o700
    assert all(_mode(p) == 0o600 for p in lists)
    archives = list(demo.paths.backup_dir.glob("otmetka-backup-*.tar.gz"))
    assert len(archives) == 1 and _mode(archives[0]) == 0o600
    assert _mode(demo.paths.backup_dir) == 0o700
    # The extracts and reports name every child: they and their folders are closed to others.
    for top in (demo.printing.extracts_dir, var / "reports"):
        # (the cache's shards sit in cache/, which is closed: their modes do not matter)
        folders = [top, *(p for p in top.iterdir() if p.is_dir())]
        files = [p for p in top.rglob("*") if p.is_file()]
        assert any(p.suffix == ".pdf" for p in files) and len(folders) > 1
        assert {oct(_mode(p)) for p in folders} == {oct(0o700)}, top
        assert {oct(_mode(p)) for p in files} == {oct(0o600)}, top


def test_the_inbox_keeps_its_mode_and_its_subfolders_are_owner_only(demo: Config) -> None:
    inbox = demo.paths.inbox_dir
    assert _mode(inbox) == 0o755  # the operator's: a group may drop files in it
    for name in ("done", "quarantine"):  # the good file and the refused one went there
        assert any((inbox / name).iterdir()) and _mode(inbox / name) == 0o700, name


def test_the_site_is_world_readable_and_only_ours_to_write(demo: Config) -> None:
    output = demo.site.output_dir
    folders = [output, *(p for p in output.rglob("*") if p.is_dir())]
    files = [p for p in output.rglob("*") if p.is_file()]
    assert len(files) > 30 and any(p.parent.name == "f" for p in files)  # pages, teachers' PDFs
    assert {oct(_mode(p)) for p in folders} == {oct(0o755)}
    assert {oct(_mode(p)) for p in files} == {oct(0o644)}
    assert not [p for p in output.rglob(".*")], "no temp files or dotfiles in the site"


def test_the_wal_and_shm_follow_the_database(demo: Config) -> None:
    path = demo.database_path()
    assert path is not None
    previous = os.umask(0)
    try:
        open_database(demo.database.url)
        with database.atomic():
            database.execute_sql("CREATE TABLE IF NOT EXISTS probe (x)")
            database.execute_sql("INSERT INTO probe VALUES (1)")
        wal, shm = (path.with_name(path.name + suffix) for suffix in ("-wal", "-shm"))
        assert wal.exists() and shm.exists()
        assert _mode(wal) == 0o600 and _mode(shm) == 0o600
    finally:
        close_database()
        os.umask(previous)


def test_an_older_database_is_tightened_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    path.write_bytes(b"")
    os.chmod(path, 0o644)  # made by an otmetka that left modes to the umask
    try:
        open_database(f"sqlite:///{path}")
        assert _mode(path) == 0o600
    finally:
        close_database()


def test_an_inbox_otmetka_makes_is_owner_only(tmp_path: Path) -> None:
    config = config_from_dict({}, base_dir=tmp_path, env={})
    previous = os.umask(0)
    try:
        secure_private_paths(config)
    finally:
        os.umask(previous)
    inbox = config.paths.inbox_dir
    assert [_mode(p) for p in (inbox, inbox / "done", inbox / "quarantine")] == [0o700] * 3
    elsewhere = config_from_dict({"source": {"kind": "none"}}, base_dir=tmp_path / "b", env={})
    secure_private_paths(elsewhere)
    assert not elsewhere.paths.inbox_dir.exists(), "no inbox for a project that has none"
