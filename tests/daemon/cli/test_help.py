"""The command line's public face: every command and group has help text, `--help` works on
each, and the README or docs/ name every command an operator can type."""

from __future__ import annotations

import re
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from otmetka.daemon.cli import main
from tests.support import paths

ROOT = paths.ROOT


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))


def _command_at(path: tuple[str, ...]) -> click.Command:
    command: click.Command = main
    for part in path:
        assert isinstance(command, click.Group)
        command = command.commands[part]
    return command


PATHS = sorted(_commands(main))
LEAVES = [path for path in PATHS if not isinstance(_command_at(path), click.Group)]


def _documentation() -> str:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return "\n".join(file.read_text(encoding="utf-8") for file in files)


def test_the_group_has_help_and_the_known_commands() -> None:
    assert main.help
    assert {("init",), ("demo",), ("sync",), ("status",), ("schema",)} <= set(PATHS)


@pytest.mark.parametrize("path", PATHS, ids=" ".join)
def test_every_command_has_help(runner: CliRunner, path: tuple[str, ...]) -> None:
    assert _command_at(path).help, f"otmetka {' '.join(path)} has no help text"
    result = runner.invoke(main, [*path, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


def test_every_command_is_documented() -> None:
    """Named as `otmetka <group> <cmd>`, in prose or after `.venv/bin/` in a code block; a
    group counts as documented through its commands."""
    text = _documentation()
    missing = [
        " ".join(path)
        for path in LEAVES
        if not re.search(r"\botmetka\s+" + r"\s+".join(map(re.escape, path)) + r"(?![\w-])", text)
    ]
    assert not missing, f"add to README.md's command list: {', '.join(missing)}"
