"""`otmetka demo`: the logins it prints (a parent of two, a student, a class teacher and the
deputy head) open real pages, and the address it prints follows the server's port."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from otmetka.daemon.cli import main
from otmetka.daemon.core.config import config_from_dict
from otmetka.db import close_database, models, open_database

LOGIN = re.compile(r"^  (.+?) \((.+)\): login (\S+)  password (\S+)$", re.MULTILINE)


@pytest.mark.slow
def test_demo_prints_four_logins_and_the_address_it_serves(
    runner: CliRunner, config_file: Path
) -> None:
    config_file.write_text("site:\n  kdf_iterations: 100000\n", encoding="utf-8")
    result = runner.invoke(
        main,
        ["--config", str(config_file), "demo", "--students", "20", "--no-serve"],
        env={"OTMETKA_ENDPOINT_PORT": "9123"},
    )
    assert result.exit_code == 0, result.output
    assert "open http://127.0.0.1:9123/ and log in as:" in result.output
    logins = {role: (who, login) for role, who, login, _password in LOGIN.findall(result.output)}
    assert "родитель двоих детей" in logins and "ученик" in logins
    assert any(role.startswith("классный руководитель ") for role in logins)
    assert "заместитель директора" in logins and len(logins) == 4
    close_database()
    config = config_from_dict({}, base_dir=config_file.parent, env={})
    open_database(config.database.url)
    try:
        _who, login = logins["заместитель директора"]
        credential = models.Credential.get(models.Credential.login == login)
        assert credential.person_kind == "teacher" and credential.state == "active"
        deputy = models.Teacher.get_by_id(credential.person_id)
        assert "deputy_head" in json.loads(deputy.roles)
        page = config.site.output_dir / "p" / f"{credential.page_id}.html"
        assert page.is_file()
    finally:
        close_database()
