"""Copying every table of one database into the one the models are bound to (`otmetka db
copy`, a restore on PostgreSQL): tables in foreign-key order, rows with their own ids
(into PostgreSQL as one COPY per table, in its text format), and PostgreSQL's id
sequences moved past the ids copied."""

from __future__ import annotations

import datetime as dt
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
    """Read the source table in order and write it into the bound database. The rows
    land as if written by otmetka: each value as its field's `db_value` makes it (SQLite's
    1/0 become booleans, its text times timestamps). Raises peewee's IntegrityError or
    DataError for a row the target refuses."""
    fields = list(model._meta.sorted_fields)
    per_batch = max(1, VALUES_PER_BATCH // len(fields))
    query = model.select(*fields).order_by(*_order(source, model))
    with closing(_rows_of(source, query, per_batch)) as cursor:
        batches: Iterator[list[Any]] = iter(lambda: cursor.fetchmany(per_batch), [])
        if isinstance(database.obj, pw.SqliteDatabase):
            _insert(model, fields, batches, advance)
        else:
            _copy_in(model, fields, batches, advance, lambda line: _nth_row(source, query, line))


def _order(source: pw.Database, model: Model) -> list[Any]:
    """Key order; SQLite's in the order rows are stored (rowid): a text key's order took
    a lookup of the row for each entry of the key's index."""
    if isinstance(source, pw.SqliteDatabase):
        return [pw.SQL("rowid")]
    return list(model._meta.get_primary_keys())


def _insert(
    model: Model,
    fields: list[pw.Field],
    batches: Iterator[list[Any]],
    advance: Callable[[int], None],
) -> None:
    """SQLite: one executemany per batch, each value through its field's `db_value`, as an
    insert through the model does; peewee building that statement value by value took four
    fifths of a copy. Most columns need no conversion, or one the interpreter maps whole."""
    target = database.obj
    columns = ", ".join(f'"{field.column_name}"' for field in fields)
    marks = ", ".join("?" * len(fields))
    sql = f'INSERT INTO "{table_name(model)}" ({columns}) VALUES ({marks})'
    for rows in batches:
        values = list(zip(*_converted(fields, rows), strict=True))
        # The driver's errors as peewee's (IntegrityError, DataError), as elsewhere.
        with pw.__exception_wrapper__:  # type: ignore[attr-defined]
            target.cursor().executemany(sql, values)
        advance(len(rows))


def _copy_in(
    model: Model,
    fields: list[pw.Field],
    batches: Iterator[list[Any]],
    advance: Callable[[int], None],
    nth_row: Callable[[int], Any],
) -> None:
    """PostgreSQL: the whole table one COPY ... FROM STDIN in the text format, its lines
    made a batch at a time while the driver asks for them, so the server reads one batch
    while the next is spelled (a COPY per batch kept each side waiting for the other). A
    row the server refuses is named by its key and column (`nth_row` reads it again)."""
    import psycopg2

    columns = ", ".join(f'"{field.column_name}"' for field in fields)
    sql = f'COPY "{table_name(model)}" ({columns}) FROM STDIN'
    keys = [fields.index(key) for key in model._meta.get_primary_keys()]
    lines = _Lines(_chunks(fields, keys, batches, advance))
    with pw.__exception_wrapper__:  # type: ignore[attr-defined]
        try:
            database.obj.cursor().copy_expert(sql, lines, size=COPY_CHUNK)
        except psycopg2.Error as error:
            if lines.error is not None:  # the driver ended the COPY for it
                raise lines.error from None
            raise type(error)(_refused(error, nth_row, keys)) from None


def _chunks(
    fields: list[pw.Field],
    keys: list[int],
    batches: Iterator[list[Any]],
    advance: Callable[[int], None],
) -> Iterator[str]:
    """Each batch's lines of COPY text. A value its field cannot take (text in an integer
    column) raises peewee's DataError naming the row's key and the column."""
    spellers = [_speller(field) for field in fields]
    for rows in batches:
        texts = []
        for column, values in enumerate(zip(*rows, strict=True)):
            spell = spellers[column]
            try:
                texts.append(spell(values))
            except (ValueError, TypeError, OverflowError) as error:
                raise _unusable(fields[column], spell, rows, column, keys, error) from None
        yield "\n".join(map("\t".join, zip(*texts, strict=True))) + "\n"
        advance(len(rows))


def _unusable(
    field: pw.Field, spell: Speller, rows: list[Any], column: int, keys: list[int], error: Exception
) -> Exception:
    """The error naming the first row whose value in `column` cannot be spelled."""
    for row in rows:
        try:
            spell([row[column]])
        except (ValueError, TypeError, OverflowError):
            key = ", ".join(str(row[index]) for index in keys)
            return pw.DataError(f"row {key}, column {field.column_name}: {error}")
    return error


# Characters a size the driver asks for at once (the chunks are a batch each, whatever
# their size).
COPY_CHUNK = 256 * 1024


class _Lines:
    """What the driver reads a COPY's data from: one chunk of lines each call, "" at the
    end. An error raised making a chunk is kept: the driver reports only its text."""

    def __init__(self, chunks: Iterator[str]) -> None:
        self.chunks = chunks
        self.error: Exception | None = None

    def read(self, size: int = -1) -> str:
        try:
            return next(self.chunks, "")
        except Exception as error:
            self.error = error
            raise


def _nth_row(source: pw.Database, query: pw.Select, line: int) -> Any:
    """The `line`th row (from 1) of the query, read again from the source's snapshot."""
    return source.execute(query.clone().offset(line - 1).limit(1)).fetchone()


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


# --- COPY's text format -----------------------------------------------------------------------
# NULL is \N; a backslash, tab, newline and carriage return inside a value are escaped, so
# a value never ends its field or line, and "\." never reads as the end of the data.
NULL = "\\N"
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_SPECIAL = re.compile(r"[\\\t\n\r]")
# Text the server reads as the same date or time as Python's `strptime` in the fields'
# `db_value` (which then sends it spelled as `datetime.isoformat`): passed on as it is.
# Other text (an offset, a day that does not exist) goes through `db_value` as before.
_DATE = "[0-9]{4}-[0-9]{2}-[0-9]{2}"
_DATES = re.compile(f"(?:{_DATE}\n)*")
_DATETIMES = re.compile(f"(?:{_DATE}(?: [0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}}(?:\\.[0-9]{{1,6}})?)?\n)*")
_BOOLEANS: dict[Any, str] = {False: "f", True: "t", None: NULL}  # SQLite's 0 and 1 too
Speller = Callable[[Sequence[Any]], list[str]]


def _speller(field: pw.Field) -> Speller:
    """How a column of `field` is spelled: its values as `copy_value(field.db_value(v))`,
    the values of the types the column usually holds spelled in one go."""
    if isinstance(field, pw.ForeignKeyField):
        field = field.rel_field  # its db_value is the key's
    slow = _slow(field)
    if type(field).db_value is not pw.Field.db_value and not isinstance(field, pw.BlobField):
        return slow
    adapt = type(field).adapt
    if adapt is pw.CharField.adapt:
        return _column(str, _texts, slow)
    if adapt is pw.IntegerField.adapt:
        return _column(int, lambda values: list(map(str, values)), slow)
    if adapt is pw.FloatField.adapt:
        return _column(float, _floats, slow)
    if adapt is pw.BooleanField.adapt:
        return lambda values: _booleans(values, slow)
    if adapt is pw.DateTimeField.adapt:
        return _column(str, _matching(_DATETIMES), slow)
    if adapt is pw.DateField.adapt:
        return _column(str, _matching(_DATES), slow)
    if isinstance(field, pw.BlobField):
        return _column(bytes, _blobs, slow)
    return slow


def _slow(field: pw.Field) -> Speller:
    def spell(values: Sequence[Any]) -> list[str]:
        return [copy_value(field.db_value(value)) for value in values]

    return spell


def _column(kind: type, fast: Callable[[list[Any]], list[str] | None], slow: Speller) -> Speller:
    """Values all of `kind` (NULLs apart) spelled by `fast` together, unless it gives up."""

    def spell(values: Sequence[Any]) -> list[str]:
        present = [value for value in values if value is not None]
        if set(map(type, present)) <= {kind}:
            spelled = fast(present)
            if spelled is not None:
                if len(present) == len(values):
                    return spelled
                each = iter(spelled)
                return [NULL if value is None else next(each) for value in values]
        return slow(values)

    return spell


def _texts(values: list[str]) -> list[str]:
    if not _SPECIAL.search("".join(values)):
        return values
    return [value.translate(_ESCAPES) if _SPECIAL.search(value) else value for value in values]


def _floats(values: list[float]) -> list[str] | None:
    return list(map(repr, values)) if all(map(math.isfinite, values)) else None


def _booleans(values: Sequence[Any], slow: Speller) -> list[str]:
    spelled = list(map(_BOOLEANS.get, values))
    return slow(values) if None in spelled else spelled  # type: ignore[return-value]


def _matching(pattern: re.Pattern[str]) -> Callable[[list[str]], list[str] | None]:
    def spell(values: list[str]) -> list[str] | None:
        return values if pattern.fullmatch("\n".join(values) + "\n") else None

    return spell


def _blobs(values: list[bytes]) -> list[str]:
    return ["\\\\x" + value.hex() for value in values]


def copy_value(value: Any) -> str:
    """One value as a field of PostgreSQL's COPY text format, read there as the driver
    would send it in an INSERT."""
    if value is None:
        return NULL
    if isinstance(value, str):
        return value.translate(_ESCAPES)
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
        return "\\\\x" + bytes(raw).hex()
    return copy_value(str(value))


_SPECIAL_FLOATS = {"inf": "Infinity", "-inf": "-Infinity", "nan": "NaN"}
_COPY_CONTEXT = re.compile(r"line (\d+)(?:, column (\w+))?")


def _refused(error: Exception, nth_row: Callable[[int], Any], keys: list[int]) -> str:
    """The server's first line, led by the key and column of the row it refused (its
    context counts the lines of the table's COPY)."""
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    found = _COPY_CONTEXT.search(getattr(getattr(error, "diag", None), "context", None) or "")
    row = nth_row(int(found[1])) if found is not None and int(found[1]) > 0 else None
    if found is None or row is None:
        return message
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
