"""The operations behind the CLI commands, one function each.

The CLI only parses options and calls these; tests and the daemon call them the same way.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otmetka.daemon.core.config import Config
from otmetka.daemon.core.errors import OtmetkaError
from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.core.progress import Reporter
from otmetka.daemon.exchange import importer
from otmetka.daemon.exchange import schema as exchange
from otmetka.db import database, migrate, open_database
from otmetka.db import status as db_status
from otmetka.db.connection import opened_url
from otmetka.db.migrations import SchemaTooNew
from otmetka.site_builder import keys
from otmetka.site_builder.build import BuildOptions, BuildResult, build_site


def mark_rules(config: Config) -> MarkRules:
    marks = config.marks
    return MarkRules(marks.minus_delta, marks.plus_delta, marks.split_double)


def open_project(config: Config) -> None:
    """Connect to the configured database and bring its schema up to date.

    A no-op when this very database is open already: the daemon's jobs run next to the
    endpoint's threads, and swapping the connection under them would break their writes.
    """
    current, wanted = database.obj, config.database_path()
    is_open = current is not None and not database.is_closed()
    if is_open and wanted is not None and getattr(current, "database", None) == str(wanted):
        return
    url = config.database.url
    if is_open and not url.startswith("sqlite") and opened_url() == url:
        return  # the same PostgreSQL database
    open_database(config.database.url, config.database.busy_timeout_ms)
    from otmetka.daemon.ops.backup import secure_private_paths

    secure_private_paths(config)  # owner-only whatever the umask (docs/security.md)
    try:
        migrate()
    except SchemaTooNew as error:
        raise OtmetkaError(f"{config.database.url}: {error}") from None
    from otmetka.daemon.access.secret import finish_interrupted

    finish_interrupted(config)  # a secret rotation that died between commit and rename


def init_project(config: Config) -> list[str]:
    """Create the folders, the site secret and the database; returns what was created."""
    created = []
    for folder in (config.paths.var_dir, config.paths.inbox_dir, config.site.output_dir):
        if not folder.exists():
            folder.mkdir(parents=True)
            created.append(f"folder {folder}")
    secret_file = config.site.secret_file
    if not secret_file.exists():
        keys.load_or_create_secret(secret_file)
        created.append(f"site secret {secret_file} (owner-only; back it up, never publish it)")
    open_project(config)
    created.append(f"database {config.database.url} (schema up to date)")
    return created


def sync_file(config: Config, path: Path, reporter: Reporter) -> importer.ImportResult:
    """Import one exchange file (.json or .jsonl) given on the command line."""
    if not path.is_file():
        raise OtmetkaError(f"{path}: no such file; give the path of an exchange file (.json)")
    open_project(config)
    from otmetka.daemon.exchange import reader as batches

    raw = batches.read_file(path)
    with reporter.bar(f"import {raw.origin}", len(raw.changes)) as advance:
        result = importer.import_batch(raw, mark_rules(config), progress=advance)
    reporter.summary(result.summary())
    return result


def schema_text() -> str:
    return json.dumps(exchange.json_schema(), ensure_ascii=False, indent=2) + "\n"


@dataclass
class StatusReport:
    lines: list[str]
    healthy: bool


def status(config: Config, *, expect_daemon: bool = False) -> StatusReport:
    """Exit status: unhealthy when the daemon is expected (pid file or `expect_daemon`) but
    down, or its last good pull is older than schedule.max_pull_age_minutes."""
    from otmetka.daemon.core import pidfile as daemon_status
    from otmetka.daemon.lists import classlists as lists

    open_project(config)
    facts: dict[str, Any] = db_status.summary()
    lines = [f"database: {config.database.url}", f"schema version: {facts['schema_version']}"]
    last = facts["last_import"]
    lines.append(
        f"last import: {last['imported_at']} from {last['origin']} (cursor {last['cursor']})"
        if last
        else "last import: never (run `otmetka sync --file FILE` or `otmetka demo`)"
    )
    lines.append("people: " + ", ".join(f"{k} {v}" for k, v in facts["people"].items()))
    lines.append(f"pages waiting for a rebuild: {facts['dirty']}")
    breaches = facts["open_breaches"]
    lines.append(
        f"breach reports open: {breaches['open']}, overdue: {breaches['overdue']}"
        + (" (see `otmetka breach list`)" if breaches["open"] else "")
    )
    lines += lists.status_lines()  # teachers' corrections waiting for upstream, conflicts
    daemon_lines, healthy = daemon_status.health(config, expect_daemon=expect_daemon)
    return StatusReport(lines + daemon_lines, healthy=healthy)


def today_in(config: Config) -> dt.date:
    return dt.datetime.now(config.school.zone()).date()


def build_options(
    config: Config, *, full: bool = False, today: dt.date | None = None
) -> BuildOptions:
    return BuildOptions(
        output_dir=config.site.output_dir,
        secret_file=config.site.secret_file,
        title=config.site.title,
        remember_days=config.site.remember_days,
        today=today or today_in(config),
        full=full,
        api_url=api_url(config),
        workers=config.site.build_workers,
    )


def api_url(config: Config) -> str:
    """Where pages post acts: endpoint.public_url, else the site's LAN address, + /api/v1/."""
    base = config.endpoint.public_url or config.school.lan_url
    return base.rstrip("/") + "/api/v1/" if base else ""


def build(config: Config, reporter: Reporter, *, full: bool = False) -> BuildResult:
    """Render, encrypt and write the pages that changed (all with `full`)."""
    open_project(config)
    result = build_site(build_options(config, full=full), bar=reporter.bar)
    reporter.summary(result.summary())
    return result
