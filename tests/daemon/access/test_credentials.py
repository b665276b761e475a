"""Issuing credentials on several threads: each page key is its own password's key and
opens its own page, the keys really are derived side by side, the bar counts every key,
and a key that cannot be derived stops the issue with nothing stored, nothing left queued
and no one-time list written."""

from __future__ import annotations

import io
import re
import threading
from pathlib import Path

import pytest

from otmetka.daemon.access import credentials
from otmetka.daemon.core.config import Config
from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.core.progress import Reporter
from otmetka.daemon.exchange.importer import import_document
from otmetka.daemon.runtime import open_project
from otmetka.db import models
from otmetka.site_builder import crypto, workers
from tests.support.acts_support import QUIET, build_school, make_config
from tests.support.factories import small_school

REAL_DERIVE = crypto.derive_key


class SideBySide:
    """`crypto.derive_key` whose first `parties` calls each wait until all of them run at
    once: issuing gets through only if that many keys are derived side by side."""

    def __init__(self, parties: int, fail_at: int | None = None) -> None:
        self.parties = parties
        self.fail_at = fail_at
        self.barrier = threading.Barrier(parties, timeout=60)
        self.lock = threading.Lock()
        self.calls = 0
        self.threads: set[str] = set()

    def __call__(self, password: str, salt: bytes, iterations: int) -> bytes:
        with self.lock:
            self.calls += 1
            call = self.calls
        if call <= self.parties:
            self.threads.add(threading.current_thread().name)
            self.barrier.wait()
        if call == self.fail_at:
            raise crypto.PageCryptoError("the key could not be derived")
        return REAL_DERIVE(password, salt, iterations)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def school_config(project_dir: Path) -> Config:
    return make_config(project_dir)


def _use_cores(
    monkeypatch: pytest.MonkeyPatch, cores: int, fail_at: int | None = None
) -> SideBySide:
    derive = SideBySide(cores, fail_at)
    monkeypatch.setattr(workers, "usable_cores", lambda: cores)
    monkeypatch.setattr(crypto, "derive_key", derive)
    return derive


def _imported(config: Config) -> int:
    """The small school imported, no logins yet; returns how many people need one."""
    open_project(config)
    import_document(small_school(), "school.json", MarkRules())
    return len(credentials.people_in_scope(None, everyone=True))


@pytest.mark.parametrize("cores", [1, 4])
def test_keys_derived_side_by_side_open_their_own_pages(
    school_config: Config, monkeypatch: pytest.MonkeyPatch, cores: int
) -> None:
    derive = _use_cores(monkeypatch, cores)

    school = build_school(school_config)

    assert len(derive.threads) == cores and all(n.startswith("page-key") for n in derive.threads)
    assert len(school.logins) >= 4
    iterations = school_config.site.kdf_iterations
    for name, row in school.logins.items():
        credential = school.credential(name)
        # The cached key is the key of this person's own password: no two swapped on the way.
        assert bytes(credential.derived_key) == REAL_DERIVE(
            row["password"], bytes(credential.salt), iterations
        )
        assert credential.kdf_iterations == iterations
        assert school.open_page(name)


def test_the_bar_counts_every_key(school_config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    _use_cores(monkeypatch, 2)
    people = _imported(school_config)
    terminal = Terminal()

    credentials.issue_credentials(
        school_config, class_name=None, everyone=True, reporter=Reporter(stream=terminal)
    )

    frames = [frame.rstrip() for frame in terminal.getvalue().split("\r")]
    assert f"{people}/{people} 100%  done" in frames[-2]
    assert re.fullmatch(rf"deriving page keys: {people} in \d+:\d\d", frames[-1])


def test_a_key_that_fails_stops_the_issue_with_nothing_stored(
    school_config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    derive = _use_cores(monkeypatch, 1, fail_at=3)
    people = _imported(school_config)

    with pytest.raises(crypto.PageCryptoError, match="could not be derived"):
        credentials.issue_credentials(school_config, class_name=None, everyone=True, reporter=QUIET)

    assert derive.calls <= 4 < people  # the queued keys were dropped, not derived in vain
    assert models.Credential.select().count() == 0
    folder = school_config.paths.var_dir / "credentials"
    assert not folder.exists() or not any(folder.iterdir())
