"""Fixtures of the mail tests: the outbox senders wired as the runtime wires them, and the
page school in a real SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from otmetka.daemon import runtime
from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.exchange.importer import import_document
from otmetka.db import close_database, migrate, open_database
from tests.daemon.mail.mail_support import make_config
from tests.support.page_factories import page_school


@pytest.fixture(autouse=True)
def senders() -> None:
    """The outbox senders and the scheduler's checks, registered as the runtime does."""
    runtime.wire()


@pytest.fixture
def school_db(project_dir: Path) -> Iterator[Path]:
    """The page school in a real SQLite file under the project folder."""
    config = make_config(project_dir, 25)
    open_database(config.database.url)
    migrate()
    import_document(page_school(), "school.json", MarkRules())
    yield project_dir
    close_database()
