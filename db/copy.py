"""Copying every table of one database into the one the models are bound to (`otmetka db
copy`, a restore on PostgreSQL): tables in foreign-key order, rows with their own ids
(into PostgreSQL through COPY, as CSV), and PostgreSQL's id sequences moved past the ids
copied."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import math
import re
from collections.abc import Callable, Iterator, Sequence
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


def empty_every_table() -> None:
    """Empty every table of the bound database (a restore does it inside the transaction
    that copies the backup in). PostgreSQL truncates them all in one statement, its id
    sequences reset: deleting row by row wrote each row's removal to the log first."""
    target = database.obj
    if isinstance(target, pw.SqliteDatabase):
        for model in reversed(tables()):
            model.delete().execute()
        return
    names = ", ".join(f'"{table_name(model)}"' for model in tables())
    target.execute_sql(f"TRUNCATE TABLE {names} RESTART IDENTITY")


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
    """Write rows into the bound database, one statement per batch. Each value goes
    through its field's `db_value`, as an insert through the model does; peewee building
    that statement value by value took four fifths of a copy, so the driver takes the
    rows as they are: SQLite's executemany, PostgreSQL's COPY. The batch is handled a
    column at a time: most columns need no conversion, or one the interpreter maps whole."""
    target = database.obj
    columns = ", ".join(f'"{field.column_name}"' for field in fields)
    if not isinstance(target, pw.SqliteDatabase):
        return _copier(model, fields, columns)
    marks = ", ".join("?" * len(fields))
    sql = f'INSERT INTO "{table_name(model)}" ({columns}) VALUES ({marks})'

    def insert(rows: list[Any]) -> None:
        values = list(zip(*_converted(fields, rows), strict=True))
        # The driver's errors as peewee's (IntegrityError, DataError), as elsewhere.
        with pw.__exception_wrapper__:  # type: ignore[attr-defined]
            target.cursor().executemany(sql, values)

    return insert


def _copier(model: Model, fields: list[pw.Field], columns: str) -> Callable[[list[Any]], None]:
    """PostgreSQL: each batch one COPY ... FROM STDIN in CSV, the values spelled as the
    server reads them (`csv_value`). A row it refuses is named by its key and column."""
    import psycopg2

    sql = f'COPY "{table_name(model)}" ({columns}) FROM STDIN WITH (FORMAT csv)'
    keys = [fields.index(key) for key in model._meta.get_primary_keys()]

    def copy(rows: list[Any]) -> None:
        texts = [_csv_column(values) for values in _converted(fields, rows)]
        data = "\n".join(map(",".join, zip(*texts, strict=True))) + "\n"
        with pw.__exception_wrapper__:  # type: ignore[attr-defined]
            try:
                database.obj.cursor().copy_expert(sql, io.StringIO(data))
            except psycopg2.Error as error:
                raise type(error)(_refused(error, rows, keys)) from None

    return copy


# Field kinds whose `db_value` hands values of these exact types back unchanged.
_UNCHANGED: list[tuple[Any, frozenset[type]]] = [
    (pw.CharField.adapt, frozenset({str})),  # TextField's too
    (pw.IntegerField.adapt, frozenset({int})),  # AutoField's too
    (pw.FloatField.adapt, frozenset({float})),
    (pw.BooleanField.adapt, frozenset({bool})),
    (pw.DateField.adapt, frozenset({dt.date})),
    (pw.DateTimeField.adapt, frozenset({dt.datetime})),
]
_NONE = type(None)


def _unchanged(field: pw.Field) -> frozenset[type]:
    kind = type(field)
    if kind.db_value is not pw.Field.db_value:
        return frozenset()
    return next((types for adapt, types in _UNCHANGED if kind.adapt is adapt), frozenset())


def _converted(fields: list[pw.Field], rows: list[Any]) -> list[Sequence[Any]]:
    """The batch's columns, each value as its field's `db_value` makes it; a column whose
    values that leaves as they are (text in a text column) is passed on whole."""
    columns: list[Sequence[Any]] = []
    for field, values in zip(fields, zip(*rows, strict=True), strict=True):
        if set(map(type, values)) - {_NONE} <= _unchanged(field):
            columns.append(values)
        else:
            columns.append(list(map(field.db_value, values)))
    return columns


def _csv_column(values: Sequence[Any]) -> Sequence[str]:
    """`csv_value` of every value; a column of one plain type spelled in one go."""
    kinds = set(map(type, values))
    if _NONE in kinds and len(kinds) > 1:  # NULLs apart, the rest spelled together
        spelled = iter(_csv_column([v for v in values if v is not None]))
        return ["" if v is None else next(spelled) for v in values]
    if kinds == {str}:
        doubled = map(str.replace, values, itertools.repeat('"'), itertools.repeat('""'))
        return list(map('"{}"'.format, doubled))
    if kinds == {int}:
        return list(map(str, values))
    if kinds == {float} and all(map(math.isfinite, values)):
        return list(map(repr, values))
    if kinds == {bool}:
        return list(map(_BOOLEANS.__getitem__, values))
    if kinds == {dt.date}:
        return list(map(dt.date.isoformat, values))
    return list(map(csv_value, values))


def csv_value(value: Any) -> str:
    """One value as a field of PostgreSQL's CSV COPY, read there as the driver would send
    it in an INSERT. NULL is the bare empty field; text is always quoted, so an empty
    string stays one and no line reads as the end-of-data marker."""
    if value is None:
        return ""
    if isinstance(value, str):
        return '"' + value.replace('"', '""') + '"'
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else _SPECIAL_FLOATS[repr(value)]
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:  # the driver sends it as timestamptz; sessions are UTC
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat(" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    raw = getattr(value, "adapted", value)  # the driver's Binary wrapper, as BlobField makes
    if isinstance(raw, bytes | bytearray | memoryview):
        return "\\x" + bytes(raw).hex()
    return csv_value(str(value))


_SPECIAL_FLOATS = {"inf": "Infinity", "-inf": "-Infinity", "nan": "NaN"}
_BOOLEANS = {False: "f", True: "t"}
_COPY_CONTEXT = re.compile(r"line (\d+)(?:, column (\w+))?")


def _refused(error: Exception, rows: list[Any], keys: list[int]) -> str:
    """The server's first line, led by the key and column of the row it refused (its
    context counts the lines of this batch's COPY)."""
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    found = _COPY_CONTEXT.search(getattr(getattr(error, "diag", None), "context", None) or "")
    if found is None or not 0 < int(found[1]) <= len(rows):
        return message
    row = rows[int(found[1]) - 1]
    key = ", ".join(str(row[index]) for index in keys)
    column = f", column {found[2]}" if found[2] else ""
    return f"row {key}{column}: {message}"


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
