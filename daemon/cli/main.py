"""The `otmetka` command: one click group; each command parses options and calls one
library function. Options default to None so that only flags actually given override
config.yaml."""

from __future__ import annotations

import logging
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import peewee

from otmetka.daemon import runtime as project
from otmetka.daemon.core.config import Config, load_config
from otmetka.daemon.core.errors import OtmetkaError, database_error_message
from otmetka.daemon.core.progress import Reporter


@dataclass
class Context:
    config_path: Path | None
    debug: bool
    quiet: bool
    _config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    @property
    def reporter(self) -> Reporter:
        return Reporter(quiet=self.quiet)


class OtmetkaGroup(click.Group):
    """Turns domain errors, and a database that cannot be written (disk full, locked), into
    one clear message; tracebacks only with --debug."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OtmetkaError as error:
            if _debug(ctx):
                raise
            raise click.ClickException(str(error)) from None
        except (sqlite3.Error, peewee.DatabaseError) as error:
            message = database_error_message(error, _database_name(ctx))
            if message is None or _debug(ctx):
                raise
            raise click.ClickException(message) from None


def _debug(ctx: click.Context) -> bool:
    return isinstance(ctx.obj, Context) and ctx.obj.debug


def _database_name(ctx: click.Context) -> str:
    """The database file of the loaded config, for an error message."""
    config = ctx.obj._config if isinstance(ctx.obj, Context) else None
    if config is None:
        return "named in config.yaml"
    return str(config.database_path() or config.database.url)


pass_context = click.make_pass_decorator(Context)


@click.group(cls=OtmetkaGroup)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Configuration file (default: ./config.yaml).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logging.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars and no summary lines.")
@click.version_option(package_name="otmetka")
@click.pass_context
def main(ctx: click.Context, config_path: Path | None, debug: bool, quiet: bool) -> None:
    """otmetka: offline-first companion to the school's electronic journal.

    Keeps a local copy of the journal, builds password-protected pages for parents,
    students and teachers, prints paper extracts and records acknowledgements.
    """
    level = logging.DEBUG if debug else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.obj = Context(config_path, debug, quiet)


@main.command()
@pass_context
def init(obj: Context) -> None:
    """Create the folders, the site secret and the database named in config.yaml."""
    for line in project.init_project(obj.config):
        obj.reporter.summary(f"created {line}")


@main.command()
@click.option(
    "--students",
    type=click.IntRange(1, 20000),
    default=None,
    help="How many students the demo school has (default 300).",
)
@click.option(
    "--seed", type=int, default=None, help="Random seed; the same seed gives the same school."
)
@click.option(
    "--export",
    "export_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the generated exchange file here.",
)
@click.option("--no-serve", is_flag=True, default=None, help="Import and stop; do not serve.")
@click.option(
    "--upstream",
    is_flag=True,
    default=None,
    help="Serve the school from a fake upstream on loopback and pull it over HTTP.",
)
@pass_context
def demo(
    obj: Context,
    students: int | None,
    seed: int | None,
    export_path: Path | None,
    no_serve: bool | None,
    upstream: bool | None,
) -> None:
    """Generate the demo school, import it through the importer and show what it holds."""
    from otmetka.daemon.demo import run as demo_run

    demo_run.run_demo(
        obj.config,
        students=students or 300,
        seed=1 if seed is None else seed,
        export_path=export_path,
        serve=not no_serve,
        reporter=obj.reporter,
        upstream=bool(upstream),
    )


@main.command()
@click.option(
    "--file",
    "file_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Exchange file to import (.json or .jsonl).",
)
@click.option("--http", "from_http", is_flag=True, default=None, help="Pull now from source.url.")
@click.option(
    "--inbox", "from_inbox", is_flag=True, default=None, help="Import what is in the inbox now."
)
@pass_context
def sync(
    obj: Context, file_path: Path | None, from_http: bool | None, from_inbox: bool | None
) -> None:
    """Import journal data now: from a file, the upstream API or the inbox (all or nothing
    per batch)."""
    if sum(bool(x) for x in (file_path, from_http, from_inbox)) != 1:
        raise click.UsageError("give exactly one of --file PATH, --http, --inbox")
    if file_path is not None:
        project.sync_file(obj.config, file_path, obj.reporter)
        return
    from otmetka.daemon.exchange import sync_now

    sync_now.sync(obj.config, obj.reporter, from_http=bool(from_http))


@main.command()
@click.option(
    "--expect-daemon",
    is_flag=True,
    default=None,
    help="Fail (exit 1) unless `otmetka run` is up, even without its pid file (monitoring).",
)
@pass_context
def status(obj: Context, expect_daemon: bool | None) -> None:
    """Show the last import, what the database holds and what is waiting; exit 1 when the
    daemon is expected but down or the last pull is too old."""
    report = project.status(obj.config, expect_daemon=bool(expect_daemon))
    click.echo("\n".join(report.lines))
    if not report.healthy:
        sys.exit(1)


@main.command()
def schema() -> None:
    """Print the JSON Schema of exchange format v1 (generated from the importer's models)."""
    click.echo(project.schema_text(), nl=False)


@main.command()
@click.option(
    "--full", is_flag=True, default=None, help="Render every page, not only changed ones."
)
@pass_context
def build(obj: Context, full: bool | None) -> None:
    """Render, encrypt and write the pages whose content changed."""
    project.build(obj.config, obj.reporter, full=bool(full))


@main.command()
@click.option("--host", default=None, help="Address to listen on (default: endpoint.host).")
@click.option("--port", type=int, default=None, help="Port (default: endpoint.port).")
@pass_context
def serve(obj: Context, host: str | None, port: int | None) -> None:
    """Serve the built site and the API with waitress until Ctrl-C."""
    from otmetka.daemon.endpoint import app as endpoint

    config = obj.config
    click.echo(
        f"serving {config.site.output_dir} on http://{host or config.endpoint.host}:"
        f"{port or config.endpoint.port}/ (Ctrl-C stops)"
    )
    endpoint.serve(config, host, port)


@main.group()
def credentials() -> None:
    """Issue and rotate logins and passwords for the pages."""


@credentials.command("issue")
@click.option("--class", "class_name", default=None, help="Only this class, e.g. 7Б.")
@click.option("--all", "everyone", is_flag=True, default=None, help="Everyone in the school.")
@pass_context
def credentials_issue(obj: Context, class_name: str | None, everyone: bool | None) -> None:
    """Create credentials for people who have none; writes a one-time list (owner-only)."""
    from otmetka.daemon.access import credentials as creds

    result = creds.issue_credentials(
        obj.config, class_name=class_name, everyone=bool(everyone), reporter=obj.reporter
    )
    obj.reporter.summary(result.summary())


@credentials.command("rotate")
@click.option("--login", required=True, help="The login to replace (from the slip).")
@pass_context
def credentials_rotate(obj: Context, login: str) -> None:
    """Revoke a login and issue a new login and password for the same person."""
    from otmetka.daemon.access import credentials as creds

    result = creds.rotate_credential(obj.config, login, obj.reporter)
    obj.reporter.summary(result.summary())


@main.group()
def secret() -> None:
    """The site secret, from which every page address (page id) is derived."""


@secret.command("rotate")
@click.option("--yes", is_flag=True, default=None, help="Do not ask for confirmation.")
@pass_context
def secret_rotate(obj: Context, yes: bool | None) -> None:
    """New site secret, hence a new address for every page; logins and passwords stay.
    Rebuilds the whole site; old bookmarks and page links stop working. Stop the daemon
    first."""
    from otmetka.daemon.access import secret as site_secret

    if not yes:
        click.confirm(
            "Every page gets a new address: bookmarks, saved links and page links in letters "
            "stop working (logins and passwords stay). Rotate the site secret?",
            abort=True,
        )
    obj.reporter.summary(site_secret.rotate_secret(obj.config, obj.reporter).summary())


@main.group()
def mail() -> None:
    """E-mail to families and staff: letters wait in the outbox until the line is up."""


@mail.command("intro")
@click.option("--class", "class_name", default=None, help="Only families of this class, e.g. 7Б.")
@pass_context
def mail_intro(obj: Context, class_name: str | None) -> None:
    """Queue the introduction letter to every guardian with an address (once each)."""
    from otmetka.daemon.mail import mailer

    obj.reporter.summary(mailer.mail_intro(obj.config, class_name).summary())


@mail.command("digest")
@pass_context
def mail_digest(obj: Context) -> None:
    """Queue the digest of what is new to consenting guardians now, off schedule."""
    from otmetka.daemon.mail import mailer

    obj.reporter.summary(mailer.mail_digest(obj.config, obj.reporter.bar).summary())


@mail.command("flush")
@pass_context
def mail_flush(obj: Context) -> None:
    """Send every queued letter now, including those waiting to be retried."""
    from otmetka.daemon.mail import mailer

    obj.reporter.summary(mailer.mail_flush(obj.config).summary())


@mail.command("status")
@pass_context
def mail_status(obj: Context) -> None:
    """Show the mail queue: pending letters, attempts, last error, next try, sent."""
    from otmetka.daemon.mail import mailer

    click.echo("\n".join(mailer.mail_status(obj.config)))


@main.group("print")
def print_group() -> None:
    """Print paper extracts and credential slips as PDF."""


@print_group.command("extracts")
@click.option("--class", "class_name", default=None, help="Only this class, e.g. 7Б.")
@click.option(
    "--all", "everyone", is_flag=True, default=None, help="Every class: a PDF each and an index."
)
@click.option("--period", default=None, help="Grading period, by id or name (default: current).")
@click.option(
    "--paper-only",
    is_flag=True,
    default=None,
    help="Only students whose family gets the journal on paper.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="PDF file for one class, or a folder (default: printing.extracts_dir/<date>/).",
)
@pass_context
def print_extracts(
    obj: Context,
    class_name: str | None,
    everyone: bool | None,
    period: str | None,
    paper_only: bool | None,
    out: Path | None,
) -> None:
    """One extract per student with a tear-off acknowledgement slip; records who got what."""
    from otmetka.daemon.paper import printing

    result = printing.print_extracts(
        obj.config,
        class_name=class_name,
        everyone=bool(everyone),
        period=period,
        paper_only=bool(paper_only),
        out=out,
        reporter=obj.reporter,
    )
    obj.reporter.summary(result.summary())


@print_group.command("slips")
@click.option("--class", "class_name", default=None, help="Only this class, e.g. 7Б.")
@click.option("--all", "everyone", is_flag=True, default=None, help="Everyone in the school.")
@click.option(
    "--qr-password", is_flag=True, default=None, help="Put the password into the QR code too."
)
@click.option(
    "--login-only",
    is_flag=True,
    default=None,
    help="Reprint login-only slips for everyone; changes no password.",
)
@pass_context
def print_slips(
    obj: Context,
    class_name: str | None,
    everyone: bool | None,
    qr_password: bool | None,
    login_only: bool | None,
) -> None:
    """Credential slips for those not given one yet (new or never-printed logins get new
    passwords: passwords are not kept); eight a sheet, owner-only PDF under var/."""
    from otmetka.daemon.paper import printing

    result = printing.print_slips(
        obj.config,
        class_name=class_name,
        everyone=bool(everyone),
        qr_password=bool(qr_password),
        login_only=bool(login_only),
        reporter=obj.reporter,
    )
    obj.reporter.summary(result.summary())


@main.command()
@pass_context
def run(obj: Context) -> None:
    """Run the daemon: the web server, scheduled pulls, builds, outbox and backups, and the
    inbox watcher, until Ctrl-C or SIGTERM."""
    from otmetka.daemon.runner import scheduler

    scheduler.run(obj.config, obj.reporter)


@main.group()
def outbox() -> None:
    """What waits to leave the school: events for upstream, letters."""


@outbox.command("flush")
@pass_context
def outbox_flush(obj: Context) -> None:
    """Send every due outbox item now (events upstream, letters if mail is on)."""
    from otmetka.daemon.mail import outbox as queue

    obj.reporter.summary(queue.flush(obj.config).summary())


# --- acts: acknowledgements, consents, breach reports, the audit chain ------------------------


@main.group()
def ack() -> None:
    """Acknowledgements: register one a parent signed on a paper extract."""


@ack.command("register")
@click.option("--code", default=None, help="The short code on the extract's tear-off slip.")
@click.option("--login", default=None, help="The parent's login (needed without --code).")
@click.option("--paper", is_flag=True, default=None, help="It is signed on a paper extract.")
@click.option("--date", default=None, help="Date of the signature, YYYY-MM-DD (default today).")
@pass_context
def ack_register(
    obj: Context, code: str | None, login: str | None, paper: bool | None, date: str | None
) -> None:
    """Record that a parent acknowledged a paper extract (registering it twice is harmless)."""
    from otmetka.daemon.acts import rules as acts

    result = acts.register_ack(obj.config, login=login, paper=paper, date=date, code=code)
    obj.reporter.summary(result.summary())


@main.group()
def consent() -> None:
    """Consent to personal-data processing: paper consents, states, the paper list."""


@consent.command("register")
@click.option("--login", required=True, help="The parent's login (from the slip).")
@click.option("--granted", "decision", flag_value="granted", default=None, help="Consent given.")
@click.option("--refused", "decision", flag_value="refused", help="Refused or withdrawn.")
@click.option("--paper", is_flag=True, default=None, help="It is signed on paper.")
@click.option("--date", default=None, help="Date of the signature, YYYY-MM-DD (default today).")
@pass_context
def consent_register(
    obj: Context, login: str, decision: str | None, paper: bool | None, date: str | None
) -> None:
    """Record a consent or a refusal signed on paper; a refusal removes the page at once."""
    from otmetka.daemon.acts import rules as acts

    result = acts.register_consent(
        obj.config, login=login, decision=decision, paper=paper, date=date
    )
    obj.reporter.summary(result.summary())


@consent.command("list")
@click.option(
    "--state",
    type=click.Choice(["unknown", "granted", "refused", "withdrawn"]),
    default=None,
    help="Only guardians in this state.",
)
@click.option("--paper", is_flag=True, default=None, help="The paper list of families instead.")
@pass_context
def consent_list(obj: Context, state: str | None, paper: bool | None) -> None:
    """Each guardian's consent with its history, or the families served on paper."""
    from otmetka.daemon.acts import rules as acts

    click.echo(acts.list_consents(obj.config, state=state, paper=paper).summary())


@main.group()
def breach() -> None:
    """Reports that a login leaked: register, list open and overdue, close."""


@breach.command("register")
@click.option("--login", required=True, help="The login that leaked.")
@click.option(
    "--received-at",
    required=True,
    help="When the school got the report: 2026-09-16T14:30 (school time) or with an offset.",
)
@click.option("--note", default=None, help="What the family said (kept with the report).")
@pass_context
def breach_register(obj: Context, login: str, received_at: str, note: str | None) -> None:
    """Revoke the login, block its page, issue a new login, notify, start the deadline."""
    from otmetka.daemon.acts import rules as acts

    result = acts.register_breach(obj.config, login=login, received_at=received_at, note=note)
    obj.reporter.summary(result.summary())


@breach.command("list")
@click.option("--all", "everything", is_flag=True, default=None, help="Closed reports too.")
@pass_context
def breach_list(obj: Context, everything: bool | None) -> None:
    """Open and overdue breach reports with their deadlines."""
    from otmetka.daemon.acts import rules as acts

    click.echo(acts.list_breaches(obj.config, include_closed=bool(everything)).summary())


@breach.command("close")
@click.option("--id", "report_id", type=int, required=True, help="Report number (breach list).")
@click.option("--note", default=None, help="How it was dealt with.")
@pass_context
def breach_close(obj: Context, report_id: int, note: str | None) -> None:
    """Close a report once the family has its new login."""
    from otmetka.daemon.acts import rules as acts

    obj.reporter.summary(acts.close_breach(obj.config, report_id=report_id, note=note).summary())


@main.group()
def audit() -> None:
    """The append-only audit chain of every act."""


@audit.command("verify")
@pass_context
def audit_verify(obj: Context) -> None:
    """Check the chain; exit 1 and name the first broken entry after any edit or deletion."""
    from otmetka.daemon.acts import rules as acts

    result = acts.verify_audit(obj.config)
    click.echo(result.summary())
    if not result.ok:
        sys.exit(1)


# --- backup and restore, retention, the audit extract ------------------------------------------


@main.command("backup")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Archive to write (default: paths.backup_dir/otmetka-backup-<time>.tar.gz).",
)
@pass_context
def backup_command(obj: Context, out: Path | None) -> None:
    """Write the database (a consistent copy) and the site secret into one owner-only
    archive with a manifest of SHA-256 hashes; safe while the daemon runs."""
    from otmetka.daemon.ops import backup

    obj.reporter.summary(backup.backup(obj.config, out).summary())


