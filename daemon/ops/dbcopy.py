"""`otmetka db copy --to URL`: move a school's database to another one, as a rule from the
SQLite file to PostgreSQL (docs/operator.md, "Moving to PostgreSQL").

The target must be empty and carry the current schema (`otmetka init` with its URL makes
it so). Every table is copied in one transaction on the target, parents before children,
in batches (COPY on PostgreSQL), with the ids as they are, so the events, the audit chain
and the credentials are the same rows on both sides. Before the commit the row counts are
compared and the audit chain is verified on the target; any difference rolls the whole
copy back.

The source is only read, inside one read transaction (a consistent snapshot), but the
daemon must still be stopped: acts recorded after the copy would stay behind.

The copy of a PostgreSQL school into a new SQLite file (its backups, the rows a restore sets
aside) takes each table out of the server with `COPY ... TO STDOUT` and writes it with
plain executemany, a batch at a time, into a file written without a journal: the file is
new and removed on any failure, and it is checked and fsynced after (backup._seal). A
backup streams it in one go (`copy_to_new_file`); a restore first reads the rows out into
files (`read_out`), then writes them (`write_file`) in a process of its own while it
replaces them.
"""

from __future__ import annotations

import contextlib
import io
import re
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

import peewee as pw

from otmetka.daemon.core.config import Config
from otmetka.daemon.core.errors import OtmetkaError
from otmetka.daemon.core.private import private_file
from otmetka.daemon.core.progress import Reporter
from otmetka.db import audit, close_database, migrate, open_database, write_transaction
from otmetka.db import copy as table_copy
from otmetka.db.connection import database_for
from otmetka.db.migrations import LATEST_VERSION, schema_version

SQLITE = "sqlite:///"
SERVERS = ("postgresql://", "postgres://")


@dataclass
class CopyResult:
    target: str
    rows: dict[str, int]  # table -> rows copied, in copy order
    verification: audit.Verification

    @property
    def total(self) -> int:
        return sum(self.rows.values())

    def summary(self) -> str:
        filled = ", ".join(f"{table} {count}" for table, count in self.rows.items() if count)
        empty = len([count for count in self.rows.values() if not count])
        return (
            f"copied {self.total} rows into {self.target} ({filled or 'no rows'}; "
            f"{empty} tables empty); row counts match; {self.verification.summary()}"
        )


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    netloc = f"{parts.username}:***@{host}{port}" if parts.username else f"{host}{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def copy_database(config: Config, to_url: str, reporter: Reporter) -> CopyResult:
    """Copy the project's database into the empty database at `to_url`, then check it."""
    target = _check_url(to_url, config.database.url)
    source = _Source(config.database.url, config.database.busy_timeout_ms, "the project database")
    return _copy(source, to_url, target, reporter, replace=False)


def copy_to_new_file(url: str, busy_timeout_ms: int, path: str) -> None:
    """The database at `url` copied into the SQLite file `path` (new or empty), given this
    otmetka's schema first: the backup of a school on PostgreSQL. It binds the models to
    the file, so it runs in a process of its own (backup.consistent_copy)."""
    migrate_file(Path(path))
    source = _open(url, busy_timeout_ms, "the project database")
    try:
        _check_source(source, url)
        with table_copy.snapshot(source):
            source.execute_sql("SET LOCAL DateStyle = ISO")  # the dates as the file holds them
            counts = {model: table_copy.count_rows(source, model) for model in table_copy.tables()}
            with _new_file(path) as written:
                for model in counts:
                    _stream_table(source, model, written)
                _check_file_counts(written, counts, path)
    finally:
        source.close()
    _open_target(f"{SQLITE}{path}", path)
    try:
        _verify(path)
    finally:
        close_database()


@dataclass
class ReadOut:
    """The rows of every table as COPY text, one file each in `folder` (read_out)."""

    folder: Path
    counts: dict[str, int]
    encoding: str


def read_out(url: str, busy_timeout_ms: int, folder: Path) -> ReadOut:
    """Every table of the server at `url` in one snapshot, as the server's own COPY text
    into owner-only files in `folder`: quick, as nothing is typed or inserted yet. A restore
    reads the rows it replaces so, then turns them into a SQLite file (`write_file`, in a
    process of its own) while it copies the backup in."""
    source = _open(url, busy_timeout_ms, "the project database")
    try:
        _check_source(source, url)
        with table_copy.snapshot(source):
            source.execute_sql("SET LOCAL DateStyle = ISO")
            counts = {}
            for model in table_copy.tables():
                table = table_copy.table_name(model)
                counts[table] = table_copy.count_rows(source, model)
                with private_file(folder / table) as out:
                    source.cursor().copy_expert(_copy_out_sql(model), out)
            encoding = _ENCODINGS.get(source.connection().encoding, "utf-8")
    finally:
        source.close()
    return ReadOut(folder, counts, encoding)


