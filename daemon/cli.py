"""The `otmetka` command: one click group; each command parses options and calls one
library function. Options default to None so that only flags actually given override
config.yaml."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from daemon import project
from daemon.config import Config, load_config
from daemon.errors import OtmetkaError
from daemon.progress import Reporter


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
    """Turns domain errors into one clear message; tracebacks only with --debug."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OtmetkaError as error:
            if isinstance(ctx.obj, Context) and ctx.obj.debug:
                raise
            raise click.ClickException(str(error)) from None


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
@pass_context
def demo(
    obj: Context,
    students: int | None,
    seed: int | None,
    export_path: Path | None,
    no_serve: bool | None,
) -> None:
    """Generate the demo school, import it through the importer and show what it holds."""
    from daemon import demo_run

    demo_run.run_demo(
        obj.config,
        students=students or 300,
        seed=1 if seed is None else seed,
        export_path=export_path,
        serve=not no_serve,
        reporter=obj.reporter,
    )


@main.command()
@click.option(
    "--file",
    "file_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Exchange file to import (.json or .jsonl).",
)
@pass_context
def sync(obj: Context, file_path: Path) -> None:
    """Import journal data from an exchange file (all or nothing)."""
    project.sync_file(obj.config, file_path, obj.reporter)


@main.command()
@pass_context
def status(obj: Context) -> None:
    """Show the last import, what the database holds and what is waiting."""
    report = project.status(obj.config)
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
    from daemon import endpoint

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
    from daemon import credentials as creds

    result = creds.issue_credentials(
        obj.config, class_name=class_name, everyone=bool(everyone), reporter=obj.reporter
    )
    obj.reporter.summary(result.summary())


@credentials.command("rotate")
@click.option("--login", required=True, help="The login to replace (from the slip).")
@pass_context
def credentials_rotate(obj: Context, login: str) -> None:
    """Revoke a login and issue a new login and password for the same person."""
    from daemon import credentials as creds

    result = creds.rotate_credential(obj.config, login, obj.reporter)
    obj.reporter.summary(result.summary())
