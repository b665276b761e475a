"""The one database handle of the process.

Models bind to `database`, a proxy that is initialised late (`open_database`) so that the
config decides the file or URL. SQLite gets WAL (readers never block the writer), foreign
keys, a busy timeout and full fsync, because the events written here are legal records.
Also the write transaction, and `batches`/`chunks`: long lists cut to one statement each.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import peewee
from playhouse.db_url import connect as connect_url

database = peewee.DatabaseProxy()
_opened_url: str | None = None
# Values bound in one statement: far below SQLite's variable limit, and a page of rows.
BATCH = 500
T = TypeVar("T")


def sqlite_pragmas(busy_timeout_ms: int) -> dict[str, object]:
    return {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "busy_timeout": busy_timeout_ms,
        "synchronous": "full",
        "cache_size": -32000,
        "temp_store": "memory",
    }


def bind_none_directly() -> None:
    """Let Python's sqlite3 bind None as NULL without searching for an adapter.

    It binds str, int and float at once but looks every other value up in its adapter
    registry, and for None, found nowhere, it then tries two attribute lookups before
    binding NULL: about 0.4 µs each time. A year's import binds some 3.6 million Nones (a
    mark has five columns that are mostly empty), so that search cost more than a tenth of
    a pull. An entry for None makes it one dictionary hit and a call that returns None
    (`dict.get` of an empty dict, a C function). Process-wide, like sqlite3's own adapters
    for dates; the value bound is the same NULL."""
    sqlite3.register_adapter(type(None), _NONE_ADAPTER)


_NOTHING: dict[object, None] = {}
_NONE_ADAPTER = _NOTHING.get  # takes one argument and returns None


def database_for(url: str, busy_timeout_ms: int = 5000) -> peewee.Database:
    """A database for `url` (sqlite:///path, sqlite:///:memory:, postgresql://...), not yet
    connected nor bound to the proxy."""
    if url.startswith("sqlite:///"):
        bind_none_directly()
        path = url.removeprefix("sqlite:///")
        if path != ":memory:":
            owner_only(Path(path))
        return peewee.SqliteDatabase(path, pragmas=sqlite_pragmas(busy_timeout_ms))
    return server_database(url, busy_timeout_ms)


def open_database(url: str, busy_timeout_ms: int = 5000) -> peewee.Database:
    """Connect the proxy to `url`."""
    db = database_for(url, busy_timeout_ms)
    database.initialize(db)
    db.connect(reuse_if_open=True)
    global _opened_url
    _opened_url = url
    return db


def opened_url() -> str | None:
    """The URL `open_database` was last given (the proxy's database)."""
    return _opened_url


def server_database(url: str, busy_timeout_ms: int = 5000) -> peewee.Database:
    """A database server (PostgreSQL), not yet bound to the proxy. Every session runs in
    UTC: times are stored naive UTC, and the server's own zone would shift an aware value
    on its way into a TIMESTAMP column. Floats are 8-byte DOUBLE PRECISION, as SQLite's
    REAL is (peewee would make them 4-byte REAL there: 7 digits). A lock (the writers' one
    included) is waited for at most `busy_timeout_ms`, as SQLite's busy timeout does."""
    options = f"-c timezone=UTC -c lock_timeout={int(busy_timeout_ms)}"
    return connect_url(url, options=options, field_types={"FLOAT": "DOUBLE PRECISION"})


OWNER_ONLY = 0o600


def owner_only(path: Path) -> None:
    """Create the database file owner-only before SQLite does (it would follow the umask),
    and tighten one made earlier. SQLite gives its -wal and -shm files the database file's
    mode, so they follow; those left from an earlier run are tightened here too."""
    try:
        path.parent.mkdir(parents=True)
    except FileExistsError:
        pass
    else:
        os.chmod(path.parent, 0o700)  # made for the database alone (mkdir obeys the umask)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, OWNER_ONLY))
    for each in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if each.stat().st_mode & 0o777 != OWNER_ONLY:
                os.chmod(each, OWNER_ONLY)
        except (FileNotFoundError, PermissionError):  # gone, or not ours: SQLite will say
            continue


def close_database() -> None:
    if database.obj is not None and not database.is_closed():
        database.close()


def is_sqlite() -> bool:
    return isinstance(database.obj, peewee.SqliteDatabase)


@contextmanager
def write_transaction() -> Iterator[None]:
    """A write transaction that takes the write lock up front.

    A deferred SQLite transaction that reads first and writes later can fail with "database
    is locked" when another writer got in between; IMMEDIATE waits for the lock instead.
    """
    if is_sqlite():
        with database.atomic("IMMEDIATE"):
            yield
    else:
        with database.atomic():
            # The same one writer at a time on a server: the audit chain reads its head and
            # appends after it, which two concurrent writers would both do. Advisory locks
            # belong to one database, so schools sharing a server do not wait for each other.
            database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            yield


def batches(items: list[T], size: int = BATCH) -> Iterator[list[T]]:
    """`items` in slices of at most `size`, one statement each."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def chunks(values: Iterable[Any], size: int = BATCH) -> Iterator[list[Any]]:
    """The distinct `values`, sorted, in lists of at most `size` for one IN (...) each."""
    return batches(sorted(set(values)), size)


def _columns(fields: Sequence[peewee.Field]) -> str:
    return ", ".join(f'"{f.column_name}"' for f in fields)


def upsert_many(
    model: type[peewee.Model],
    fields: Sequence[peewee.Field],
    rows: Iterable[Sequence[Any]],
    *,
    conflict: Sequence[peewee.Field],
    update: Sequence[peewee.Field],
) -> None:
    """Insert `rows` (values in `fields` order) with one prepared statement; a row whose
    `conflict` columns exist already sets its `update` columns instead. Values go through
    each field's db_value, as in peewee's own queries, without a query object per batch:
    the manifest of a full build is thousands of rows written while every page waits."""
    updates = ", ".join(f'"{f.column_name}" = excluded."{f.column_name}"' for f in update)
    sql = (
        f'INSERT INTO "{model._meta.table_name}" ({_columns(fields)}) '
        f"VALUES ({', '.join(database.param for _ in fields)}) "
        f"ON CONFLICT ({_columns(conflict)}) DO UPDATE SET {updates}"
    )
    to_db = [f.db_value for f in fields]
    values = [tuple(convert(v) for convert, v in zip(to_db, row, strict=True)) for row in rows]
    if values:
        database.cursor().executemany(sql, values)


WRITE_LOCK = 0x6F746D6B  # "otmk": the advisory lock key of write transactions on PostgreSQL