def write_file(rows: ReadOut, path: str) -> None:
    """The rows `read_out` wrote into the SQLite file `path` (new or empty), given this
    otmetka's schema first, counted and the audit chain verified as in copy_to_new_file.
    It binds the models to the file: in a process of its own."""
    migrate_file(Path(path))
    models = {table_copy.table_name(model): model for model in table_copy.tables()}
    with _new_file(path) as written:
        for table in rows.counts:
            sink = _sink(models[table], written, rows.encoding)
            with (rows.folder / table).open("rb") as text:
                while chunk := text.read(COPY_CHUNK):
                    sink.write(chunk)
            sink.check_complete()
        _check_file_counts(written, {models[t]: n for t, n in rows.counts.items()}, path)
    _open_target(f"{SQLITE}{path}", path)
    try:
        _verify(path)
    finally:
        close_database()


def migrate_file(path: Path) -> None:
    """Give the SQLite file `path` (new, or from an older otmetka) this otmetka's schema.
    It binds the models to the file for the while."""
    open_database(f"{SQLITE}{path}")
    migrate()
    close_database()


def replace_database(
    config: Config,
    backup_file: Path,
    reporter: Reporter,
    before_commit: Callable[[], object] = lambda: None,
) -> CopyResult:
    """Every row of the project's database replaced by those of `backup_file` (a checked
    SQLite backup with this otmetka's schema): the tables truncated and the rows copied in
    (COPY) in one transaction, so a failure leaves the database as it was. Restore on
    PostgreSQL. `before_commit` runs last inside that transaction: what raises there rolls
    it back too."""
    source = _Source(f"{SQLITE}{backup_file}", config.database.busy_timeout_ms, "the backup")
    target = safe_url(config.database.url)
    return _copy(source, config.database.url, target, reporter, replace=True, last=before_commit)


class _Source(NamedTuple):
    url: str
    busy_timeout_ms: int
    what: str  # how messages name it


def _copy(
    named: _Source,
    to_url: str,
    target: str,
    reporter: Reporter,
    *,
    replace: bool,
    last: Callable[[], object] = lambda: None,
) -> CopyResult:
    """Read the source in one snapshot and copy it into `to_url`: into an empty
    database, or with `replace` over every row there."""
    source = _open(named.url, named.busy_timeout_ms, named.what)
    try:
        _check_source(source, named.url)
        with table_copy.snapshot(source):
            counts = {model: table_copy.count_rows(source, model) for model in table_copy.tables()}
            return _copy_into(to_url, target, source, counts, reporter, replace, last)
    finally:
        source.close()


def _copy_into(
    to_url: str,
    target: str,
    source: pw.Database,
    counts: dict[table_copy.Model, int],
    reporter: Reporter,
    replace: bool,
    last: Callable[[], object],
) -> CopyResult:
    _open_target(to_url, target)
    try:
        _check_target(target, replace)
        with write_transaction(), reporter.bar(f"copy to {target}", sum(counts.values())) as bar:
            if replace:
                table_copy.empty_every_table()
            for model in counts:
                _copy_table(source, model, bar)
            table_copy.advance_sequences()
            _check_counts(counts, target)
            verification = _verify(target)
            last()
        rows = {table_copy.table_name(m): n for m, n in counts.items()}
        return CopyResult(target, rows, verification)
    finally:
        close_database()


# --- the two databases ------------------------------------------------------------------------


def _check_url(to_url: str, source_url: str) -> str:
    if not to_url.startswith((*SERVERS, SQLITE)):
        raise OtmetkaError(
            f"--to {safe_url(to_url)}: give a database URL, postgresql://user@host/database "
            "(or sqlite:////absolute/file)"
        )
    if to_url == source_url:
        raise OtmetkaError(f"--to names the project's own database ({safe_url(to_url)})")
    return safe_url(to_url)


def _open(url: str, busy_timeout_ms: int, what: str) -> pw.Database:
    """A connection of its own, not the one the models use (that one is the target's)."""
    try:
        if url.startswith(SQLITE):
            path = Path(url.removeprefix(SQLITE))
            if not path.is_file():
                raise OtmetkaError(f"{what} {path} does not exist; check database.url")
        db = database_for(url, busy_timeout_ms)
        db.connect()
    except pw.ImproperlyConfigured as error:
        raise OtmetkaError(f"{error}: install it with `pip install 'otmetka[postgres]'`") from None
    except pw.OperationalError as error:
        raise OtmetkaError(f"cannot open {what} {safe_url(url)}: {_first_line(error)}") from None
    return db


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _check_source(source: pw.Database, url: str) -> None:
    version = schema_version(source)
    if version != LATEST_VERSION:
        raise OtmetkaError(
            f"the project database {safe_url(url)} has schema version {version}, this otmetka "
            f"{LATEST_VERSION}: run `otmetka status` once (it migrates), then copy"
        )


