"""Layered fixtures: a database in memory, a database file (WAL), a config in a temporary
project folder, a CLI runner bound to that config, and a throwaway PostgreSQL server
(started once, on first use) with a fresh database per test, and the small school on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from otmetka.daemon.acts import paper
from otmetka.daemon.core.config import Config, config_from_dict
from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.runtime import open_project
from otmetka.db import close_database, database, migrate, open_database
from tests.support.acts_support import (
    MOTHER,
    School,
    build_school,
    make_config,
    write_config_file,
)
from tests.support.pg_support import Cluster, running_cluster


@pytest.fixture
def memory_db() -> Iterator[None]:
    open_database("sqlite:///:memory:")
    migrate()
    yield
    close_database()


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "school"
    folder.mkdir()
    return folder


@pytest.fixture
def config(project_dir: Path) -> Config:
    """A config whose every path lies inside a fresh temporary project folder."""
    return config_from_dict({"site": {"kdf_iterations": 100_000}}, base_dir=project_dir, env={})


@pytest.fixture
def config_file(project_dir: Path) -> Path:
    path = project_dir / "config.yaml"
    path.write_text("site:\n  kdf_iterations: 100000\n", encoding="utf-8")
    return path


@pytest.fixture
def file_db(config: Config) -> Iterator[Path]:
    path = config.database_path()
    assert path is not None
    open_database(config.database.url)
    migrate()
    yield path
    close_database()


@pytest.fixture
def rules() -> MarkRules:
    return MarkRules()


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def count_statements() -> Iterator[Callable[[], int]]:
    """How many SQL statements the open database has run since the fixture started."""
    real = database.obj
    seen: list[str] = []
    original = real.execute_sql

    def counting(sql: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(sql)
        return original(sql, *args, **kwargs)

    real.execute_sql = counting
    yield lambda: len(seen)
    del real.execute_sql  # back to the class's method


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    with running_cluster() as running:
        yield running


@pytest.fixture
def pg_url(cluster: Cluster) -> Iterator[str]:
    url = cluster.fresh_database()
    yield url
    close_database()
    cluster.drop_database(url)


@pytest.fixture
def pg_school(project_dir: Path, pg_url: str) -> School:
    """The small school on PostgreSQL (logins, a built site, acts in the audit chain)."""
    write_config_file(project_dir, f"database:\n  url: {pg_url}\n")
    built = build_school(make_config(project_dir, database={"url": pg_url}))
    login = built.login(MOTHER)
    paper.register_consent(built.config, login=login, decision="granted", paper=True)
    open_project(built.config)
    return built
