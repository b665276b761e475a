"""Import benchmark: the demo school through the importer vs a raw sqlite3 executemany.

    .venv/bin/python bench/import.py [--students 2000] [--as-of 2027-05-28] [--jsonl | --http]
                                     [--rounds 3]

Generates the demo school as of a day (the default is late November; 2027-05-28 is the
end of the school year, a full year of marks) and writes it as an exchange file (.json, or
JSON Lines with --jsonl), one change at a time. A child process of its own imports it into
a fresh SQLite file with `importer.import_file` (reading, validation, references,
upserts, dirty set, one transaction), so the peak memory reported is the importer's alone.
Then the very same rows go into another fresh database with a plain `sqlite3` executemany
per table. The ratio of the two wall times is the figure. With --rounds N the import and the
floor take turns N times, each import into a fresh database, so that the ratio is given for
every round: on a machine whose speed drifts, the two are then measured at the same moments.

With --http no file is written: the fake upstream (daemon/demo/fake_upstream.py) serves the same
school on loopback from this process, and the child pulls it page by page through the HTTP
source (otmetka.daemon.exchange.http), each page one batch, as `otmetka sync` does from a real one.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import sqlite3
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.pool import Pool
from pathlib import Path
from typing import Any

from common import peak_rss_mb, record

from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.demo.school import document_header, iter_changes, write_exchange_file
from otmetka.daemon.exchange.importer import import_file
from otmetka.db import close_database, migrate, models, open_database

AS_OF = dt.date(2026, 11, 27)


def _tables() -> list[str]:
    return [model._meta.table_name for model in models.JOURNAL_TABLES.values()]


def _counted(changes: Iterator[dict[str, Any]], counts: Counter[str]) -> Iterator[dict[str, Any]]:
    for change in changes:
        counts[change["type"]] += 1
        yield change


def _write_exchange(path: Path, students: int, as_of: dt.date) -> Counter[str]:
    """The demo school as a .json or .jsonl file, never whole in memory; counts by type."""
    counts: Counter[str] = Counter()
    header = document_header(students, 1, as_of)
    changes = _counted(iter_changes(students, 1, as_of), counts)
    if path.suffix == ".json":
        write_exchange_file({**header, "changes": changes}, path)
        return counts
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    with path.open("w", encoding="utf-8") as out:
        out.write(encode(header) + "\n")
        for change in changes:
            out.write(encode(change) + "\n")
    return counts


def _import_in_child(exchange_file: Path, database: Path) -> dict[str, float]:
    """Runs in a fresh process: import the file, report time and the process's peak RSS."""
    open_database(f"sqlite:///{database}")
    migrate()
    started, cpu = time.perf_counter(), time.process_time()
    result = import_file(exchange_file, MarkRules())
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    close_database()
    return {"seconds": seconds, "cpu": cpu, "dirty": result.dirty_people, "rss": peak_rss_mb()}


def _pull_in_child(url: str, token: str, limit: int, database: Path) -> dict[str, float]:
    """Runs in a fresh process: pull every page from the upstream at `url`."""
    from otmetka.daemon.exchange.http import HttpParams, pull

    open_database(f"sqlite:///{database}")
    migrate()
    started, cpu = time.perf_counter(), time.process_time()
    result = pull(HttpParams(url=url, token=token, limit=limit), rules=MarkRules())
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    close_database()
    return {
        "seconds": seconds,
        "cpu": cpu,
        "pages": result.pages,
        "dirty": -1,
        "rss": peak_rss_mb(),
    }


def _empty_copy(imported: Path, target: Path) -> None:
    """The schema of `imported` (tables, then indexes, in the order they were made) in a new
    file at `target`, made with sqlite3 alone."""
    source = sqlite3.connect(imported)
    statements = source.execute(
        "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' "
        "ORDER BY type = 'index', rowid"
    ).fetchall()
    source.close()
    connection = sqlite3.connect(target)
    with connection:
        for (statement,) in statements:
            connection.execute(statement)
    connection.close()


def _raw_baseline(imported: Path, target: Path) -> tuple[float, float, int]:
    """Copy every journal row into an empty schema at `target` with executemany: (seconds,
    CPU, rows).

    sqlite3 as it comes: this process never opens a database through otmetka.db, which
    changes how sqlite3 binds None (connection.bind_none_directly); the floor stays the
    same whatever the importer does."""
    if (type(None), sqlite3.PrepareProtocol) in sqlite3.adapters:
        raise RuntimeError("the floor must run with sqlite3's own adapters only")
    _empty_copy(imported, target)
    source = sqlite3.connect(imported)
    rows_by_table = {t: source.execute(f'SELECT * FROM "{t}"').fetchall() for t in _tables()}
    source.close()
    connection = sqlite3.connect(target, isolation_level=None)
    connection.execute("PRAGMA journal_mode=wal")
    connection.execute("PRAGMA synchronous=full")
    started, cpu = time.perf_counter(), time.process_time()
    connection.execute("BEGIN IMMEDIATE")
    for table, rows in rows_by_table.items():
        if rows:
            marks = ", ".join("?" for _ in rows[0])
            connection.executemany(f'INSERT INTO "{table}" VALUES ({marks})', rows)
    connection.execute("COMMIT")
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    connection.close()
    return elapsed, cpu, sum(len(rows) for rows in rows_by_table.values())


