"""Credential slips: written when credentials are issued or rotated (the only moment the
password exists), eight a sheet, each class on its own sheets, read back from the PDF,
QR codes decoded from the printed page; `print slips` for a class, login-only slips,
and the record of who was given a slip."""

from __future__ import annotations

import csv
import datetime
import stat
from pathlib import Path

import peewee
import pytest
from click.testing import CliRunner
from pypdf import PdfReader

from otmetka.daemon.access import credentials
from otmetka.daemon.cli import main
from otmetka.daemon.core.config import Config, config_from_dict
from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.core.progress import Reporter
from otmetka.daemon.exchange.importer import import_document
from otmetka.daemon.paper import printing
from otmetka.db import credentials as credentials_db
from otmetka.db import models
from otmetka.db import printing as printed
from tests.support.page_factories import page_school, two_class_school
from tests.support.qr_codes import read_qr_codes

QUIET = Reporter(quiet=True)
LAN = "http://192.168.1.10/"
MIRROR = "https://school-mirror.example.ru/dnevnik/"


def _config(project_dir: Path, **school: str) -> Config:
    data = {"site": {"kdf_iterations": 100_000}, "school": {"lan_url": LAN, **school}}
    return config_from_dict(data, base_dir=project_dir, env={})


def _rows(result: credentials.IssueResult) -> list[dict[str, str]]:
    assert result.list_path is not None
    with result.list_path.open(encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def _text(path: Path) -> list[str]:
    return [page.extract_text() for page in PdfReader(path).pages]


@pytest.fixture
def two_classes(file_db: Path) -> None:
    import_document(two_class_school(per_class=5), "two.json", MarkRules())


@pytest.fixture
def school(file_db: Path) -> None:
    import_document(page_school(), "school.json", MarkRules())


def test_issuing_writes_slips_beside_the_list(
    two_classes: None, project_dir: Path, tmp_path: Path
) -> None:
    config = _config(project_dir)
    result = credentials.issue_credentials(config, class_name=None, everyone=True, reporter=QUIET)
    rows = _rows(result)
    assert result.slips_path is not None and result.list_path is not None
    assert result.slips_path.parent == result.list_path.parent
    assert stat.S_IMODE(result.slips_path.stat().st_mode) == 0o600
    assert str(result.slips_path) in result.summary()
    pages = _text(result.slips_path)
    # 11 people a class (5 students, 5 parents, the class teacher): 8 + 3, each class apart
    assert len(rows) == 22 and len(pages) == 4
    assert ["C5A" in p for p in pages] == [True, True, False, False]
    assert sum(p.count("Логин") for p in pages) == 22
    text = "\n".join(pages)
    for row in rows:
        assert row["login"] in text and row["password"] in text and row["name"] in text
    assert text.count(f"В школе: {LAN}") == 22 and "Из дома" not in text
    assert text.count("Храните пароль в тайне") == 22
    fonts = {
        str(font.get_object()["/BaseFont"]).split("+")[-1]
        for page in PdfReader(result.slips_path).pages
        for font in page["/Resources"]["/Font"].values()
    }
    assert fonts == {"PT-Sans", "PT-Sans-Bold"}  # the shipped fonts, nothing else
    assert "родитель (законный представитель), C5A" in text and "классный руководитель" in text
    codes = read_qr_codes(result.slips_path, tmp_path / "qr")
    assert sorted(codes) == sorted(f"{LAN}index.html#login={row['login']}" for row in rows)
    people = set(credentials_db.active_by_person())
    assert len(people) == 22 and printed.people_without_slips(people) == set()


def test_mirror_address_and_password_in_the_qr_code(
    school: None, project_dir: Path, tmp_path: Path
) -> None:
    config = _config(project_dir, mirror_url=MIRROR)
    result = printing.print_slips(
        config,
        class_name="7Б",
        everyone=False,
        qr_password=True,
        login_only=False,
        reporter=QUIET,
    )
    assert result.path is not None and result.with_password == result.new_logins == 5
    active = credentials_db.active_by_person().values()
    text = "\n".join(_text(result.path))
    assert text.count(f"Из дома: {MIRROR}") == 5
    codes = read_qr_codes(result.path, tmp_path / "qr")
    assert len(codes) == 10  # in school and from home
    for credential in active:
        at_school = [c for c in codes if c.startswith(f"{LAN}index.html#login={credential.login}")]
        assert len(at_school) == 1 and "&password=" in at_school[0]
        password = at_school[0].split("&password=")[1]
        assert password in text  # the same password as printed
        assert f"{MIRROR}index.html#login={credential.login}&password={password}" in codes


def test_print_slips_for_a_class_gives_each_person_one(school: None, project_dir: Path) -> None:
    config = _config(project_dir)

    def run(**options: bool) -> printing.SlipsResult:
        args = {"qr_password": False, "login_only": False, **options}
        return printing.print_slips(config, class_name="7Б", everyone=False, reporter=QUIET, **args)

    first = run()
    assert (first.with_password, first.new_logins, first.replaced, first.already) == (5, 5, 0, 0)
    again = run()
    assert (
        again.path is None and again.already == 5 and "already got their slips" in again.summary()
    )
    # A login whose password was never printed (issued before slips existed): replaced.
    active = credentials_db.active_by_person().values()
    legacy = next(c for c in active if c.person_kind == "student")
    models.CredentialSlip.delete().where(models.CredentialSlip.login == legacy.login).execute()
    assert printed.people_without_slips(credentials_db.active_by_person()) == {
        (legacy.person_kind, legacy.person_id)
    }
    before = {k: c.login for k, c in credentials_db.active_by_person().items()}
    fixed = run()
    assert (fixed.with_password, fixed.new_logins, fixed.replaced, fixed.already) == (1, 0, 1, 4)
    after = {k: c.login for k, c in credentials_db.active_by_person().items()}
    key = (legacy.person_kind, legacy.person_id)
    assert after[key] != before[key] and credentials_db.by_login(legacy.login).state == "revoked"
    assert {k: v for k, v in after.items() if k != key} == {
        k: v for k, v in before.items() if k != key
    }
    assert fixed.path is not None and after[key] in "\n".join(_text(fixed.path))


def test_login_only_slips_change_nothing(school: None, project_dir: Path) -> None:
    config = _config(project_dir)
    credentials.issue_credentials(config, class_name="7Б", everyone=False, reporter=QUIET)
    before = {k: c.login for k, c in credentials_db.active_by_person().items()}
    result = printing.print_slips(
        config,
        class_name="7Б",
        everyone=False,
        qr_password=True,
        login_only=True,
        reporter=QUIET,
    )
    assert result.login_only == 5 and result.path is not None
    assert {k: c.login for k, c in credentials_db.active_by_person().items()} == before
    text = "\n".join(_text(result.path))
    assert text.count("выдан ранее") == 5 and "Пароль" in text
    assert all(login in text for login in before.values())
    rows = models.CredentialSlip.select().where(models.CredentialSlip.with_password == False)  # noqa: E712
    assert sorted(r.login for r in rows) == sorted(before.values())


def test_rotating_a_login_prints_its_slip(school: None, project_dir: Path) -> None:
    config = _config(project_dir)
    issued = _rows(
        credentials.issue_credentials(config, class_name="7Б", everyone=False, reporter=QUIET)
    )
    old = next(row for row in issued if row["name"] == "Петров Иван")
    rotated = credentials.rotate_credential(config, old["login"], QUIET)
    assert rotated.slips_path is not None
    ((login, password),) = rotated.secrets.values()
    text = "\n".join(_text(rotated.slips_path))
    assert login in text and password in text and old["login"] not in text
    assert "Петров Иван" in text and len(PdfReader(rotated.slips_path).pages) == 1


def test_a_failed_issue_leaves_neither_slips_nor_list(school: None, project_dir: Path) -> None:
    """Storing fails after the files are written (a login taken meanwhile): both go."""
    config = _config(project_dir)
    people = credentials.people_in_scope("7Б", everyone=False)
    prepared = credentials.prepare_issue(config, people, QUIET)
    assert prepared.slips.startswith(b"%PDF")
    taken = prepared.new[-1]
    models.Credential.create(
        login=taken.login,
        person_kind="student",
        person_id="someone-else",
        page_id="0" * 32,
        salt=b"salt" * 4,
        derived_key=b"k" * 32,
        kdf_iterations=100_000,
        token_hash="t" * 64,
        issued_at=datetime.datetime.now(datetime.UTC),
    )
    with pytest.raises(peewee.IntegrityError):
        credentials.commit_issue(config, prepared, datetime.datetime.now(datetime.UTC))
    assert not list((config.paths.var_dir / "credentials").glob("issued-*"))
    assert models.Credential.select().count() == 1 and models.CredentialSlip.select().count() == 0


def test_cli_prints_slips(school: None, config_file: Path, runner: CliRunner) -> None:
    args = ["--config", str(config_file), "print", "slips", "--class", "7Б"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "printed 5 slips with passwords (5 new logins" in result.output
    bad = runner.invoke(main, ["--config", str(config_file), "print", "slips", "--class", "9Я"])
    assert bad.exit_code == 1 and "Error: no class named «9Я»" in bad.output
    neither = runner.invoke(main, ["--config", str(config_file), "print", "slips"])
    assert neither.exit_code == 1 and "--class 7Б or --all" in neither.output
