"""The database layer: pragmas, ordered migrations, and models that match the schema."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from otmetka.db import database, migrate, models
from otmetka.db.migrations import LATEST_VERSION, SchemaTooNew, schema_version


def test_file_database_pragmas(file_db: Path) -> None:
    pragma = lambda name: database.execute_sql(f"PRAGMA {name}").fetchone()[0]  # noqa: E731
    assert pragma("journal_mode") == "wal"
    assert pragma("foreign_keys") == 1
    assert pragma("busy_timeout") == 5000
    assert pragma("synchronous") == 2  # FULL: events are legal records


def test_migrations_run_once_in_order(memory_db: None) -> None:
    assert schema_version() == LATEST_VERSION
    assert migrate() == []


def test_schema_matches_the_models(memory_db: None) -> None:
    """A model changed without a migration shows up here."""
    for model in models.ALL_TABLES:
        table = model._meta.table_name
        columns = {row[1] for row in database.execute_sql(f'PRAGMA table_info("{table}")')}
        expected = {field.column_name for field in model._meta.sorted_fields}
        assert columns == expected, f"{table}: add a migration for {expected ^ columns}"


def test_newer_schema_is_refused(memory_db: None) -> None:
    database.execute_sql(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    with pytest.raises(SchemaTooNew, match="upgrade otmetka or restore a matching backup"):
        migrate()


def test_none_is_bound_as_null_through_its_adapter(memory_db: None) -> None:
    """None takes the adapter registered for it (a dictionary hit instead of a search),
    and what is stored is still NULL, never a text or a zero."""
    assert sqlite3.adapters[(type(None), sqlite3.PrepareProtocol)](None) is None
    database.execute_sql("CREATE TABLE bound (value)")
    database.cursor().executemany("INSERT INTO bound VALUES (?)", [(None,), (0,), ("",)])
    stored = database.execute_sql("SELECT value IS NULL, typeof(value) FROM bound").fetchall()
    assert stored == [(1, "null"), (0, "integer"), (0, "text")]
