"""The command line: one click group, one module per command group; each command parses options
and calls one library function. Options default to None so that only flags actually given
override config.yaml.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from otmetka.daemon.cli import access, acts, base, journal, mail, ops, paper


@click.group(cls=base.OtmetkaGroup)
@base.file_option("--config", "config_path", help="Configuration file (default: ./config.yaml).")
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
    ctx.obj = base.Context(config_path, debug, quiet)


COMMANDS: list[click.Command] = [
    journal.init,
    journal.demo,
    journal.sync,
    journal.status,
    journal.schema,
    journal.build,
    journal.serve,
    journal.run_daemon,
    access.credentials_group,
    access.secret_group,
    mail.mail,
    mail.outbox_group,
    paper.print_group,
    paper.report,
    paper.lists_group,
    acts.ack,
    acts.consent,
    acts.breach,
    acts.audit,
    ops.backup_command,
    ops.restore_command,
    ops.db_group,
    ops.retention_group,
]
for command in COMMANDS:
    main.add_command(command)
