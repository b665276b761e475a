"""Where the parts are wired together and the project is opened: `wire()` registers the
outbox senders, the deadline checks and the importer's hooks, and the operations behind the
CLI's journal commands (init, sync, status, build) are here, one function each.

The CLI only parses options and calls these; tests and the daemon call them the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otmetka.daemon.access import secret
from otmetka.daemon.core import jobs
from otmetka.daemon.core.config import Config
from otmetka.daemon.core.errors import OtmetkaError
from otmetka.daemon.core.private import secure_private_paths
from otmetka.daemon.core.progress import Reporter
from otmetka.daemon.core.settings import build_options, mark_rules
from otmetka.daemon.exchange import http, importer, inbox, push, reader, schema
from otmetka.daemon.lists import recording, settle
from otmetka.daemon.lists import status as lists_status
from otmetka.daemon.mail import campaigns, outbox, reminders, smtp
from otmetka.daemon.ops import retention
from otmetka.daemon.ops import status as ops_status
from otmetka.db import database, journal, migrate, open_database, staff_facts
from otmetka.db import status as db_status
from otmetka.db.connection import opened_url
from otmetka.db.migrations import SchemaTooNew
from otmetka.site_builder import keys
from otmetka.site_builder.build import BuildResult, build_pages, build_site


def wire() -> None:
    """Register every part that a lower layer calls back: the outbox's senders, the
    scheduler's deadline checks, the importer's after-batch hook and the inbox's class lists.

    Idempotent: a second call registers the same callables again and changes nothing.
    """
    for kind in push.WIRE_TYPES:
        outbox.register_sender(kind, push.push_upstream, push.push_batch_size)
    outbox.register_sender("mail", smtp.send_mail, lambda _config: smtp.BATCH)
    jobs.register_deadline_check("breach reminders", reminders.breach_reminder_check)
    jobs.register_deadline_check("weekly digest", campaigns.digest_check)
    jobs.register_deadline_check("retention", retention.scheduled_purge)
    importer.register_after_batch(settle.settle_after_import)
    inbox.register_file_handler(".xlsx", recording.import_for_inbox)


def open_project(config: Config) -> None:
    """Wire the parts, connect to the configured database and bring its schema up to date.

    A no-op (beyond the wiring) when this very database is open already: the daemon's jobs
    run next to the endpoint's threads, and swapping the connection under them would break
    their writes.
    """
    wire()
    current, wanted = database.obj, config.database_path()
    is_open = current is not None and not database.is_closed()
    if is_open and wanted is not None and getattr(current, "database", None) == str(wanted):
        return
    url = config.database.url
    if is_open and not url.startswith("sqlite") and opened_url() == url:
        return  # the same PostgreSQL database
    open_database(config.database.url, config.database.busy_timeout_ms)
    secure_private_paths(config)  # owner-only whatever the umask (docs/security.md)
    try:
        migrate()
    except SchemaTooNew as error:
        raise OtmetkaError(f"{config.database.url}: {error}") from None
    secret.finish_interrupted(config)  # a secret rotation that died between commit and rename
    journal.restore_set_aside()  # indexes a first pull set aside, if it was cut short


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
    raw = reader.read_file(path)
    with reporter.bar(f"import {raw.origin}", len(raw.changes)) as advance:
        result = importer.import_batch(raw, mark_rules(config), progress=advance)
    reporter.summary(result.summary())
    return result


def schema_text() -> str:
    return json.dumps(schema.json_schema(), ensure_ascii=False, indent=2) + "\n"


@dataclass
class StatusReport:
    lines: list[str]
    healthy: bool


def status(config: Config, *, expect_daemon: bool = False) -> StatusReport:
    """Exit status: unhealthy when the daemon is expected (pid file or `expect_daemon`) but
    down, or its last good pull is older than schedule.max_pull_age_minutes."""
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
    lines += lists_status.status_lines()  # teachers' corrections waiting for upstream, conflicts
    daemon_lines, healthy = ops_status.health(config, expect_daemon=expect_daemon)
    return StatusReport(lines + daemon_lines, healthy=healthy)


def build(config: Config, reporter: Reporter, *, full: bool = False) -> BuildResult:
    """Render, encrypt and write the pages that changed (all with `full`)."""
    open_project(config)
    result = build_site(build_options(config, full=full), bar=reporter.bar)
    reporter.summary(result.summary())
    return result


def refresh_staff_pages(config: Config) -> BuildResult | None:
    """Rebuild the deputy heads' pages that are older than the latest act (they count every
    class's consents and acknowledgements and list the breaches); None if none is. The class
    teachers' pages follow an act through the dirty set and `build`."""
    open_project(config)
    stale = staff_facts.deputies_behind_acts()
    if not stale:
        return None
    return build_pages(build_options(config), {("teacher", tid) for tid in stale})


# --- `otmetka sync --http` and `otmetka sync --inbox`: one pull or one inbox pass, now ---------


def pull_now(config: Config, reporter: Reporter) -> http.PullResult:
    open_project(config)
    params = http.params_from_config(config)
    result = http.pull(params, rules=mark_rules(config), bar=reporter.bar)
    reporter.summary(result.summary())
    return result


def inbox_now(config: Config, reporter: Reporter) -> list[inbox.InboxOutcome]:
    """Import every complete file in the inbox; fails (exit 1) if any was rejected."""
    open_project(config)
    outcomes = inbox.process_now(config, mark_rules(config))
    for outcome in outcomes:
        reporter.summary(
            f"{outcome.message} (moved to {outcome.moved_to})"
            if outcome.ok
            else f"{outcome.name}: rejected, moved to {outcome.moved_to}"
        )
    if not outcomes:
        reporter.summary(f"inbox: nothing to import in {config.paths.inbox_dir}")
    rejected = [outcome for outcome in outcomes if not outcome.ok]
    if rejected:
        raise OtmetkaError(
            "\n".join(outcome.message for outcome in rejected)
            + f"\n{len(rejected)} file(s) rejected; each has an .error.txt beside it in "
            f"{config.paths.inbox_dir / inbox.QUARANTINE}"
        )
    return outcomes


def sync(config: Config, reporter: Reporter, *, from_http: bool) -> None:
    if from_http:
        pull_now(config, reporter)
    else:
        inbox_now(config, reporter)


def rotate_secret(config: Config, reporter: Reporter) -> secret.RotateResult:
    """`otmetka secret rotate`: a missing secret is said before the database is made."""
    secret.require_secret(config)
    open_project(config)
    return secret.rotate_secret(config, reporter)