def _in_turns(
    import_into: Callable[[Path], dict[str, float]], folder: Path, rounds: int
) -> list[dict[str, float]]:
    """`rounds` times: an import into a fresh database, then the floor of the rows it made."""
    runs = []
    for n in range(rounds):
        imported, raw = folder / f"imported-{n}.sqlite3", folder / f"raw-{n}.sqlite3"
        run = import_into(imported)
        run["raw_seconds"], run["raw_cpu"], run["rows"] = _raw_baseline(imported, raw)
        runs.append(run)
        for done in folder.glob(f"*-{n}.sqlite3*"):
            done.unlink()  # a year is a few hundred MB a database
    return runs


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=2000)
    parser.add_argument(
        "--as-of",
        type=dt.date.fromisoformat,
        default=AS_OF,
        help=f"the day the demo school is generated for (default {AS_OF}; 2027-05-28 is a "
        "full school year)",
    )
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--jsonl", action="store_true", help="write and import JSON Lines")
    how.add_argument("--http", action="store_true", help="pull from the fake upstream instead")
    parser.add_argument(
        "--page-limit", type=int, default=5000, help="changes per page with --http (default 5000)"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="imports and floors, in turns (default 1)"
    )
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    return parser.parse_args()


def _command(args: argparse.Namespace) -> str:
    command = f"python bench/import.py --students {args.students} --as-of {args.as_of}"
    rounds = f" --rounds {args.rounds}" if args.rounds > 1 else ""
    if args.http:
        return command + f" --http --page-limit {args.page_limit}{rounds}"
    return command + (" --jsonl" if args.jsonl else "") + rounds


def _through_file(args: argparse.Namespace, pool: Pool, folder: Path) -> dict[str, Any]:
    exchange_file = folder / ("demo.jsonl" if args.jsonl else "demo.json")
    started = time.perf_counter()
    counts = _write_exchange(exchange_file, args.students, args.as_of)
    generated = time.perf_counter() - started
    size_mb = exchange_file.stat().st_size / 2**20
    runs = _in_turns(
        lambda database: pool.apply(_import_in_child, (exchange_file, database)),
        folder,
        args.rounds,
    )
    source = (
        f"exchange file: {exchange_file.suffix}, {size_mb:,.0f} MB; generated and written in "
        f"{generated:.1f} s"
    )
    return {
        "runs": runs,
        "counts": counts,
        "source": source,
        "what": "importer (read, validate, references, upsert, dirty set)",
    }


def _through_http(args: argparse.Namespace, pool: Pool, folder: Path) -> dict[str, Any]:
    from otmetka.daemon.demo.fake_upstream import FakeUpstream

    counts: Counter[str] = Counter()
    started = time.perf_counter()
    header = document_header(args.students, 1, args.as_of)
    changes = _counted(iter_changes(args.students, 1, args.as_of), counts)
    with FakeUpstream(header, changes) as upstream:
        generated = time.perf_counter() - started
        work = (upstream.url, upstream.token, args.page_limit)
        runs = _in_turns(
            lambda database: pool.apply(_pull_in_child, (*work, database)), folder, args.rounds
        )
    source = (
        f"HTTP source from the fake upstream on loopback: {runs[0]['pages']:.0f} pages of "
        f"{args.page_limit}; school generated in {generated:.1f} s"
    )
    return {
        "runs": runs,
        "counts": counts,
        "source": source,
        "what": "pull (HTTP, JSON, "
        "validate, references, upsert, dirty set, one transaction per page)",
    }


def _listed(values: Iterable[float], digits: int = 1) -> str:
    return ", ".join(f"{value:.{digits}f}" for value in values)


def _lines(args: argparse.Namespace, how: dict[str, Any]) -> list[str]:
    runs, counts = how["runs"], how["counts"]
    changes = sum(counts.values())
    seconds = [run["seconds"] for run in runs]
    raw = [run["raw_seconds"] for run in runs]
    dirty = runs[0]["dirty"]
    dirty_line = f"pages to rebuild recorded: {dirty:,.0f}; " if dirty >= 0 else ""
    by_round = ", by round" if len(runs) > 1 else ""
    ratios = [a / b for a, b in zip(seconds, raw, strict=True)]
    return [
        f"students: {args.students}, as of {args.as_of}; changes: {changes:,} "
        f"(marks {counts['mark']:,}); journal rows: {runs[0]['rows']:,}",
        how["source"],
        f"{how['what']}: {_listed(seconds)} s = "
        f"{changes / statistics.median(seconds):,.0f} records/s "
        f"(CPU {_listed(run['cpu'] for run in runs)} s)",
        f"raw sqlite3 executemany of the same rows: {_listed(raw, 2)} s "
        f"(CPU {_listed((run['raw_cpu'] for run in runs), 2)} s)",
        f"ratio importer / raw{by_round}: {_listed(ratios)} "
        f"(of CPU time: {_listed(run['cpu'] / run['raw_cpu'] for run in runs)}, less affected "
        "by other work on the machine)",
        f"{dirty_line}peak RSS of the importing process {max(run['rss'] for run in runs):,.0f} MB",
    ]


def main() -> None:
    args = _arguments()
    # The worker starts before this process holds anything big: Linux keeps a peak RSS
    # across exec, so a child forked from a fat parent would report the parent's size.
    with (
        multiprocessing.get_context("spawn").Pool(1) as pool,
        tempfile.TemporaryDirectory() as name,
    ):
        through = _through_http if args.http else _through_file
        how = through(args, pool, Path(name))
    record("Import", _command(args), _lines(args, how), keep=not args.no_record)


if __name__ == "__main__":
    main()
