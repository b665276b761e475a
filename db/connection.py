"""The one database handle of the process.

Models bind to `database`, a proxy that is initialised late (`open_database`) so that the
config decides the file or URL. SQLite gets WAL (readers never block the writer), foreign
keys, a busy timeout and full fsync, because the events written here are legal records.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import peewee
from playhouse.db_url import connect as connect_url

database = peewee.DatabaseProxy()


def sqlite_pragmas(busy_timeout_ms: int) -> dict[str, object]:
    return {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "busy_timeout": busy_timeout_ms,
        "synchronous": "full",
        "cache_size": -32000,
        "temp_store": "memory",
    }


def open_database(url: str, busy_timeout_ms: int = 5000) -> peewee.Database:
    """Connect the proxy to `url` (sqlite:///path, sqlite:///:memory:, postgresql://...)."""
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        db: peewee.Database = peewee.SqliteDatabase(path, pragmas=sqlite_pragmas(busy_timeout_ms))
    else:
        db = connect_url(url)
    database.initialize(db)
    db.connect(reuse_if_open=True)
    return db


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
            yield
