"""The journal commands: init, demo, sync, status, schema, build, serve and run (the
daemon)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from otmetka.daemon import runtime
from otmetka.daemon.cli.base import Context, file_option, flag, pass_context


@click.command()
@pass_context
def init(obj: Context) -> None:
    """Create the folders, the site secret and the database named in config.yaml."""
    for line in runtime.init_project(obj.config):
        obj.reporter.summary(f"created {line}")


@click.command()
@click.option(
    "--students",
    type=click.IntRange(1, 20000),
    default=None,
    help="How many students the demo school has (default 300).",
)
@click.option(
    "--seed", type=int, default=None, help="Random seed; the same seed gives the same school."
)
@file_option("--export", "export_path", help="Also write the generated exchange file here.")
@flag("--no-serve", help="Import and stop; do not serve.")
@flag("--upstream", help="Serve the school from a fake upstream on loopback and pull it over HTTP.")
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
    from otmetka.daemon.demo import run

    run.run_demo(
        obj.open(),
        students=students or 300,
        seed=1 if seed is None else seed,
        export_path=export_path,
        serve=not no_serve,
        reporter=obj.reporter,
        upstream=bool(upstream),
    )


@click.command()
@file_option("--file", "file_path", help="Exchange file to import (.json or .jsonl).")
@flag("--http", "from_http", help="Pull now from source.url.")
@flag("--inbox", "from_inbox", help="Import what is in the inbox now.")
@pass_context
def sync(
    obj: Context, file_path: Path | None, from_http: bool | None, from_inbox: bool | None
) -> None:
    """Import journal data now: from a file, the upstream API or the inbox (all or nothing
    per batch)."""
    if sum(bool(x) for x in (file_path, from_http, from_inbox)) != 1:
        raise click.UsageError("give exactly one of --file PATH, --http, --inbox")
    if file_path is not None:
        runtime.sync_file(obj.config, file_path, obj.reporter)
        return
    runtime.sync(obj.open(), obj.reporter, from_http=bool(from_http))


@click.command()
@flag(
    "--expect-daemon",
    help="Fail (exit 1) unless `otmetka run` is up, even without its pid file (monitoring).",
)
@pass_context
def status(obj: Context, expect_daemon: bool | None) -> None:
    """Show the last import, what the database holds and what is waiting; exit 1 when the
    daemon is expected but down or the last pull is too old."""
    report = runtime.status(obj.open(), expect_daemon=bool(expect_daemon))
    click.echo("\n".join(report.lines))
    if not report.healthy:
        sys.exit(1)


@click.command()
def schema() -> None:
    """Print the JSON Schema of exchange format v1 (generated from the importer's models)."""
    click.echo(runtime.schema_text(), nl=False)


@click.command()
@flag("--full", help="Render every page, not only changed ones.")
@pass_context
def build(obj: Context, full: bool | None) -> None:
    """Render, encrypt and write the pages whose content changed."""
    runtime.build(obj.open(), obj.reporter, full=bool(full))


@click.command()
@click.option("--host", default=None, help="Address to listen on (default: endpoint.host).")
@click.option("--port", type=int, default=None, help="Port (default: endpoint.port).")
@pass_context
def serve(obj: Context, host: str | None, port: int | None) -> None:
    """Serve the built site and the API with waitress until Ctrl-C."""
    from otmetka.daemon.endpoint import app

    config = obj.config
    click.echo(
        f"serving {config.site.output_dir} on http://{host or config.endpoint.host}:"
        f"{port or config.endpoint.port}/ (Ctrl-C stops)"
    )
    app.serve(obj.open(), host, port)


@click.command("run")
@pass_context
def run_daemon(obj: Context) -> None:
    """Run the daemon: the web server, scheduled pulls, builds, outbox and backups, and the
    inbox watcher, until Ctrl-C or SIGTERM."""
    from otmetka.daemon.runner import scheduler

    scheduler.run(obj.config, obj.reporter)
