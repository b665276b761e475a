"""The exchange tests run with the parts wired as the runtime wires them: many import
documents straight into a database opened without open_project, and the importer's
after-batch hook and the inbox's class lists must run all the same."""

from __future__ import annotations

import pytest

from otmetka.daemon import runtime


@pytest.fixture(autouse=True)
def wired() -> None:
    runtime.wire()
