"""`otmetka backup`, `restore`, `db` and `retention`: the database's safety and the
personal data kept."""

from __future__ import annotations

from pathlib import Path

import click

from otmetka.daemon import runtime
from otmetka.daemon.cli.base import Context, file_argument, flag, out_option, pass_context


@click.command("backup")
@out_option("Archive to write (default: paths.backup_dir/otmetka-backup-<time>.tar.gz).")
@pass_context
def backup_command(obj: Context, out: Path | None) -> None:
    """Write the database (a consistent copy) and the site secret into one owner-only
    archive with a manifest of SHA-256 hashes; safe while the daemon runs."""
    from otmetka.daemon.ops import backup

    obj.reporter.summary(backup.backup(obj.config, out).summary())


@click.command("restore")
@file_argument()
@pass_context
def restore_command(obj: Context, file: Path) -> None:
    """Check a backup (an `otmetka backup` archive or a nightly copy) and put it in place;
    refuses a damaged file and changes nothing then. Stop the daemon first."""
    from otmetka.daemon.ops import restore

    obj.reporter.summary(restore.restore(obj.config, file, reopen=runtime.open_project).summary())


@click.group("db")
def db_group() -> None:
    """The database itself: move a school to another one (PostgreSQL)."""


@db_group.command("copy")
@click.option(
    "--to",
    "to_url",
    required=True,
    help="Target URL, e.g. postgresql://user@host/db: empty, its tables made by `otmetka init`.",
)
@pass_context
def db_copy(obj: Context, to_url: str) -> None:
    """Copy every table of this project's database into an empty one in one transaction,
    then check the row counts and the audit chain there. Only reads this database; stop
    the daemon first, or acts recorded meanwhile stay behind."""
    from otmetka.daemon.ops import dbcopy

    obj.reporter.summary(dbcopy.copy_database(obj.config, to_url, obj.reporter).summary())


@click.group("retention")
def retention_group() -> None:
    """Personal data of students who left: purged after retention.purge_after_days."""


@retention_group.command("purge")
@flag("--dry-run", help="Only say what would be deleted; delete nothing.")
@pass_context
def retention_purge(obj: Context, dry_run: bool | None) -> None:
    """Delete the data of students who left (and of guardians of only those) longer ago
    than the retention period; events and the audit chain stay, the purge is audited."""
    from otmetka.daemon.ops import retention

    obj.reporter.summary(retention.purge(obj.open(), dry_run=bool(dry_run)).summary())
