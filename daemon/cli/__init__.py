"""The command line: one click group, one module per command group; each command parses options
and calls one library function. Options default to None so that only flags actually given
override config.yaml.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from otmetka.daemon.cli import access, acts, journal, mail, ops, paper
from otmetka.daemon.cli.base import Context, OtmetkaGroup


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


COMMANDS: list[click.Command] = [
    journal.init,
    journal.demo,
    journal.sync,
    journal.status,
    journal.schema,
    journal.build,
    journal.serve,
    journal.run,
    access.credentials,
    access.secret,
    mail.mail,
    mail.outbox,
    paper.print_group,
    paper.report,
    paper.lists_group,
    acts.ack,
    acts.consent,
    acts.breach,
    acts.audit,
    ops.backup_command,
    ops.restore,
    ops.db_group,
    ops.retention,
]
for command in COMMANDS:
    main.add_command(command)
