"""Printing a class's extracts in tests, as `otmetka print extracts` does for 7Б."""

from __future__ import annotations

from typing import Any

from otmetka.daemon.core.config import Config
from otmetka.daemon.core.progress import Reporter
from otmetka.daemon.paper import printing
from tests.support.page_factories import TODAY

QUIET = Reporter(quiet=True)


def print_class(config: Config, **options: Any) -> printing.ExtractsResult:
    """The extracts of 7Б of `page_school` (or as `options` say), quietly, as of TODAY."""
    args: dict[str, Any] = {
        "class_name": "7Б",
        "everyone": False,
        "period": None,
        "paper_only": False,
        "out": None,
        "reporter": QUIET,
        "today": TODAY,
    }
    return printing.print_extracts(config, **{**args, **options})
