"""The CLI's error edge: the Context every command gets (config, reporter, the open
project), the group that turns domain and database errors into one clear message,
`pass_context`, and the options many commands share (--class, --all, --out, flags, files)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
import peewee

from otmetka.daemon import runtime
from otmetka.daemon.core.config import Config, load_config
from otmetka.daemon.core.errors import OtmetkaError, database_error_message
from otmetka.daemon.core.progress import Reporter


@dataclass
class Context:
    config_path: Path | None
    debug: bool
    quiet: bool
    _config: Config | None = None
    _opened: bool = False

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    def open(self) -> Config:
        """The config, with its database connected and its schema up to date; the project
        is opened once per command, whatever the feature called next does."""
        config = self.config
        if not self._opened:
            runtime.open_project(config)
            self._opened = True
        return config

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


F = TypeVar("F", bound=Callable[..., Any])

FILE = click.Path(dir_okay=False, path_type=Path)


def flag(*decls: str, help: str) -> Callable[[F], F]:
    """An on/off option that stays None unless given, so that config.yaml decides otherwise."""
    return click.option(*decls, is_flag=True, default=None, help=help)


def file_option(*decls: str, help: str) -> Callable[[F], F]:
    """A path that must not be a folder; None unless given."""
    return click.option(*decls, type=FILE, default=None, help=help)


def file_argument() -> Callable[[F], F]:
    """The FILE argument of a command that reads one file."""
    return click.argument("file", type=FILE)


def out_option(help: str, *, folder_ok: bool = False) -> Callable[[F], F]:
    """--out: the file to write; with folder_ok it may also name a folder."""
    return click.option(
        "--out", type=click.Path(dir_okay=folder_ok, path_type=Path), default=None, help=help
    )


def class_option(help: str = "Only this class, e.g. 7Б.") -> Callable[[F], F]:
    """--class NAME, passed on as `class_name`."""
    return click.option("--class", "class_name", default=None, help=help)


def all_option(help: str = "Everyone in the school.") -> Callable[[F], F]:
    """--all, passed on as `everyone`."""
    return flag("--all", "everyone", help=help)