def _open_target(to_url: str, target: str) -> None:
    try:
        open_database(to_url)
    except pw.ImproperlyConfigured as error:
        raise OtmetkaError(f"{error}: install it with `pip install 'otmetka[postgres]'`") from None
    except pw.OperationalError as error:
        raise OtmetkaError(f"cannot open the target {target}: {_first_line(error)}") from None


def _check_target(target: str, replace: bool) -> None:
    """The target must have this otmetka's schema and, unless replaced, no row."""
    version = schema_version()
    if version != LATEST_VERSION:
        raise OtmetkaError(
            f"the target {target} has schema version {version}, not {LATEST_VERSION}: create "
            "its tables first with `otmetka --config NEW.yaml init` (database.url: the target)"
        )
    filled = [] if replace else table_copy.filled_tables()
    if filled:
        raise OtmetkaError(
            f"the target {target} is not empty ({', '.join(filled)} hold rows); nothing was "
            "copied. Copy only into a freshly created database"
        )


# --- copying ----------------------------------------------------------------------------------


def _copy_table(source: pw.Database, model: table_copy.Model, bar: Callable[[int], None]) -> None:
    try:
        table_copy.copy_table(source, model, bar)
    except (pw.IntegrityError, pw.DataError) as error:  # e.g. a date SQLite took as text
        raise OtmetkaError(
            f"the target refused a row of {table_copy.table_name(model)}: {_first_line(error)}; "
            "the copy was rolled back, nothing was written. Correct the row and copy again"
        ) from None


def _check_counts(counts: dict[table_copy.Model, int], target: str) -> None:
    found = {model: model.select().count() for model in counts}
    differ = [
        f"{table_copy.table_name(m)} {n} -> {found[m]}" for m, n in counts.items() if found[m] != n
    ]
    if differ:
        raise OtmetkaError(
            f"row counts differ on the target {target} ({', '.join(differ)}); the copy was "
            "rolled back, nothing was written"
        )


def _verify(target: str) -> audit.Verification:
    verification = audit.verify()
    if not verification.ok:
        raise OtmetkaError(
            f"on the target {target}: {verification.summary()}; the copy was rolled back. "
            "Run `otmetka audit verify` on the project database to see whether it is broken there"
        )
    return verification


# --- PostgreSQL into a new SQLite file --------------------------------------------------------


@contextlib.contextmanager
def _new_file(path: str) -> Iterator[sqlite3.Connection]:
    """One transaction on the new file, with no journal and no fsync: a failure anywhere
    removes the whole file (backup.consistent_copy), which is sealed when complete. The
    indexes are made again after the rows are in: built from sorted keys, not updated row
    by row in an order that touches every page of them (two thirds of the copy's time)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-32000")
        conn.execute("BEGIN")
        indexes = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        yield conn
        for _, sql in indexes:
            conn.execute(sql)
        conn.execute("COMMIT")
    finally:
        conn.close()


def _stream_table(source: pw.Database, model: table_copy.Model, file: sqlite3.Connection) -> None:
    """The table in key order as one COPY out of the server, into the file in batches."""
    encoding = _ENCODINGS.get(source.connection().encoding, "utf-8")
    sink = _sink(model, file, encoding)
    with io.BufferedWriter(sink, buffer_size=COPY_CHUNK) as buffered:
        source.cursor().copy_expert(_copy_out_sql(model), buffered)
    sink.check_complete()


def _copy_out_sql(model: table_copy.Model) -> str:
    columns = ", ".join(f'"{field.column_name}"' for field in model._meta.sorted_fields)
    keys = ", ".join(f'"{key.column_name}"' for key in model._meta.get_primary_keys())
    return (
        f'COPY (SELECT {columns} FROM "{table_copy.table_name(model)}" ORDER BY {keys}) TO STDOUT'
    )


def _sink(model: table_copy.Model, file: sqlite3.Connection, encoding: str) -> _CopyOut:
    """Where the COPY text of `model`'s table goes: typed and inserted into `file`."""
    fields = list(model._meta.sorted_fields)
    columns = ", ".join(f'"{field.column_name}"' for field in fields)
    table = table_copy.table_name(model)
    insert = f'INSERT INTO "{table}" ({columns}) VALUES ({", ".join("?" * len(fields))})'

    def write(rows: Iterator[tuple[Any, ...]]) -> None:
        try:
            file.executemany(insert, rows)
        except sqlite3.DatabaseError as error:
            raise OtmetkaError(
                f"the copy refused a row of {table}: {_first_line(error)}; nothing was kept"
            ) from None

    return _CopyOut(table, [_reader(table, field) for field in fields], write, encoding)


# Bytes of COPY text taken at once (some thousand rows): bounds what a copy holds.
COPY_CHUNK = 256 * 1024


