"""`otmetka restore` onto PostgreSQL: the rows there before are kept aside whole in a SQLite
file, the backup's rows replace them, and a backup the server refuses changes nothing."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from otmetka.daemon.acts import paper
from otmetka.daemon.core.errors import OtmetkaError
from otmetka.daemon.ops import backup, restore
from otmetka.daemon.runtime import open_project
from otmetka.db import audit, close_database, models, open_database, write_transaction
from tests.support.acts_support import MOTHER, School

# A restore empties these on purpose: every page is rebuilt from the restored data.
REBUILT = {"build_manifest", "dirty_person"}

Tables = dict[str, list[tuple[Any, ...]]]


def _tables() -> Tables:
    """Every table of the bound database, its rows in key order as the models read them
    (so a SQLite file and the server compare value for value)."""
    found = {}
    for model in models.ALL_TABLES:
        query = model.select().order_by(*model._meta.get_primary_keys()).tuples()
        found[model._meta.table_name] = [
            tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in query
        ]
    return found


def _aside_tables(aside: Path) -> Tables:
    open_database(f"sqlite:///{aside}")
    try:
        return _tables()
    finally:
        close_database()


def _changed_after_the_backup(pg_school: School) -> Tables:
    """An act and an edit after the backup; the server's rows then."""
    paper.register_breach(
        pg_school.config, login=pg_school.login(MOTHER), received_at="2026-09-16T10:00"
    )
    open_project(pg_school.config)
    with write_transaction():
        models.Mark.update(comment="changed").execute()
    now = _tables()
    close_database()
    return now


def test_the_rows_replaced_are_kept_aside_whole(pg_school: School, tmp_path: Path) -> None:
    backed_up = _tables()
    assert backed_up["mark"] and backed_up["credential"] and backed_up["audit_entry"]
    close_database()
    archive = backup.backup(pg_school.config, tmp_path / "school.tar.gz").path
    before = _changed_after_the_backup(pg_school)
    assert before["event"] != backed_up["event"]

    result = restore.restore(pg_school.config, archive, reopen=open_project)

    (aside,) = result.set_aside
    assert aside.parent == pg_school.config.paths.backup_dir
    with contextlib.closing(sqlite3.connect(aside)) as conn:  # one file, intact
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert _aside_tables(aside) == before
    open_project(pg_school.config)
    after = _tables()
    for table, rows in backed_up.items():
        assert table in REBUILT or after[table] == rows, table
    assert after["build_manifest"] == [] and ("all", "*") in after["dirty_person"]
    assert audit.verify().ok


def test_a_backup_the_server_refuses_changes_nothing(pg_school: School) -> None:
    close_database()
    nightly = backup.nightly_backup(pg_school.config)
    with sqlite3.connect(nightly) as conn:  # a date SQLite took as text
        conn.execute("UPDATE mark SET date = 'soon' WHERE rowid = (SELECT MAX(rowid) FROM mark)")
    before = _changed_after_the_backup(pg_school)

    with pytest.raises(OtmetkaError, match=r"refused a row of mark.*nothing was written"):
        restore.restore(pg_school.config, nightly, reopen=open_project)

    open_project(pg_school.config)
    assert _tables() == before
    (aside,) = pg_school.config.paths.backup_dir.glob("before-restore-*")
    assert _aside_tables(aside) == before
