"""Ordered schema migrations, recorded in SQLite's `PRAGMA user_version`.

Each migration runs in its own transaction together with the version bump, so a power cut
leaves the database at the previous version, never half-way. Append new steps at the end;
never edit a step that has shipped.
"""

from __future__ import annotations

from collections.abc import Callable

import peewee

from otmetka.db import models
from otmetka.db.connection import database, is_sqlite


def _initial_layout(db: peewee.Database) -> None:
    # Spelled out, not ALL_TABLES: a table added later must come with its own migration.
    local = [
        models.Credential,
        models.Event,
        models.AuditEntry,
        models.OutboxItem,
        models.BuildManifest,
        models.LocalChange,
        models.SyncState,
        models.ImportLog,
        models.DirtyPerson,
    ]
    db.create_tables([*models.JOURNAL_TABLES.values(), *local], safe=False)


def _mark_lookup_indexes(db: peewee.Database) -> None:
    # The builder reads marks and attendance per lesson; the importer keys on ids only.
    db.execute_sql("CREATE INDEX mark_lesson_id ON mark (lesson_id)")
    db.execute_sql("CREATE INDEX mark_work_id ON mark (work_id)")


def _settings_table(db: peewee.Database) -> None:
    db.create_tables([models.Setting], safe=False)


def _guardian_mail_table(db: peewee.Database) -> None:
    db.create_tables([models.GuardianMail], safe=False)


def _printing_tables(db: peewee.Database) -> None:
    db.create_tables([models.ExtractIssue, models.ExtractBatch, models.CredentialSlip], safe=False)


def _breach_reports_table(db: peewee.Database) -> None:
    db.create_tables([models.BreachReport], safe=False)


def _local_change_base_and_analytics_reports(db: peewee.Database) -> None:
    # The first step builds local_change from the live model, so a fresh database has the
    # column already; only older ones get it here.
    if "base_updated_at" not in {c.name for c in db.get_columns("local_change")}:
        db.execute_sql('ALTER TABLE "local_change" ADD COLUMN "base_updated_at" VARCHAR(255)')
    db.create_tables([models.AnalyticsReport], safe=False)


def _page_versions_table(db: peewee.Database) -> None:
    db.create_tables([models.PageVersion], safe=False)


# Append only. Each step runs once, in order, in its own transaction.
MIGRATIONS: list[Callable[[peewee.Database], None]] = [
    _initial_layout,
    _mark_lookup_indexes,
    _settings_table,
    _guardian_mail_table,
    _printing_tables,
    _breach_reports_table,
    _local_change_base_and_analytics_reports,
    _page_versions_table,
]

LATEST_VERSION = len(MIGRATIONS)


def schema_version(db: peewee.Database | None = None) -> int:
    """The schema version of `db` (default: the open database)."""
    db = database.obj if db is None else db
    if isinstance(db, peewee.SqliteDatabase):
        return int(db.execute_sql("PRAGMA user_version").fetchone()[0])
    db.execute_sql("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = db.execute_sql("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def _set_version(version: int) -> None:
    if is_sqlite():
        database.execute_sql(f"PRAGMA user_version = {int(version)}")
    else:
        database.execute_sql("INSERT INTO schema_version (version) VALUES (%s)", (version,))


class SchemaTooNew(Exception):
    """The database was written by a newer otmetka; refusing to touch it."""


def migrate() -> list[int]:
    """Bring the schema to LATEST_VERSION; returns the versions applied."""
    current = schema_version()
    if current > LATEST_VERSION:
        raise SchemaTooNew(
            f"database schema version {current} is newer than this otmetka "
            f"({LATEST_VERSION}); upgrade otmetka or restore a matching backup"
        )
    applied = []
    for version in range(current + 1, LATEST_VERSION + 1):
        with database.atomic():
            MIGRATIONS[version - 1](database.obj)
            _set_version(version)
        applied.append(version)
    return applied


def reset() -> None:
    """Drop every table and build the schema again (the demo starts from nothing)."""
    with database.atomic():
        database.obj.drop_tables(models.ALL_TABLES, safe=True)
        _set_version(0)
    migrate()
