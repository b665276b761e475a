"""`otmetka credentials` and `otmetka secret`: logins, passwords and the site secret."""

from __future__ import annotations

import click

from otmetka.daemon import runtime
from otmetka.daemon.cli.base import Context, all_option, class_option, flag, pass_context


@click.group("credentials")
def credentials_group() -> None:
    """Issue and rotate logins and passwords for the pages."""


@credentials_group.command("issue")
@class_option()
@all_option()
@pass_context
def credentials_issue(obj: Context, class_name: str | None, everyone: bool | None) -> None:
    """Create credentials for people who have none; writes a one-time list (owner-only)."""
    from otmetka.daemon.access import credentials

    result = credentials.issue_credentials(
        obj.open(), class_name=class_name, everyone=bool(everyone), reporter=obj.reporter
    )
    obj.reporter.summary(result.summary())


@credentials_group.command("rotate")
@click.option("--login", required=True, help="The login to replace (from the slip).")
@pass_context
def credentials_rotate(obj: Context, login: str) -> None:
    """Revoke a login and issue a new login and password for the same person."""
    from otmetka.daemon.access import credentials

    result = credentials.rotate_credential(obj.open(), login, obj.reporter)
    obj.reporter.summary(result.summary())


@click.group("secret")
def secret_group() -> None:
    """The site secret, from which every page address (page id) is derived."""


@secret_group.command("rotate")
@flag("--yes", help="Do not ask for confirmation.")
@pass_context
def secret_rotate(obj: Context, yes: bool | None) -> None:
    """New site secret, hence a new address for every page; logins and passwords stay.
    Rebuilds the whole site; old bookmarks and page links stop working. Stop the daemon
    first."""

    if not yes:
        click.confirm(
            "Every page gets a new address: bookmarks, saved links and page links in letters "
            "stop working (logins and passwords stay). Rotate the site secret?",
            abort=True,
        )
    obj.reporter.summary(runtime.rotate_secret(obj.config, obj.reporter).summary())
