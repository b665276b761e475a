"""Errors shared by every part of otmetka, and what the CLI says about database failures.

`OtmetkaError` is defined in otmetka.db.errors (the bottom layer, so every layer can raise
it) and re-exported here for the daemon. The CLI catches `OtmetkaError`, prints its
message and exits 1 without a traceback, so every subclass must carry a message an
operator can act on. It turns the SQLite failures an operator can fix (a full disk, a
file-size limit, a lock held too long) into such a message too, with
`database_error_message`.
"""

from __future__ import annotations

import resource
from collections.abc import Iterator

from otmetka.db.errors import OtmetkaError

__all__ = ["OtmetkaError", "database_error_message"]

# SQLite undoes a write it could not finish (a statement, or the whole transaction when it
# failed at COMMIT) and our code rolls back any transaction an error leaves, so by the time
# the CLI sees the error nothing of it is in the file.
_ROLLED_BACK = "nothing was half-applied (SQLite rolled the unfinished write back)"


_PG_LOCK_TIMEOUT = "55P03"  # lock_not_available: waited past lock_timeout


def database_error_message(error: BaseException, database: str) -> str | None:
    """One line for an operator when `database` could not be written; None for an error
    that is not one of these (it keeps its traceback)."""
    names = set(_error_names(error))
    if "SQLITE_FULL" in names:
        return (
            f"the disk holding the database {database} is full; {_ROLLED_BACK}. "
            "Free disk space there and run the command again."
        )
    if "SQLITE_IOERR_WRITE" in names and _file_size_limited():
        return (
            f"the database {database} cannot grow: this process may not write files past "
            f"its file-size limit (ulimit -f); {_ROLLED_BACK}. Raise the limit and run the "
            "command again."
        )
    if any(name.startswith("SQLITE_BUSY") or name == _PG_LOCK_TIMEOUT for name in names):
        return (
            f"the database {database} is locked: another process kept it busy past "
            "database.busy_timeout_ms (is `otmetka run` running?); the write that waited was "
            "not made. Wait for it to finish or stop it, then run the command again."
        )
    return None


def _error_names(error: BaseException | None) -> Iterator[str]:
    """SQLite's names (SQLITE_FULL, ...) or PostgreSQL's codes of `error` and of the errors
    it was raised during: peewee re-raises the driver's error as its own, and a COMMIT that
    failed on a full disk surfaces as peewee's failed ROLLBACK after it (SQLite had already
    rolled back)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        for attribute in ("sqlite_errorname", "pgcode"):  # psycopg2 names its errors by code
            name = getattr(error, attribute, None)
            if isinstance(name, str):
                yield name
        error = error.__cause__ or error.__context__


def _file_size_limited() -> bool:
    """True when this process may not grow a file without end: SQLite reports a write
    past that limit (EFBIG) as a plain I/O error."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    return soft != resource.RLIM_INFINITY
