"""Backup benchmark: what the nightly copy, `otmetka backup` and `otmetka restore` cost on
the demo school, on the SQLite file and (with --postgres) on a PostgreSQL server.

    .venv/bin/python bench/backup.py [--students 2000] [--as-of 2027-05-28] [--postgres]

The school, a full year of marks by default, is imported into a fresh SQLite project.
Timed there: the nightly copy (SQLite's online backup), the archive (copy, gzip, manifest)
and a restore of it (every check, the old database set aside, the new one renamed in).

With --postgres the tests' helper starts a throwaway PostgreSQL server on loopback, the
school moves there with `otmetka db copy` (timed too), and the same three run against it:
one snapshot streamed table by table (COPY ... TO STDOUT) into a SQLite file in a worker
process, and a restore that reads the current rows out (COPY), makes them a SQLite file
in a worker process while it replaces every row in one transaction (TRUNCATE, COPY) that
commits once that file is complete. The SQLite restore of the same demo school, timed in
the same run, is the PostgreSQL one's anchor.

No targets: the figures say how long the nightly job holds the server and how long an
operator waits for a restore.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import demo_project, record

from otmetka.daemon.core.config import Config, config_from_dict
from otmetka.daemon.core.progress import Reporter
from otmetka.daemon.ops import backup, dbcopy, restore
from otmetka.daemon.runtime import open_project
from otmetka.db import close_database, models
from otmetka.site_builder.workers import worker_pool

AS_OF = dt.date(2027, 5, 28)  # the end of the school year: a full year of marks
# The repository: the tests' PostgreSQL helper imports as tests.support.pg_support.
REPOSITORY = Path(__file__).resolve().parent.parent


def _timed(work: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


def _timed_restore(config: Config, archive: Path) -> str:
    """The restore's time, and this process's CPU time in it (less bent by other work on
    the machine; the server's own CPU time not included)."""
    cpu = time.process_time()
    seconds, _ = _timed(lambda: restore.restore(config, archive, reopen=open_project))
    return f"{seconds:.1f} s (CPU of this process {time.process_time() - cpu:.1f} s)"


def _rows(config: Config) -> int:
    open_project(config)
    total = sum(model.select().count() for model in models.ALL_TABLES)
    close_database()
    return total


def _three(config: Config, folder: Path, where: str) -> list[str]:
    """The nightly copy, the archive and its restore, each timed; one line each."""
    nightly_s, nightly = _timed(lambda: backup.nightly_backup(config))
    archive_s, made = _timed(lambda: backup.backup(config, folder / f"{where}.tar.gz"))
    restored = _timed_restore(config, made.path)
    return [
        f"{where}: nightly copy {nightly_s:.1f} s ({nightly.stat().st_size / 2**20:.0f} MB)",
        f"{where}: `otmetka backup` {archive_s:.1f} s ({made.size / 2**20:.0f} MB archive)",
        f"{where}: `otmetka restore` of it {restored}",
    ]


def _on_postgres(sqlite_config: Config, folder: Path) -> list[str]:
    sys.path.insert(0, str(REPOSITORY))
    from tests.support.pg_support import running_cluster

    with running_cluster() as cluster:
        url = cluster.fresh_database()
        config = config_from_dict({"database": {"url": url}}, base_dir=folder, env={})
        open_project(config)  # the schema
        close_database()
        quiet = Reporter(quiet=True)
        copy_s, _ = _timed(lambda: dbcopy.copy_database(sqlite_config, url, quiet))
        lines = [f"postgresql: `otmetka db copy` from SQLite {copy_s:.1f} s"]
        lines += _three(config, folder, "postgresql")
        with worker_pool(1) as pool:
            peak = pool.submit(_copy_peak_mb, url, str(folder / "peak.sqlite3")).result()
        return [*lines, f"postgresql: peak RSS of the process copying it to SQLite {peak:.0f} MB"]


def _copy_peak_mb(url: str, path: str) -> float:
    """In a worker process: the copy a backup makes, then this process's own peak RSS.
    VmHWM, not ru_maxrss: a child of this big process carries the parent's high-water mark
    across its exec into ru_maxrss."""
    dbcopy.copy_to_new_file(url, 5000, path)
    status = Path("/proc/self/status").read_text(encoding="ascii").splitlines()
    (peak,) = (line.split()[1] for line in status if line.startswith("VmHWM:"))
    return int(peak) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=2000)
    parser.add_argument("--as-of", type=dt.date.fromisoformat, default=AS_OF)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        config = demo_project(folder, args.students, args.as_of)
        close_database()
        lines = [f"students: {args.students}, as of {args.as_of}, rows: {_rows(config)}"]
        lines += _three(config, folder, "sqlite")
        if args.postgres:
            lines += _on_postgres(config, folder)
    command = f"python bench/backup.py --students {args.students} --as-of {args.as_of}"
    command += " --postgres" if args.postgres else ""
    record("Backup and restore", command, lines, keep=not args.no_record)


if __name__ == "__main__":
    main()
