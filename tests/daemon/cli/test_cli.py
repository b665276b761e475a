"""The command line: one clear message for user errors, thin commands (help texts: test_help.py)."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from otmetka.daemon.cli import main
from otmetka.daemon.exchange.reader import BatchError
from otmetka.db import close_database
from tests.support import paths
from tests.support.factories import change, small_school, write_json

ROOT = paths.ROOT


@pytest.fixture(autouse=True)
def _close_db() -> Iterator[None]:
    yield
    close_database()


def test_schema_matches_the_committed_copy(runner: CliRunner) -> None:
    result = runner.invoke(main, ["schema"])
    assert result.exit_code == 0
    committed = (ROOT / "docs" / "exchange-format.schema.json").read_text(encoding="utf-8")
    assert result.output == committed, (
        "regenerate: otmetka schema > docs/exchange-format.schema.json"
    )
    assert json.loads(result.output)["properties"]["version"]["const"] == 1


def test_init_creates_owner_only_secret(runner: CliRunner, config_file: Path) -> None:
    result = runner.invoke(main, ["--config", str(config_file), "init"])
    assert result.exit_code == 0, result.output
    secret = config_file.parent / "var" / "site.key"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert (config_file.parent / "db" / "otmetka.sqlite3").is_file()


def test_sync_then_status(runner: CliRunner, config_file: Path, tmp_path: Path) -> None:
    path = write_json(tmp_path / "school.json", small_school())
    result = runner.invoke(main, ["--config", str(config_file), "sync", "--file", str(path)])
    assert result.exit_code == 0, result.output
    assert "school.json: imported 33 records" in result.output
    close_database()
    status = runner.invoke(main, ["--config", str(config_file), "status"])
    assert status.exit_code == 0
    assert "students 3, guardians 2, teachers 2, classes 1" in status.output
    assert "from school.json" in status.output


def test_quiet_sync_prints_nothing(runner: CliRunner, config_file: Path, tmp_path: Path) -> None:
    path = write_json(tmp_path / "school.json", small_school())
    result = runner.invoke(main, ["--config", str(config_file), "-q", "sync", "--file", str(path)])
    assert result.exit_code == 0 and result.output == ""


def _bad_file(tmp_path: Path) -> Path:
    document = small_school()
    document["changes"].append(change("mark", "mk-x", {"student_id": "s-1", "raw": "7"}))
    return write_json(tmp_path / "bad.json", document)


def test_bad_file_gives_one_clear_message(
    runner: CliRunner, config_file: Path, tmp_path: Path
) -> None:
    result = runner.invoke(
        main, ["--config", str(config_file), "sync", "--file", str(_bad_file(tmp_path))]
    )
    assert result.exit_code == 1
    assert result.output.startswith("Error: bad.json: record 33 (id 'mk-x', type 'mark')")
    assert "Traceback" not in result.output


def test_debug_shows_the_traceback(runner: CliRunner, config_file: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        main, ["--config", str(config_file), "--debug", "sync", "--file", str(_bad_file(tmp_path))]
    )
    assert result.exit_code == 1
    assert isinstance(result.exception, BatchError)


def test_config_errors_are_listed_and_exit_1(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("site:\n  kdf_iterations: 10\nendpoint:\n  port: 0\n", encoding="utf-8")
    result = runner.invoke(main, ["--config", str(path), "status"])
    assert result.exit_code == 1
    assert "config.yaml: key 'site.kdf_iterations': must be >= 100000" in result.output
    assert "config.yaml: key 'endpoint.port'" in result.output
    assert "Traceback" not in result.output


def test_missing_file_to_sync(runner: CliRunner, config_file: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        main, ["--config", str(config_file), "sync", "--file", str(tmp_path / "nope.json")]
    )
    assert result.exit_code == 1 and "no such file" in result.output
