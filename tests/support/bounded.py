"""Running one import in a child process of its own, with its memory and file sizes capped,
and reporting what it raised, its peak RSS and how many bytes it wrote.

The caps are a safety net, not the measure: a reader that unpacks a bomb whole hits them
(MemoryError, a file too large) instead of taking the test machine down, and the test then
fails on the figures and the message it reports.
"""

from __future__ import annotations

import multiprocessing
import resource
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MB = 1024**2
# Address space of the child: the interpreter with pydantic, peewee and openpyxl loaded takes
# a few hundred MB of it; a reader that holds a bomb whole runs out well before the machine.
ADDRESS_SPACE = 2048 * MB
# Largest file the child may write: a temporary copy of a bomb stops here (EFBIG).
LARGEST_FILE = 256 * MB


@dataclass
class Outcome:
    error: str  # the message of what the call raised ("" if it returned)
    kind: str  # the class name of what it raised
    peak_rss_mb: float
    written_mb: float  # bytes the child handed to write(), every file together


def _peak_mb() -> float:
    """This process's own high-water mark of resident memory. Not ru_maxrss: Linux carries
    that over from the parent at fork, so a child of a big parent would report the parent."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _written() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    return 0


def _child(call: Callable[..., Any], args: tuple[Any, ...]) -> Outcome:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
    resource.setrlimit(resource.RLIMIT_FSIZE, (LARGEST_FILE, LARGEST_FILE))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the cap fails, not kills
    before = _written()
    error, kind = "", ""
    try:
        call(*args)
    except BaseException as raised:  # MemoryError too: that is what the test is about
        error, kind = str(raised), type(raised).__name__
    return Outcome(error, kind, _peak_mb(), (_written() - before) / MB)


def run_bounded(call: Callable[..., Any], *args: Any) -> Outcome:
    """`call(*args)` in a fresh interpreter (spawned: nothing inherited from the tests'
    memory); `call` must be a module-level function."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        outcome: Outcome = pool.apply(_child, (call, args))
    return outcome
