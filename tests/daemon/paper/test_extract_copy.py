"""The class teacher's encrypted copy of the printed extracts: linked from the teacher's
page only, sealed with the teacher's key, following new prints and new logins; printing
marks the teacher's page for a rebuild."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from otmetka.daemon.access import credentials
from otmetka.daemon.core.config import Config
from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.core.settings import build_options
from otmetka.daemon.exchange.importer import import_document
from otmetka.db import models
from otmetka.site_builder import attachments, build, crypto
from tests.support.acts_support import logins_for_everyone
from tests.support.extract_support import QUIET, print_class
from tests.support.page_factories import TODAY, page_school


@pytest.fixture
def school(file_db: Path, rules: MarkRules) -> None:
    import_document(page_school(), "school.json", rules)


def _key(row: dict[str, str]) -> tuple[models.Credential, bytes]:
    credential = models.Credential.get(models.Credential.login == row["login"])
    key = crypto.derive_key(row["password"], bytes(credential.salt), credential.kdf_iterations)
    return credential, key


def _fragment(config: Config, row: dict[str, str]) -> tuple[str, str]:
    credential, key = _key(row)
    html = (config.site.output_dir / "p" / f"{credential.page_id}.html").read_text("utf-8")
    sealed = json.loads(html.split('id="otm-envelope">', 1)[1].split("</script>", 1)[0])
    return html, crypto.decrypt_page(sealed, key, credential.page_id).decode("utf-8")


def _outside(html: str, page_id: str) -> str:
    """A page without its envelope and its id: what every page shares."""
    head, rest = html.split('id="otm-envelope">', 1)
    return (head + rest.split("</script>", 1)[1]).replace(page_id, "")


def _link(fragment: str) -> str:
    match = re.search(r'data-otm-file="([0-9a-f]{32})"', fragment)
    assert match is not None
    return match.group(1)


def _open_file(config: Config, file_id: str, key: bytes) -> bytes:
    sealed = json.loads((config.site.output_dir / "f" / f"{file_id}.bin").read_text("ascii"))
    return crypto.decrypt_page(sealed, key, file_id)


def test_class_teacher_page_links_the_encrypted_extracts(school: None, config: Config) -> None:
    rows = logins_for_everyone(config)
    teacher = rows["Королёва Анна Петровна"]
    build.build_site(build_options(config, today=TODAY))
    shell, fragment = _fragment(config, teacher)
    assert "data-otm-file" not in fragment
    printed_pdf = print_class(config).files[0].read_bytes()
    build.build_site(build_options(config, today=TODAY))
    shell, fragment = _fragment(config, teacher)
    file_id = _link(fragment)
    assert "Скачать выписки класса (PDF)" in fragment and "3 выписок, 3 стр." in fragment
    # download.js is in every page's shell, so the shell does not tell who has files
    assert "data-otm-filename" in shell
    _credential, key = _key(teacher)
    assert _open_file(config, file_id, key) == printed_pdf
    guardian_shell, _guardian = _fragment(config, rows["Иванова Мария"])
    student_shell, student = _fragment(config, rows["Петров Иван"])
    shells = {
        _outside(html, c.page_id)
        for html, c in (
            (shell, _credential),
            (student_shell, _key(rows["Петров Иван"])[0]),
            (guardian_shell, _key(rows["Иванова Мария"])[0]),
        )
    }
    assert len(shells) == 1 and "otm-file" not in student
    with pytest.raises(crypto.DecryptionError):  # the student's key does not open it
        _open_file(config, file_id, _key(rows["Петров Иван"])[1])


def test_teacher_copy_follows_new_prints_and_new_logins(school: None, config: Config) -> None:
    rows = logins_for_everyone(config)
    teacher = rows["Королёва Анна Петровна"]
    print_class(config)
    build.build_site(build_options(config, today=TODAY))
    first = _link(_fragment(config, teacher)[1])
    # A new print with other content: a new file, the old one is gone.
    print_class(config, paper_only=True)
    build.build_site(build_options(config, today=TODAY))
    second = _link(_fragment(config, teacher)[1])
    assert second != first and not (config.site.output_dir / "f" / f"{first}.bin").exists()
    # The teacher's login is rotated: the same file, sealed with the new key.
    _old, old_key = _key(teacher)
    rotated = credentials.rotate_credential(config, teacher["login"], QUIET)
    build.build_site(build_options(config, today=TODAY))
    login, password = next(iter(rotated.secrets.values()))
    new_row = {"login": login, "password": password}
    assert _link(_fragment(config, new_row)[1]) == second
    _credential, new_key = _key(new_row)
    assert _open_file(config, second, new_key).startswith(b"%PDF")
    with pytest.raises(crypto.DecryptionError):
        _open_file(config, second, old_key)
    assert attachments.publish(config.site.output_dir, {}) == 0  # no teacher: nothing kept
    assert not list((config.site.output_dir / "f").glob("*.bin"))


def test_printing_marks_the_class_teacher_page_for_a_rebuild(school: None, config: Config) -> None:
    print_class(config)
    assert ("teacher", "t-1") in {
        (row.person_kind, row.person_id) for row in models.DirtyPerson.select()
    }
