"""`otmetka mail` and `otmetka outbox`: letters to families and what waits to leave the
school."""

from __future__ import annotations

import click

from otmetka.daemon.cli.base import Context, class_option, pass_context


@click.group()
def mail() -> None:
    """E-mail to families and staff: letters wait in the outbox until the line is up."""


@mail.command("intro")
@class_option("Only families of this class, e.g. 7Б.")
@pass_context
def mail_intro(obj: Context, class_name: str | None) -> None:
    """Queue the introduction letter to every guardian with an address (once each)."""
    from otmetka.daemon.mail import campaigns

    obj.reporter.summary(campaigns.mail_intro(obj.open(), class_name).summary())


@mail.command("digest")
@pass_context
def mail_digest(obj: Context) -> None:
    """Queue the digest of what is new to consenting guardians now, off schedule."""
    from otmetka.daemon.mail import campaigns

    obj.reporter.summary(campaigns.mail_digest(obj.open(), obj.reporter.bar).summary())


@mail.command("flush")
@pass_context
def mail_flush(obj: Context) -> None:
    """Send every queued letter now, including those waiting to be retried."""
    from otmetka.daemon.mail import smtp

    obj.reporter.summary(smtp.mail_flush(obj.open()).summary())


@mail.command("status")
@pass_context
def mail_status(obj: Context) -> None:
    """Show the mail queue: pending letters, attempts, last error, next try, sent."""
    from otmetka.daemon.mail import smtp

    click.echo("\n".join(smtp.mail_status(obj.open())))


@click.group("outbox")
def outbox_group() -> None:
    """What waits to leave the school: events for upstream, letters."""


@outbox_group.command("flush")
@pass_context
def outbox_flush(obj: Context) -> None:
    """Send every due outbox item now (events upstream, letters if mail is on)."""
    from otmetka.daemon.mail import outbox

    obj.reporter.summary(outbox.flush(obj.open()).summary())
