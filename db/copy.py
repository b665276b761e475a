"""Copying every table of one database into the one the models are bound to (`otmetka db
copy`): tables in foreign-key order, rows with their own ids, and PostgreSQL's id
sequences moved past the ids copied."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import peewee as pw

from db import database, models

Model = type[models.BaseModel]
# Values per INSERT statement: a batch stays under SQLite's and PostgreSQL's parameter limits.
VALUES_PER_BATCH = 30_000


def tables() -> list[Model]:
    """Every table, each after the tables its foreign keys point to."""
    return list(pw.sort_models(models.ALL_TABLES))  # type: ignore[attr-defined]


def table_name(model: Model) -> str:
    return str(model._meta.table_name)


def count_rows(db: pw.Database, model: Model) -> int:
    row = db.execute(model.select(pw.fn.COUNT(pw.SQL("*")))).fetchone()
    return int(row[0])


def filled_tables() -> list[str]:
    """Tables of the bound database that hold a row."""
    return [table_name(model) for model in tables() if model.select().exists()]


def delete_every_row() -> None:
    """Empty every table of the bound database, children before parents (a restore does
    it inside the transaction that copies the backup in)."""
    for model in reversed(tables()):
        model.delete().execute()


@contextmanager
def snapshot(source: pw.Database) -> Iterator[None]:
    """One read transaction on `source`: every table as of the same moment."""
    with source.atomic():
        if not isinstance(source, pw.SqliteDatabase):  # SQLite's read transaction is one
            source.execute_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def copy_table(source: pw.Database, model: Model, advance: Callable[[int], None]) -> None:
    """Read the source table in key order and insert it in batches. The rows pass through
    the fields' own conversions on the way in (SQLite's 1/0 become booleans, its text
    times timestamps), so they land as if written by otmetka. Raises peewee's
    IntegrityError or DataError for a row the target refuses."""
    fields = list(model._meta.sorted_fields)
    per_batch = max(1, VALUES_PER_BATCH // len(fields))
    keys = model._meta.get_primary_keys()
    cursor = source.execute(model.select(*fields).order_by(*keys))
    while rows := cursor.fetchmany(per_batch):
        model.insert_many(rows, fields=fields).execute()
        advance(len(rows))


def advance_sequences() -> None:
    """Rows came with their ids, so PostgreSQL's id sequences never moved: set each to the
    largest id copied, or the next row written there would clash with a copied one."""
    if database.obj is None or isinstance(database.obj, pw.SqliteDatabase):
        return  # SQLite takes the next id after the largest there
    for model in tables():
        key = model._meta.primary_key
        if not isinstance(key, pw.AutoField):
            continue
        sequence = pw.fn.pg_get_serial_sequence(f'"{table_name(model)}"', key.column_name)
        largest = pw.fn.MAX(key)
        model.select(
            pw.fn.setval(sequence, pw.fn.COALESCE(largest, 1), largest.is_null(False))
        ).scalar()
