"""Copying every table of one database into the one the models are bound to (`otmetka db
copy`): tables in foreign-key order, rows with their own ids, and PostgreSQL's id
sequences moved past the ids copied."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from typing import Any

import peewee as pw

from otmetka.db import database, models

Model = type[models.BaseModel]
# Values per batch read and written: bounds the memory a copy holds at once.
VALUES_PER_BATCH = 30_000
_cursor_names = itertools.count()


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
    query = model.select(*fields).order_by(*keys)
    insert = _inserter(model, fields)
    with closing(_rows_of(source, query, per_batch)) as cursor:
        while rows := cursor.fetchmany(per_batch):
            insert(rows)
            advance(len(rows))


def _inserter(model: Model, fields: list[pw.Field]) -> Callable[[list[Any]], None]:
    """Insert rows into the bound database with one statement per batch. Each value goes
    through its field's `db_value`, as an insert through the model does; peewee building
    that statement value by value took four fifths of a copy, so the driver builds it."""
    target = database.obj
    convert = [field.db_value for field in fields]
    columns = ", ".join(f'"{field.column_name}"' for field in fields)
    sql = f'INSERT INTO "{table_name(model)}" ({columns}) VALUES '

    def insert(rows: list[Any]) -> None:
        values = [tuple(c(v) for c, v in zip(convert, row, strict=True)) for row in rows]
        # The driver's errors as peewee's (IntegrityError, DataError), as elsewhere.
        with pw.__exception_wrapper__:  # type: ignore[attr-defined]
            if isinstance(target, pw.SqliteDatabase):
                marks = ", ".join("?" * len(fields))
                target.cursor().executemany(f"{sql}({marks})", values)
            else:
                from psycopg2.extras import execute_values

                execute_values(target.cursor(), f"{sql}%s", values, page_size=len(values))

    return insert


def _rows_of(source: pw.Database, query: pw.Query, per_batch: int) -> Any:
    """A cursor over the query's rows. PostgreSQL's driver would fetch a whole table
    into memory at once (a year of marks); a named (server-side)
    cursor brings them a batch at a time. It reads in the snapshot's transaction; the
    driver wants it WITH HOLD, as peewee keeps the connection in autocommit mode and
    opens its transactions itself."""
    if isinstance(source, pw.SqliteDatabase):
        return source.execute(query)
    sql, params = source.get_sql_context().sql(query).query()
    cursor = source.connection().cursor(f"otmetka_copy_{next(_cursor_names)}", withhold=True)
    cursor.itersize = per_batch
    cursor.execute(sql, params)
    return cursor


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