class _CopyOut(io.RawIOBase):
    """Where a COPY ... TO STDOUT ends, behind a buffer so that it takes a chunk at a time
    and not a call per row: the complete rows of each chunk are decoded, split, typed and
    written at once; the row the chunk cuts waits for the next one."""

    def __init__(
        self,
        table: str,
        readers: list[Callable[[list[str]], Sequence[Any]]],
        write: Callable[[Iterator[tuple[Any, ...]]], None],
        encoding: str,
    ) -> None:
        super().__init__()
        self.table, self.readers, self.write_rows = table, readers, write
        self.encoding = encoding
        self.rest = b""

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = self.rest + bytes(data)
        end = chunk.rfind(b"\n") + 1
        self.rest = chunk[end:]
        if end:
            self._rows(chunk[:end].decode(self.encoding))
        return len(data)

    def _rows(self, text: str) -> None:
        # Rows end in a newline and values are cut by tabs (inside values both come
        # escaped): one split, and each column is a slice of it.
        values = text[:-1].replace("\n", "\t").split("\t")
        width = len(self.readers)
        if len(values) % width:
            raise OtmetkaError(f"the server sent rows of {self.table} this copy cannot read")
        columns = [read(values[k::width]) for k, read in enumerate(self.readers)]
        self.write_rows(zip(*columns, strict=True))

    def check_complete(self) -> None:
        if self.rest:
            raise OtmetkaError(f"the server's copy of {self.table} ended inside a row")


# The rows are written as the models would write them into SQLite: booleans 1 and 0, dates
# as ISO text, times as `datetime.isoformat(" ")` (microseconds six digits or none), bytes
# as blobs. COPY's text format spells NULL \N and escapes backslash and control characters.
NULL = "\\N"
_ESCAPED = re.compile(r"\\(.)")
_UNESCAPE = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_BOOLEANS = {"t": True, "f": False, NULL: None}
_ENCODINGS = {"UTF8": "utf-8", "SQL_ASCII": "ascii", "LATIN1": "latin-1"}
_SECONDS = len("2026-09-01 08:00:00")
_MICROSECONDS = len("2026-09-01 08:00:00.000000")


def _unescape(value: str) -> str:
    return _ESCAPED.sub(lambda found: _UNESCAPE.get(found[1], found[1]), value)


def _texts(values: list[str]) -> Sequence[str | None]:
    if "\\" not in "".join(values):
        return values
    return [
        None if value == NULL else _unescape(value) if "\\" in value else value for value in values
    ]


def _numbers(kind: Callable[[str], Any]) -> Callable[[list[str]], Sequence[Any]]:
    def read(values: list[str]) -> Sequence[Any]:
        if NULL not in values:
            return list(map(kind, values))
        return [None if value == NULL else kind(value) for value in values]

    return read


def _dates(values: list[str]) -> Sequence[str | None]:
    return values if NULL not in values else [None if v == NULL else v for v in values]


def _times(values: list[str]) -> Sequence[str | None]:
    """The server drops the zeros that end the fraction; Python writes six digits."""
    return [
        None if v == NULL else v if len(v) == _SECONDS else v.ljust(_MICROSECONDS, "0")
        for v in values
    ]


def _blobs(values: list[str]) -> Sequence[bytes | None]:
    # bytea in hex, its backslash escaped: \\x0aff
    return [None if v == NULL else bytes.fromhex(v.removeprefix("\\\\x")) for v in values]


_READERS: dict[str, Callable[[list[str]], Sequence[Any]]] = {
    "VARCHAR": _texts,
    "TEXT": _texts,
    "CHAR": _texts,
    "INT": _numbers(int),
    "AUTO": _numbers(int),
    "BIGINT": _numbers(int),
    "BIGAUTO": _numbers(int),
    "SMALLINT": _numbers(int),
    "FLOAT": _numbers(float),
    "DOUBLE": _numbers(float),
    "BOOL": lambda values: list(map(_BOOLEANS.__getitem__, values)),
    "DATE": _dates,
    "DATETIME": _times,
    "BLOB": _blobs,
}


def _reader(table: str, field: pw.Field) -> Callable[[list[str]], Sequence[Any]]:
    try:
        return _READERS[field.field_type]
    except KeyError:
        raise OtmetkaError(
            f"{table}.{field.column_name}: a {field.field_type} column cannot be copied "
            "into SQLite yet"
        ) from None


def _check_file_counts(
    file: sqlite3.Connection, counts: dict[table_copy.Model, int], path: str
) -> None:
    differ = []
    for model, count in counts.items():
        table = table_copy.table_name(model)
        (found,) = file.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()
        if found != count:
            differ.append(f"{table} {count} -> {found}")
    if differ:
        raise OtmetkaError(f"row counts differ in the copy {path} ({', '.join(differ)})")
