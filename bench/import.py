"""Import benchmark: the demo school through the importer vs a raw sqlite3 executemany.

    .venv/bin/python bench/import.py [--students 2000]

Generates the demo school, writes it as an exchange file, imports it into a fresh SQLite
file with `daemon.importer.import_file` (reading, validation, references, upserts, dirty
set, one transaction), then inserts the very same rows into another fresh database with a
plain `sqlite3` executemany per table. The ratio of the two wall times is the figure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sqlite3
import tempfile
import time
from pathlib import Path

from common import peak_rss_mb, record

from daemon import demo
from daemon.importer import import_file
from daemon.marks import MarkRules
from db import close_database, migrate, models, open_database

AS_OF = dt.date(2026, 11, 27)


def _tables() -> list[str]:
    return [model._meta.table_name for model in models.JOURNAL_TABLES.values()]


def _raw_baseline(imported: Path, folder: Path) -> tuple[float, int]:
    """Copy every journal row into an empty schema with executemany; returns (seconds, rows)."""
    target = folder / "raw.sqlite3"
    open_database(f"sqlite:///{target}")
    migrate()
    close_database()
    source = sqlite3.connect(imported)
    rows_by_table = {t: source.execute(f'SELECT * FROM "{t}"').fetchall() for t in _tables()}
    source.close()
    connection = sqlite3.connect(target, isolation_level=None)
    connection.execute("PRAGMA journal_mode=wal")
    connection.execute("PRAGMA synchronous=full")
    started = time.perf_counter()
    connection.execute("BEGIN IMMEDIATE")
    for table, rows in rows_by_table.items():
        if rows:
            marks = ", ".join("?" for _ in rows[0])
            connection.executemany(f'INSERT INTO "{table}" VALUES ({marks})', rows)
    connection.execute("COMMIT")
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed, sum(len(rows) for rows in rows_by_table.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=2000)
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        started = time.perf_counter()
        document = demo.generate_school(students=args.students, seed=1, as_of=AS_OF)
        exchange_file = folder / "demo.json"
        demo.write_exchange_file(document, exchange_file)
        generated = time.perf_counter() - started
        changes = len(document["changes"])
        del document
        database = folder / "otmetka.sqlite3"
        open_database(f"sqlite:///{database}")
        migrate()
        started = time.perf_counter()
        result = import_file(exchange_file, MarkRules())
        imported = time.perf_counter() - started
        close_database()
        raw_seconds, raw_rows = _raw_baseline(database, folder)
    lines = [
        f"students: {args.students}; changes in the file: {changes:,}; journal rows: {raw_rows:,}",
        f"generate + write exchange file: {generated:.1f} s",
        f"importer (read, validate, references, upsert, dirty set): {imported:.1f} s "
        f"= {changes / imported:,.0f} records/s",
        f"raw sqlite3 executemany of the same rows: {raw_seconds:.2f} s",
        f"ratio importer / raw: {imported / raw_seconds:.1f}",
        f"pages to rebuild recorded: {result.dirty_people:,}; peak RSS {peak_rss_mb():.0f} MB",
    ]
    command = f"python bench/import.py --students {args.students}"
    if args.no_record:
        print("\n".join(lines))
    else:
        record("Import", command, lines)


if __name__ == "__main__":
    main()
