"""The registry of the daemon's deadline checks: the runtime registers them, the scheduler
runs them every `schedule.deadline_check_minutes`."""

from __future__ import annotations

from collections.abc import Callable

from otmetka.daemon.core.config import Config

# Checks of legal deadlines (e.g. the one working day to handle a breach report). A check
# returns a line for the log (or None when there was nothing to do) and raises on failure.
DeadlineCheck = Callable[[Config], str | None]
DEADLINE_CHECKS: dict[str, DeadlineCheck] = {}


def register_deadline_check(name: str, check: DeadlineCheck) -> None:
    """Run `check` with the others; registering a name again replaces its check."""
    DEADLINE_CHECKS[name] = check
