"""Writes and lookups of journal tables, used by the importer.

Upserts go through the DB-API `executemany` with one prepared statement per table and rows
already in column order: an import of a year of marks is a million rows, and building a
peewee query (or even a dict) per row would cost more than the database work itself.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from typing import Any

import peewee

from otmetka.db import models
from otmetka.db.build_state import drop_setting, get_setting, put_setting
from otmetka.db.connection import chunks, database, is_sqlite, upsert_many, write_transaction


def table_for(entity: str) -> type[models.JournalModel]:
    return models.JOURNAL_TABLES[entity]


def column_names(entity: str) -> list[str]:
    return [field.column_name for field in table_for(entity)._meta.sorted_fields]


def _default_of(field: peewee.Field) -> Any:
    default = field.default
    return default() if callable(default) else default


def column_default(entity: str, column: str) -> Any:
    """What a column holds when upstream does not send it, as stored."""
    for field in table_for(entity)._meta.sorted_fields:
        if field.column_name == column:
            return _to_db(_default_of(field))
    raise KeyError(f"{entity} has no column {column!r}")


def _to_db(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return value  # a bool stays one: SQLite stores 1/0, PostgreSQL wants a boolean


def _upsert_sql(entity: str) -> str:
    table = table_for(entity)._meta.table_name
    columns = column_names(entity)
    param = database.param
    updates = ", ".join(f'"{c}" = excluded."{c}"' for c in columns if c != "id")
    return (
        f'INSERT INTO "{table}" ({", ".join(f"{chr(34)}{c}{chr(34)}" for c in columns)}) '
        f"VALUES ({', '.join(param for _ in columns)}) "
        f'ON CONFLICT ("id") DO UPDATE SET {updates} '
        f'WHERE excluded."updated_at" >= "{table}"."updated_at"'
    )


def upsert_rows(entity: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert or update rows keyed by upstream id; an older `updated_at` never wins.

    Each row has every column, in `column_names(entity)` order, as stored (the importer
    builds them so); `deleted_at` is None, so an upsert after a tombstone brings the row back.
    """
    database.cursor().executemany(_upsert_sql(entity), rows)


def is_empty(entity: str) -> bool:
    table = table_for(entity)._meta.table_name
    return database.execute_sql(f'SELECT 1 FROM "{table}" LIMIT 1').fetchone() is None


def set_aside_indexes(entity: str) -> list[str]:
    """On SQLite, drop the plain (not unique) indexes of the entity's table, inside the
    caller's transaction, and return the statements that make them again (`restore_indexes`).

    For a bulk load into an empty table: SQLite builds an index from sorted rows in one
    pass, which costs far less than inserting a million keys into it one by one. Unique
    indexes stay, so no constraint goes unchecked; a rollback brings the indexes back."""
    if not is_sqlite():
        return []
    table = table_for(entity)._meta.table_name
    listed = database.execute_sql(f'PRAGMA index_list("{table}")').fetchall()
    # the newest first: made again oldest first, they keep their order in the schema
    names = [row[1] for row in reversed(listed) if row[2] == 0 and row[3] == "c" and not row[4]]
    statements = []
    for name in names:
        found = database.execute_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", (name,)
        ).fetchone()
        database.execute_sql(f'DROP INDEX "{name}"')
        statements.append(found[0])
    return statements


def restore_indexes(statements: Iterable[str]) -> None:
    for statement in statements:
        database.execute_sql(statement)


# The statements of the indexes a load of many batches set aside, kept in the database
# while it runs: a load cut short (a crash, a power cut) leaves them to `restore_set_aside`.
SET_ASIDE_KEY = "journal.indexes_set_aside"


def set_aside_while_empty() -> int:
    """Set aside the plain indexes of each journal table that is empty, for a load of many
    batches into them (a first pull), and note them, in one transaction; returns how many.
    Each batch then writes without them, and `restore_set_aside` makes them once. On
    PostgreSQL nothing is set aside (see `set_aside_indexes`)."""
    if not is_sqlite():
        return 0
    with write_transaction():
        empty = [entity for entity in models.JOURNAL_TABLES if is_empty(entity)]
        statements = [statement for e in empty for statement in set_aside_indexes(e)]
        if statements:
            put_setting(SET_ASIDE_KEY, json.dumps([*_noted_set_aside(), *statements]))
    return len(statements)


def restore_set_aside() -> int:
    """Make again the indexes that `set_aside_while_empty` noted, after the load or at the
    next start if it was cut short; returns how many were noted."""
    statements = _noted_set_aside()
    if statements:
        with write_transaction():
            # IF NOT EXISTS: a copy of the database (to PostgreSQL) carries the note along
            # into a schema made whole
            for statement in statements:
                database.execute_sql(statement.replace("CREATE INDEX ", _IF_MISSING, 1))
            drop_setting(SET_ASIDE_KEY)
    return len(statements)


