"""Rows copied into PostgreSQL through COPY (a restore, `otmetka db copy`) land exactly as an
insert through the models would write them: awkward text, dates, times, booleans, floats,
bytes and NULLs, compared table by table and row by row after a restore."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from otmetka.daemon.acts import paper
from otmetka.daemon.core.config import Config
from otmetka.daemon.core.errors import OtmetkaError
from otmetka.daemon.core.progress import Reporter
from otmetka.daemon.ops import backup, dbcopy, restore
from otmetka.daemon.runtime import open_project
from otmetka.db import (
    audit,
    close_database,
    database,
    migrate,
    models,
    open_database,
    write_transaction,
)
from tests.support.acts_support import MOTHER, School, make_config

# Text CSV and COPY's own text format treat specially, and text that is not ASCII.
AWKWARD = [
    "",
    "tab\there",
    "new\nline",
    "carriage\r\nreturn",
    "back\\slash \\N \\x41 \\\\",
    "double \"quotes\" and 'single'",
    "\\.",
    "a,b,c",
    '"',
    "   spaces kept   ",
    "Ёлка «ёж» — naïve e\u0301 😀",
    "NULL",
]
FLOATS = [0.1, 3.7, 1e-300, 1.7976931348623157e308, -0.0, 5e-324, 2 / 3, None]


def _awkward_rows() -> None:
    """Rows of several tables whose values a text format could bend."""
    marks = [
        {
            "id": f"awk-{n}",
            "updated_at": "2026-09-01T08:00:00+03:00",
            "deleted_at": None if n % 2 else text,
            "student_id": "s-1",
            "subject_id": "sub-1",
            "date": dt.date(1, 1, 1) if n == 0 else dt.date(2026, 9, 1) + dt.timedelta(n),
            "lesson_id": None,
            "raw_text": text,
            "value": FLOATS[n % len(FLOATS)],
            "value2": None,
            "passed": (True, False, None)[n % 3],
            "weight": 1.0,
            "comment": text,
        }
        for n, text in enumerate(AWKWARD)
    ]
    with write_transaction():
        models.Mark.insert_many(marks).execute()
        models.Holiday.insert(
            id="h-awk",
            updated_at="2026-09-01",
            name="\t«Каникулы»\n",
            kind="vacation",
            start=dt.date(2026, 10, 26),
            end=dt.date(9999, 12, 31),
            class_unit_ids=json.dumps(['7"Б', "a\\b", "\u0435\u0308", "\n"], ensure_ascii=False),
        ).execute()
        for n, text in enumerate(AWKWARD):
            models.ImportLog.insert(
                source="file",
                origin=text,
                batch_hash=f"{n:064x}",
                mode="delta",
                cursor="",
                counts=json.dumps({"mark": {"upserted": n, "note": text}}),
                imported_at=dt.datetime(2026, 9, 1, 23, 59, 59, n * 100_001 % 1_000_000),
            ).execute()
        _awkward_credentials()


def _awkward_credentials() -> None:
    for n, salt in enumerate([b"", b"\x00", b'\\x00,"\n', bytes(range(256))]):
        models.Credential.insert(
            login=f"awk-{n}",
            person_kind="teacher",
            person_id=f"t-awk-{n}",
            page_id=f"page-awk-{n}",
            salt=salt,
            derived_key=salt[::-1],
            kdf_iterations=n,
            token_hash=f"awk-{n}",
            state="revoked",
            # An aware time is stored as naive UTC; a naive one as it is.
            issued_at=dt.datetime(2026, 9, 1, 3, 0, tzinfo=dt.timezone(dt.timedelta(hours=5))),
            revoked_at=None if n % 2 else dt.datetime(2026, 9, 2, 0, 0, 0, 1),
        ).execute()


def _table(model: type[models.BaseModel]) -> list[tuple[Any, ...]]:
    """The table's rows as the server hands them out, in key order."""
    fields = model._meta.sorted_fields
    query = model.select(*fields).order_by(*model._meta.get_primary_keys())
    rows = database.execute(query).fetchall()
    return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in rows]


# A restore empties these on purpose: every page is rebuilt from the restored data.
REBUILT = {"build_manifest", "dirty_person"}


