"""Helpers shared by the sync daemon tests: journal snapshots, free ports, a project folder
with a config for `otmetka run` in a subprocess, and waiting for a condition."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import yaml

from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.exchange.importer import import_batch
from otmetka.daemon.exchange.reader import from_document
from otmetka.db import close_database, journal, migrate, models, open_database
from tests.support.servers import free_port

OTMETKA = str(Path(sys.executable).with_name("otmetka"))


def journal_dump() -> dict[str, list[tuple[Any, ...]]]:
    """Every journal table, ordered: what a clean import and a resumed one must agree on."""
    names = {model._meta.table_name for model in models.JOURNAL_TABLES.values()}
    return {table: rows for table, rows in journal.dump_tables().items() if table in names}


def journal_of(database: Path, *, every_table: bool = False) -> dict[str, list[tuple[Any, ...]]]:
    """`journal_dump` of a database file (opened for it and closed again); with
    `every_table`, all the tables: import log, cursors, pages to rebuild, outbox too."""
    open_database(f"sqlite:///{database}")
    try:
        return journal.dump_tables() if every_table else journal_dump()
    finally:
        close_database()


def clean_import(document: dict[str, Any], path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Import the whole document at once into a fresh database file; its journal dump."""
    open_database(f"sqlite:///{path}")
    migrate()
    try:
        import_batch(from_document(document, "clean"), MarkRules(), source="clean")
        return journal_dump()
    finally:
        close_database()


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    """Poll until `condition()` is truthy; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.05)


def write_project(folder: Path, **sections: dict[str, Any]) -> Path:
    """A config.yaml in `folder` with fast test settings and the given sections merged in."""
    base: dict[str, Any] = {
        "site": {"kdf_iterations": 100_000},
        "endpoint": {"port": free_port()},
        "source": {"backoff_s": 0.05, "backoff_max_s": 0.2, "inbox_settle_s": 0.0},
    }
    for name, keys in sections.items():
        base[name] = {**base.get(name, {}), **keys}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(base, allow_unicode=True), encoding="utf-8")
    return path


def query(database: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Read the database of a running daemon (WAL lets a reader in while it writes)."""
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)) as conn:
        return conn.execute(sql, args).fetchall()


def integrity(database: Path) -> str:
    """SQLite's own check of the file: "ok", or what is broken."""
    return str(query(database, "PRAGMA integrity_check")[0][0])


def stored_cursor(database: Path, source: str = "http") -> str | None:
    if not database.exists():
        return None
    try:
        rows = query(database, "SELECT cursor FROM sync_state WHERE source = ?", source)
    except sqlite3.OperationalError:
        return None  # the schema is not there yet
    return rows[0][0] if rows else None


@contextmanager
def daemon_process(
    config: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`otmetka run` as a subprocess, its output in run.log beside the config; stopped with
    SIGTERM (or killed) and reaped afterwards."""
    with (config.parent / "run.log").open("ab") as output:
        process = subprocess.Popen(
            [OTMETKA, "--config", str(config), "run"],
            env={**os.environ, **(env or {})},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def run_log(config: Path) -> str:
    return (config.parent / "run.log").read_text(encoding="utf-8", errors="replace")