@main.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@pass_context
def restore(obj: Context, file: Path) -> None:
    """Check a backup (an `otmetka backup` archive or a nightly copy) and put it in place;
    refuses a damaged file and changes nothing then. Stop the daemon first."""
    from otmetka.daemon.ops import backup

    obj.reporter.summary(backup.restore(obj.config, file).summary())


@main.group("db")
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


@main.group()
def retention() -> None:
    """Personal data of students who left: purged after retention.purge_after_days."""


@retention.command("purge")
@click.option(
    "--dry-run", is_flag=True, default=None, help="Only say what would be deleted; delete nothing."
)
@pass_context
def retention_purge(obj: Context, dry_run: bool | None) -> None:
    """Delete the data of students who left (and of guardians of only those) longer ago
    than the retention period; events and the audit chain stay, the purge is audited."""
    from otmetka.daemon.ops import retention as kept

    obj.reporter.summary(kept.purge(obj.config, dry_run=bool(dry_run)).summary())


@audit.command("extract")
@click.option("--login", required=True, help="The login whose person the extract is about.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["json", "csv"]),
    default=None,
    help="Machine-readable part: json (default) or csv; a .txt for people comes beside it.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File to write (default: var/audit/extract-<login>-<time>.json).",
)
@pass_context
def audit_extract(obj: Context, login: str, output_format: str | None, out: Path | None) -> None:
    """Every event and audit entry of a login's person, with the chain hashes: what an act
    of destruction after a withdrawn consent needs."""
    from otmetka.daemon.ops import retention as kept

    result = kept.extract(obj.config, login=login, output_format=output_format, out=out)
    obj.reporter.summary(result.summary())


