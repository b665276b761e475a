"""Writes and lookups of journal tables, used by the importer.

Upserts go through the DB-API `executemany` with one prepared statement per table: an
import of a year of marks is millions of rows, and building a peewee query per row would
cost more than the database work itself.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from typing import Any

import peewee

from db import models
from db.connection import database

_BATCH = 5000


def table_for(entity: str) -> type[models.JournalModel]:
    return models.JOURNAL_TABLES[entity]


def column_names(entity: str) -> list[str]:
    return [field.column_name for field in table_for(entity)._meta.sorted_fields]


def _default_of(field: peewee.Field) -> Any:
    default = field.default
    return default() if callable(default) else default


def _to_db(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, bool):
        return int(value)
    return value


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


def upsert_rows(entity: str, rows: Sequence[dict[str, Any]]) -> None:
    """Insert or update rows keyed by upstream id; an older `updated_at` never wins.

    Every row gets all columns: missing keys take the model default, and `deleted_at` is
    cleared, so an upsert after a tombstone brings the row back.
    """
    fields = table_for(entity)._meta.sorted_fields
    defaults = {f.column_name: _default_of(f) for f in fields}
    defaults["deleted_at"] = None
    names = [f.column_name for f in fields]
    sql = _upsert_sql(entity)
    cursor = database.cursor()
    for start in range(0, len(rows), _BATCH):
        chunk = rows[start : start + _BATCH]
        params = [tuple(_to_db(row.get(n, defaults[n])) for n in names) for row in chunk]
        cursor.executemany(sql, params)


def tombstone(entity: str, ids_with_times: Iterable[tuple[str, str]]) -> int:
    """Mark rows deleted, unless upstream already sent something newer. Returns rows hit."""
    table = table_for(entity)._meta.table_name
    p = database.param
    sql = (
        f'UPDATE "{table}" SET deleted_at = {p}, updated_at = {p} '
        f"WHERE id = {p} AND updated_at <= {p}"
    )
    cursor = database.cursor()
    hit = 0
    for row_id, at in ids_with_times:
        cursor.execute(sql, (at, at, row_id, at))
        hit += cursor.rowcount
    return hit


def existing_ids(entity: str, ids: Iterable[str]) -> set[str]:
    """Which of `ids` exist (and are not tombstoned) in the entity's table."""
    table = table_for(entity)
    wanted = list(set(ids))
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        query = table.select(table.id).where(table.id.in_(chunk), table.deleted_at.is_null())
        found.update(row.id for row in query)
    return found


def rows_by_id(entity: str, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    table = table_for(entity)
    wanted = list(set(ids))
    result: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), 500):
        query = table.select().where(table.id.in_(wanted[start : start + 500])).dicts()
        result.update({row["id"]: row for row in query})  # type: ignore[index, misc]
    return result


def group_members(group_ids: Iterable[str]) -> set[str]:
    wanted = list(set(group_ids))
    members: set[str] = set()
    m = models.Membership
    for start in range(0, len(wanted), 500):
        query = m.select(m.student_id).where(m.group_id.in_(wanted[start : start + 500]))
        members.update(row.student_id for row in query)
    return members


def students_of_classes(class_ids: Iterable[str]) -> set[str]:
    s = models.Student
    return {row.id for row in s.select(s.id).where(s.class_unit_id.in_(list(set(class_ids))))}


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


def batch_seen(batch_hash: str) -> bool:
    return models.ImportLog.select().where(models.ImportLog.batch_hash == batch_hash).exists()


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
    models.ImportLog.create(
        source=source,
        origin=origin,
        batch_hash=batch_hash,
        mode=mode,
        cursor=cursor,
        counts=json.dumps(counts, sort_keys=True),
        imported_at=at,
    )
    models.SyncState.insert(
        source=source, cursor=cursor, school_id=school_id, updated_at=at
    ).on_conflict(
        conflict_target=[models.SyncState.source],
        update={
            models.SyncState.cursor: cursor,
            models.SyncState.updated_at: at,
            models.SyncState.school_id: school_id,
        },
    ).execute()


def cursor_of(source: str) -> str | None:
    row = models.SyncState.get_or_none(models.SyncState.source == source)
    return row.cursor if row else None


def school_ids_seen() -> set[str]:
    return {row.school_id for row in models.SyncState.select(models.SyncState.school_id)}
