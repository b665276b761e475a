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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit, urlunsplit

import peewee as pw

from otmetka.daemon.core.config import Config
from otmetka.daemon.core.errors import OtmetkaError
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
    source = _Source(url, busy_timeout_ms, "the project database")
    _copy(source, f"{SQLITE}{path}", path, Reporter(quiet=True), replace=False)


def migrate_file(path: Path) -> None:
    """Give the SQLite file `path` (new, or from an older otmetka) this otmetka's schema.
    It binds the models to the file for the while."""
    open_database(f"{SQLITE}{path}")
    migrate()
    close_database()


def replace_database(config: Config, backup_file: Path, reporter: Reporter) -> CopyResult:
    """Every row of the project's database replaced by those of `backup_file` (a checked
    SQLite backup with this otmetka's schema): the tables truncated and the rows copied in
    (COPY) in one transaction, so a failure leaves the database as it was. Restore on
    PostgreSQL."""
    source = _Source(f"{SQLITE}{backup_file}", config.database.busy_timeout_ms, "the backup")
    target = safe_url(config.database.url)
    return _copy(source, config.database.url, target, reporter, replace=True)


class _Source(NamedTuple):
    url: str
    busy_timeout_ms: int
    what: str  # how messages name it


def _copy(
    named: _Source, to_url: str, target: str, reporter: Reporter, *, replace: bool
) -> CopyResult:
    """Read the source in one snapshot and copy it into `to_url`: into an empty
    database, or with `replace` over every row there."""
    source = _open(named.url, named.busy_timeout_ms, named.what)
    try:
        _check_source(source, named.url)
        with table_copy.snapshot(source):
            counts = {model: table_copy.count_rows(source, model) for model in table_copy.tables()}
            return _copy_into(to_url, target, source, counts, reporter, replace)
    finally:
        source.close()


def _copy_into(
    to_url: str,
    target: str,
    source: pw.Database,
    counts: dict[table_copy.Model, int],
    reporter: Reporter,
    replace: bool,
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
