"""`otmetka ack`, `consent`, `breach` and `audit`: acts registered by staff and the audit
chain."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from otmetka.daemon.cli.base import Context, flag, out_option, pass_context

SIGNED_ON = click.option(
    "--date", default=None, help="Date of the signature, YYYY-MM-DD (default today)."
)


@click.group()
def ack() -> None:
    """Acknowledgements: register one a parent signed on a paper extract."""


@ack.command("register")
@click.option("--code", default=None, help="The short code on the extract's tear-off slip.")
@click.option("--login", default=None, help="The parent's login (needed without --code).")
@flag("--paper", help="It is signed on a paper extract.")
@SIGNED_ON
@pass_context
def ack_register(
    obj: Context, code: str | None, login: str | None, paper: bool | None, date: str | None
) -> None:
    """Record that a parent acknowledged a paper extract (registering it twice is harmless)."""
    from otmetka.daemon.acts.paper import register_ack

    result = register_ack(obj.open(), login=login, paper=paper, date=date, code=code)
    obj.reporter.summary(result.summary())


@click.group()
def consent() -> None:
    """Consent to personal-data processing: paper consents, states, the paper list."""


@consent.command("register")
@click.option("--login", required=True, help="The parent's login (from the slip).")
@click.option("--granted", "decision", flag_value="granted", default=None, help="Consent given.")
@click.option("--refused", "decision", flag_value="refused", help="Refused or withdrawn.")
@flag("--paper", help="It is signed on paper.")
@SIGNED_ON
@pass_context
def consent_register(
    obj: Context, login: str, decision: str | None, paper: bool | None, date: str | None
) -> None:
    """Record a consent or a refusal signed on paper; a refusal removes the page at once."""
    from otmetka.daemon.acts.paper import register_consent

    result = register_consent(obj.open(), login=login, decision=decision, paper=paper, date=date)
    obj.reporter.summary(result.summary())


@consent.command("list")
@click.option(
    "--state",
    type=click.Choice(["unknown", "granted", "refused", "withdrawn"]),
    default=None,
    help="Only guardians in this state.",
)
@flag("--paper", help="The paper list of families instead.")
@pass_context
def consent_list(obj: Context, state: str | None, paper: bool | None) -> None:
    """Each guardian's consent with its history, or the families served on paper."""
    from otmetka.daemon.acts import registers

    click.echo(registers.list_consents(obj.open(), state=state, paper=paper).summary())


@click.group()
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
    from otmetka.daemon.acts import paper

    result = paper.register_breach(obj.open(), login=login, received_at=received_at, note=note)
    obj.reporter.summary(result.summary())


@breach.command("list")
@flag("--all", "everything", help="Closed reports too.")
@pass_context
def breach_list(obj: Context, everything: bool | None) -> None:
    """Open and overdue breach reports with their deadlines."""
    from otmetka.daemon.acts import registers

    click.echo(registers.list_breaches(obj.open(), include_closed=bool(everything)).summary())


@breach.command("close")
@click.option("--id", "report_id", type=int, required=True, help="Report number (breach list).")
@click.option("--note", default=None, help="How it was dealt with.")
@pass_context
def breach_close(obj: Context, report_id: int, note: str | None) -> None:
    """Close a report once the family has its new login."""
    from otmetka.daemon.acts import registers

    obj.reporter.summary(
        registers.close_breach(obj.open(), report_id=report_id, note=note).summary()
    )


@click.group()
def audit() -> None:
    """The append-only audit chain of every act."""


@audit.command("verify")
@pass_context
def audit_verify(obj: Context) -> None:
    """Check the chain; exit 1 and name the first broken entry after any edit or deletion."""
    from otmetka.daemon.acts import registers

    result = registers.verify_audit(obj.open())
    click.echo(result.summary())
    if not result.ok:
        sys.exit(1)


@audit.command("extract")
@click.option("--login", required=True, help="The login whose person the extract is about.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["json", "csv"]),
    default=None,
    help="Machine-readable part: json (default) or csv; a .txt for people comes beside it.",
)
@out_option("File to write (default: var/audit/extract-<login>-<time>.json).")
@pass_context
def audit_extract(obj: Context, login: str, output_format: str | None, out: Path | None) -> None:
    """Every event and audit entry of a login's person, with the chain hashes: what an act
    of destruction after a withdrawn consent needs."""
    from otmetka.daemon.ops import retention

    result = retention.extract(obj.open(), login=login, output_format=output_format, out=out)
    obj.reporter.summary(result.summary())
