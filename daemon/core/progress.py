"""Progress for long work: a bar on a terminal, silence in logs and with --quiet.

Library functions take a plain `progress(n)` callable so they never know about terminals;
the CLI decides whether that callable draws a bar.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

import click


class Reporter:
    def __init__(self, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.quiet = quiet
        self.stream = stream or sys.stderr

    @property
    def interactive(self) -> bool:
        return not self.quiet and self.stream.isatty()

    @contextmanager
    def bar(self, label: str, total: int) -> Iterator[Callable[[int], None]]:
        """Yield `advance(n)`; draws a bar only when a person is watching."""
        if not self.interactive:
            yield lambda _n: None
            return
        with click.progressbar(length=total, label=label, file=self.stream) as bar:
            yield bar.update

    def summary(self, line: str) -> None:
        """The one line that says what a long job did; --quiet silences it too."""
        if not self.quiet:
            click.echo(line)
