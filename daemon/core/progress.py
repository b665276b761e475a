"""Progress for long work: a bar with the time left on a terminal, silence in logs and with
--quiet, and one line saying what was done when the work ends.

Library functions take a plain `progress(n)` callable so they never know about terminals;
the CLI decides whether that callable draws a bar.
"""

from __future__ import annotations

import math
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

import click

BAR_CELLS = 24
# Redrawing on every step of a fast loop would cost more than the step itself.
REDRAW_S = 0.1


def clock_text(seconds: float) -> str:
    """A duration as a wall clock shows it: 0:07, 2:51, 1:02:51."""
    whole = max(0, math.ceil(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def time_left(done: int, total: int, elapsed: float) -> str:
    """The time left at the rate so far; no guess before the first step is done."""
    if done >= total:
        return "done"
    if done <= 0 or elapsed <= 0:
        return "estimating time left"
    return f"{clock_text(elapsed * (total - done) / done)} left"


def bar_text(label: str, done: int, total: int, elapsed: float) -> str:
    """One frame: `label [#####-------]  120/500  24%  0:41 left`."""
    share = min(1.0, done / total) if total > 0 else 1.0
    filled = round(share * BAR_CELLS)
    cells = "#" * filled + "-" * (BAR_CELLS - filled)
    count = f"{done}/{total}".rjust(2 * len(str(total)) + 1)
    return f"{label} [{cells}] {count} {share:4.0%}  {time_left(done, total, elapsed)}"


def end_text(label: str, done: int, total: int, elapsed: float, finished: bool) -> str:
    """The line that replaces the bar when the work ends (or stops on an error)."""
    if finished:
        return f"{label}: {done} in {clock_text(elapsed)}"
    return f"{label}: stopped at {done} of {total} after {clock_text(elapsed)}"


class _Line:
    """A bar redrawn in place on one terminal line."""

    def __init__(self, label: str, total: int, stream: TextIO, clock: Callable[[], float]):
        self.label, self.total, self.stream, self.clock = label, total, stream, clock
        self.done = 0
        self.started = clock()
        self.drawn_at = -math.inf
        self.drawn_width = 0
        self.columns = shutil.get_terminal_size().columns
        self.lock = threading.Lock()  # a pool's callbacks may advance from their threads

    def advance(self, steps: int) -> None:
        with self.lock:
            self.done += steps
            now = self.clock()
            if now - self.drawn_at >= REDRAW_S or self.done >= self.total:
                self._draw(bar_text(self.label, self.done, self.total, now - self.started))
                self.drawn_at = now

    def close(self, finished: bool) -> None:
        with self.lock:
            elapsed = self.clock() - self.started
            self._draw(end_text(self.label, self.done, self.total, elapsed, finished))
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self, text: str) -> None:
        # A line longer than the terminal wraps, and `\r` would then redraw only its tail.
        text = text[: max(1, self.columns - 1)]
        self.stream.write("\r" + text.ljust(self.drawn_width))
        self.stream.flush()
        self.drawn_width = max(self.drawn_width, len(text))


class Reporter:
    def __init__(
        self,
        quiet: bool = False,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.clock = clock

    @property
    def interactive(self) -> bool:
        return not self.quiet and self.stream.isatty()

    @contextmanager
    def bar(self, label: str, total: int) -> Iterator[Callable[[int], None]]:
        """Yield `advance(n)`; draws a bar with the time left only when a person is
        watching, and leaves one line saying how many were done in how long."""
        if not self.interactive:
            yield lambda _n: None
            return
        line = _Line(label, total, self.stream, self.clock)
        line.advance(0)
        finished = False
        try:
            yield line.advance
            finished = True
        finally:
            line.close(finished)

    def summary(self, line: str) -> None:
        """The one line that says what a long job did; --quiet silences it too."""
        if not self.quiet:
            click.echo(line)