# --- analytics reports and class lists ----------------------------------------------------------


@main.group()
def report() -> None:
    """Analytics PDFs for the class teachers and the deputy head, with charts."""


@report.command("class")
@click.argument("class_name", metavar="CLASS")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="PDF file or folder (default: var/reports/<date>/<class>.pdf).",
)
@pass_context
def report_class(obj: Context, class_name: str, out: Path | None) -> None:
    """One class's analytics (e.g. `otmetka report class 7Б`): averages, marks, students at
    risk, attendance; linked from the class teacher's page after the next build."""
    from otmetka.daemon.paper import reports

    obj.reporter.summary(reports.report_class(obj.config, class_name=class_name, out=out).summary())


@report.command("school")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="PDF file or folder for the school report (default: var/reports/<date>/school.pdf).",
)
@pass_context
def report_school(obj: Context, out: Path | None) -> None:
    """Every class side by side, then each class's report; also one PDF per class."""
    from otmetka.daemon.paper import reports

    result = reports.report_school(obj.config, out=out, bar=obj.reporter.bar)
    obj.reporter.summary(result.summary())


@main.group("lists")
def lists_group() -> None:
    """Class lists as a spreadsheet: export, correct in Excel or LibreOffice, import."""


@lists_group.command("export")
@click.option("--class", "class_name", default=None, help="The class, e.g. 7Б.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="XLSX file to write (default: var/lists/<class>-<date>.xlsx).",
)
@pass_context
def lists_export(obj: Context, class_name: str | None, out: Path | None) -> None:
    """Write the class's students, guardians, contacts, delivery and groups as XLSX with
    drop-down lists (owner-only: it holds personal data)."""
    from otmetka.daemon.lists import classlists as lists

    obj.reporter.summary(lists.export_list(obj.config, class_name=class_name, out=out).summary())


@lists_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@pass_context
def lists_import(obj: Context, file: Path) -> None:
    """Check every cell of an edited list; if all are right, apply the corrections here and
    queue them for upstream (nothing is applied when any cell is wrong)."""
    from otmetka.daemon.lists import classlists as lists

    obj.reporter.summary(lists.import_list(obj.config, file).summary())
