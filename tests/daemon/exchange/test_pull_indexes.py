"""A first pull fills empty tables a page at a time: their plain indexes are set aside for
the whole pull and made once at its end, whether it ends well, fails, or the process dies."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from otmetka.daemon.core.config import Config
from otmetka.daemon.demo.fake_upstream import FakeUpstream
from otmetka.daemon.exchange.http import HttpParams, pull
from otmetka.daemon.exchange.reader import BatchError
from otmetka.daemon.runtime import open_project
from otmetka.db import close_database, journal, models
from tests.support.factories import change, small_school
from tests.support.sync_support import clean_import, journal_dump

TOKEN = "t0ken-for-the-index-tests"
JOURNAL = {model._meta.table_name for model in models.JOURNAL_TABLES.values()}


def _indexes(path: Path, empty_only: bool = False) -> set[str]:
    """The indexes written in the schema (not SQLite's own for keys), read as a reader
    beside the writer would see them; with `empty_only`, the plain (not unique) indexes of
    the journal's tables that hold no row: those a pull sets aside."""
    with contextlib.closing(sqlite3.connect(path)) as reader:
        rows = reader.execute(
            "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index' AND sql NOT NULL"
        ).fetchall()
        if not empty_only:
            return {name for name, _, _ in rows}
        return {
            name
            for name, table, sql in rows
            if table in JOURNAL
            and not sql.startswith("CREATE UNIQUE")
            and reader.execute(f'SELECT 1 FROM "{table}" LIMIT 1').fetchone() is None
        }


def _params(upstream: FakeUpstream) -> HttpParams:
    return HttpParams(upstream.url, TOKEN, limit=5, retries=0, timeout_s=5.0)


class Watching(FakeUpstream):
    """An upstream that notes the indexes of the school's database at every page asked."""

    database: Path
    seen: list[set[str]]

    def cursor_after(self, count: int) -> str:
        self.seen.append(_indexes(self.database))
        return super().cursor_after(count)


def test_a_first_pull_writes_without_plain_indexes_and_makes_them_at_the_end(
    file_db: Path, tmp_path: Path
) -> None:
    schema, aside = _indexes(file_db), _indexes(file_db, empty_only=True)
    assert {"mark_student_id", "lesson_group_id"} <= aside < schema
    document = small_school()
    with Watching(document, document["changes"], token=TOKEN) as upstream:
        upstream.database, upstream.seen = file_db, []
        result = pull(_params(upstream))
    assert result.pages == 7
    assert upstream.seen and all(seen == schema - aside for seen in upstream.seen)
    assert _indexes(file_db) == schema
    assert journal.restore_set_aside() == 0  # nothing left noted
    pulled = journal_dump()
    close_database()
    assert pulled == clean_import(small_school(), tmp_path / "clean.sqlite3")


def test_a_pull_into_tables_with_rows_keeps_their_indexes(file_db: Path) -> None:
    every_plain = _indexes(file_db, empty_only=True)
    document = small_school()
    with Watching(document, document["changes"], token=TOKEN) as upstream:
        upstream.database, upstream.seen = file_db, []
        pull(_params(upstream), max_pages=2)  # some tables have rows now, some have none
        schema, aside = _indexes(file_db), _indexes(file_db, empty_only=True)
        upstream.seen.clear()
        pull(_params(upstream))
    assert set() < aside < every_plain
    assert upstream.seen and all(seen == schema - aside for seen in upstream.seen)
    assert _indexes(file_db) == schema


def test_a_first_pull_that_fails_makes_the_indexes_again(file_db: Path) -> None:
    schema = _indexes(file_db)
    document = small_school()
    mark = {"student_id": "s-1", "subject_id": "math", "date": "2026-09-20", "raw": "6"}
    changes = [*document["changes"], change("mark", "mk-bad", mark)]
    with (
        FakeUpstream(document, changes, token=TOKEN) as upstream,
        pytest.raises(BatchError, match="mk-bad"),
    ):
        pull(_params(upstream))
    assert journal.cursor_of("http") == upstream.cursor_after(30)  # six pages stay imported
    assert _indexes(file_db) == schema


def test_indexes_a_dead_pull_left_set_aside_are_made_at_the_next_start(
    file_db: Path, config: Config
) -> None:
    schema, aside = _indexes(file_db), _indexes(file_db, empty_only=True)
    assert journal.set_aside_while_empty() == len(aside)  # every journal table is empty
    assert _indexes(file_db) == schema - aside
    close_database()  # the process dies here: the note of them is in the database
    open_project(config)
    assert _indexes(file_db) == schema
    assert journal.restore_set_aside() == 0