_IF_MISSING = "CREATE INDEX IF NOT EXISTS "


def _noted_set_aside() -> list[str]:
    noted = get_setting(SET_ASIDE_KEY)
    return list(json.loads(noted)) if noted else []


def tombstone(entity: str, ids_with_times: Iterable[tuple[str, str]]) -> int:
    """Mark rows deleted, unless upstream already sent something newer. Returns rows hit."""
    table = table_for(entity)._meta.table_name
    p = database.param
    sql = (
        f'UPDATE "{table}" SET deleted_at = {p}, updated_at = {p} '
        f"WHERE id = {p} AND updated_at <= {p}"
    )
    cursor = database.cursor()
    cursor.executemany(sql, [(at, at, row_id, at) for row_id, at in ids_with_times])
    return int(cursor.rowcount)


# Ids per IN (...) query: under the 999 parameters older SQLite builds allow.
_IN_CHUNK = 900


def _ids_where(sql: str, values: Iterable[str]) -> set[str]:
    """First column of `sql` (ending in `IN`) for every chunk of `values`.

    Plain SQL, not a peewee query: peewee renders an IN list value by value in Python, and
    a page of a pull looks up thousands of ids."""
    found: set[str] = set()
    for chunk in chunks(values, _IN_CHUNK):
        marks = ", ".join(database.param for _ in chunk)
        cursor = database.execute_sql(f"{sql} ({marks})", chunk)
        found.update(row[0] for row in cursor.fetchall())
    return found


def existing_ids(entity: str, ids: Iterable[str]) -> set[str]:
    """Which of `ids` exist (and are not tombstoned) in the entity's table."""
    table = table_for(entity)._meta.table_name
    return _ids_where(f'SELECT id FROM "{table}" WHERE deleted_at IS NULL AND id IN', ids)


def rows_by_id(entity: str, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    table = table_for(entity)
    result: dict[str, dict[str, Any]] = {}
    for chunk in chunks(ids, _IN_CHUNK):
        query = table.select().where(table.id.in_(chunk)).dicts()
        result.update({row["id"]: row for row in query})  # type: ignore[index, misc]
    return result


def group_members(group_ids: Iterable[str]) -> set[str]:
    table = models.Membership._meta.table_name
    # DISTINCT: a page of a pull touches groups whose members come back once per group
    return _ids_where(f'SELECT DISTINCT student_id FROM "{table}" WHERE group_id IN', group_ids)


def students_of_classes(class_ids: Iterable[str]) -> set[str]:
    table = models.Student._meta.table_name
    return _ids_where(f'SELECT id FROM "{table}" WHERE class_unit_id IN', class_ids)


def mark_dirty(person_kind: str, person_ids: Iterable[str]) -> None:
    rows = [(person_kind, pid) for pid in set(person_ids)]
    if not rows:
        return
    p = database.param
    sql = (
        f'INSERT INTO "dirty_person" (person_kind, person_id) VALUES ({p}, {p}) '
        "ON CONFLICT DO NOTHING"
    )
    database.cursor().executemany(sql, rows)


def dump_tables() -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, ordered: for tests and integrity checks."""
    dump = {}
    for model in models.ALL_TABLES:
        table = model._meta.table_name
        cursor = database.execute_sql(f'SELECT * FROM "{table}" ORDER BY 1, 2')
        dump[table] = [tuple(row) for row in cursor.fetchall()]
    return dump


# The questions every batch asks (every page of a pull), as plain SQL: a peewee query
# costs more to build than SQLite takes to answer it.
def batch_seen(batch_hash: str) -> bool:
    table, p = models.ImportLog._meta.table_name, database.param
    sql = f'SELECT 1 FROM "{table}" WHERE batch_hash = {p} LIMIT 1'
    return database.execute_sql(sql, (batch_hash,)).fetchone() is not None


def record_import(
    *,
    source: str,
    origin: str,
    batch_hash: str,
    mode: str,
    cursor: str,
    school_id: str,
    counts: dict[str, dict[str, int]],
    at: dt.datetime,
) -> None:
    """Log the batch and move the source's cursor, inside the caller's transaction."""
    models.ImportLog.insert(
        source=source,
        origin=origin,
        batch_hash=batch_hash,
        mode=mode,
        cursor=cursor,
        counts=json.dumps(counts, sort_keys=True),
        imported_at=at,
    ).execute()
    state = models.SyncState
    upsert_many(
        state,
        [state.source, state.cursor, state.school_id, state.updated_at],
        [(source, cursor, school_id, at)],
        conflict=[state.source],
        update=[state.cursor, state.school_id, state.updated_at],
    )


def cursor_of(source: str) -> str | None:
    row = models.SyncState.get_or_none(models.SyncState.source == source)
    return row.cursor if row else None


def school_ids_seen() -> set[str]:
    table = models.SyncState._meta.table_name
    return {row[0] for row in database.execute_sql(f'SELECT school_id FROM "{table}"')}