def test_awkward_values_come_back_from_a_restore_row_for_row(
    pg_school: School, tmp_path: Path
) -> None:
    _awkward_rows()
    before = {m._meta.table_name: _table(m) for m in models.ALL_TABLES}
    assert len(before["mark"]) > len(AWKWARD) and before["credential"][-1][5] == bytes(range(256))
    close_database()
    archive = backup.backup(pg_school.config, tmp_path / "awkward.tar.gz").path
    paper.register_breach(
        pg_school.config, login=pg_school.login(MOTHER), received_at="2026-09-16T10:00"
    )
    open_project(pg_school.config)
    with write_transaction():
        models.Mark.update(comment="changed").execute()
        models.ImportLog.delete().where(models.ImportLog.origin == "").execute()

    restore.restore(pg_school.config, archive, reopen=open_project)
    open_project(pg_school.config)
    after = {m._meta.table_name: _table(m) for m in models.ALL_TABLES}
    for table, rows in before.items():
        if table in REBUILT:
            continue
        assert len(after[table]) == len(rows), table
        for old, new in zip(rows, after[table], strict=True):
            assert new == old, f"{table}: {old} came back as {new}"
    assert after["build_manifest"] == [] and audit.verify().ok

    # The id sequences went on past the restored ids.
    largest = max(row[0] for row in before["import_log"])
    with write_transaction():
        added = models.ImportLog.create(
            source="file",
            origin="new",
            batch_hash="0",
            mode="delta",
            cursor="",
            counts="{}",
            imported_at=dt.datetime(2026, 9, 3),
        )
    assert added.id == largest + 1


# Times as SQLite may hold them, and what an insert through the models makes of each.
TEXT_TIMES = {
    "2026-09-01 08:00:00.123456": dt.datetime(2026, 9, 1, 8, 0, 0, 123456),
    "2026-09-01 08:00:00.5": dt.datetime(2026, 9, 1, 8, 0, 0, 500000),
    "2026-09-01 08:00:00": dt.datetime(2026, 9, 1, 8),
    "2026-09-01": dt.datetime(2026, 9, 1),
    "0001-01-01 00:00:00": dt.datetime(1, 1, 1),
    "2026-09-01 08:00:00+03:00": dt.datetime(2026, 9, 1, 5),  # aware: as UTC
    "2026-09-01T08:00:00": dt.datetime(2026, 9, 1, 8),  # the server reads it
}


def _sqlite_project(project_dir: Path) -> Config:
    """A SQLite project whose rows hold text times, SQLite's 0/1 booleans and blobs."""
    config = make_config(project_dir)
    open_project(config)
    with write_transaction():
        for n, text in enumerate(TEXT_TIMES):
            models.ImportLog.insert(
                source="file",
                origin="\\\t\n\r\\N",
                batch_hash=str(n),
                mode="delta",
                cursor="",
                counts="{}",
                imported_at=dt.datetime(2026, 1, 1),
            ).execute()
            database.execute_sql(
                "UPDATE import_log SET imported_at = ? WHERE id = ?", (text, n + 1)
            )
        models.Mark.insert_many(
            {
                "id": f"m-{n}",
                "updated_at": "u",
                "student_id": "s",
                "subject_id": "sub",
                "date": dt.date(2026, 9, 1 + n),
                "raw_text": "5",
                "value": 5.0,
                "passed": passed,
            }
            for n, passed in enumerate([True, False, None])
        ).execute()
    close_database()
    return config


def _copied(config: Config, pg_url: str) -> None:
    open_database(pg_url)
    migrate()
    close_database()
    dbcopy.copy_database(config, pg_url, Reporter(quiet=True))
    open_database(pg_url)


def test_db_copy_reads_sqlite_text_times_as_the_models_would(
    project_dir: Path, pg_url: str
) -> None:
    _copied(_sqlite_project(project_dir), pg_url)
    logs = models.ImportLog.select().order_by(models.ImportLog.id)
    assert [(log.imported_at, log.origin) for log in logs] == [
        (when, "\\\t\n\r\\N") for when in TEXT_TIMES.values()
    ]
    marks = models.Mark.select().order_by(models.Mark.id)
    assert [(m.date, m.passed) for m in marks] == [
        (dt.date(2026, 9, 1), True),
        (dt.date(2026, 9, 2), False),
        (dt.date(2026, 9, 3), None),
    ]


def test_db_copy_names_the_row_a_column_cannot_take(project_dir: Path, pg_url: str) -> None:
    """The server's refusal and a value otmetka cannot convert both name row and column,
    and leave the target empty."""
    config = _sqlite_project(project_dir)
    open_project(config)
    database.execute_sql("UPDATE import_log SET imported_at = 'soon' WHERE id = 3")
    close_database()
    with pytest.raises(OtmetkaError, match=r"a row of import_log: row 3, column imported_at: "):
        _copied(config, pg_url)
    assert not models.ImportLog.select().exists()
    close_database()
    open_project(config)
    database.execute_sql("UPDATE import_log SET imported_at = '2026-09-01' WHERE id = 3")
    database.execute_sql("UPDATE mark SET value = 'five' WHERE id = 'm-1'")  # SQLite keeps it
    close_database()
    with pytest.raises(OtmetkaError, match=r"refused a row of mark: row m-1, column value: "):
        _copied(config, pg_url)
    assert not models.Mark.select().exists() and not models.ImportLog.select().exists()
