"""The class-list tests run with the parts wired as the runtime wires them: they import
documents into a database opened without open_project, and the importer must still settle
teachers' corrections after each batch (the hook the runtime registers)."""

from __future__ import annotations

import pytest

from otmetka.daemon import runtime


@pytest.fixture(autouse=True)
def wired() -> None:
    runtime.wire()
