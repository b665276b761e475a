"""Credentials and the builder: pages for everyone with a login, rebuilt only when their
content changes, written atomically, with no personal data in plain text anywhere."""

from __future__ import annotations

import datetime as dt
import json
import stat
from pathlib import Path

import pytest

from otmetka.daemon.access import credentials
from otmetka.daemon.acts import paper
from otmetka.daemon.core.config import Config
from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.core.progress import Reporter
from otmetka.daemon.core.settings import build_options
from otmetka.daemon.exchange.importer import import_document
from otmetka.db import models
from otmetka.site_builder import atomic, build, crypto, publishing
from tests.support.acts_support import logins_for_everyone
from tests.support.factories import change, envelope, small_school

TODAY = dt.date(2026, 9, 16)
QUIET = Reporter(quiet=True)


@pytest.fixture
def school(file_db: Path, rules: MarkRules) -> None:
    import_document(small_school(), "school.json", rules)


def _issue(config: Config) -> dict[str, dict[str, str]]:
    """Logins for everyone; Иванова Мария has consented on paper, so her page shows data."""
    rows = logins_for_everyone(config)
    login = rows["Иванова Мария"]["login"]
    paper.register_consent(config, login=login, decision="granted", paper=True)
    return rows


def _build(config: Config) -> build.BuildResult:
    return build.build_site(build_options(config, today=TODAY))


def _open_page(config: Config, row: dict[str, str]) -> str:
    credential = models.Credential.get(models.Credential.login == row["login"])
    path = config.site.output_dir / "p" / f"{credential.page_id}.html"
    html = path.read_text(encoding="utf-8")
    envelope_text = html.split('id="otm-envelope">', 1)[1].split("</script>", 1)[0]
    import json

    sealed = json.loads(envelope_text)
    key = crypto.derive_key(row["password"], bytes(credential.salt), sealed["iter"])
    return crypto.decrypt_page(sealed, key, credential.page_id).decode("utf-8")


def test_one_time_list_is_owner_only_and_complete(school: None, config: Config) -> None:
    rows = _issue(config)
    roles = sorted(row["role"] for row in rows.values())
    assert roles == ["родитель", "ученик", "ученик", "ученик", "учитель"]
    path = next((config.paths.var_dir / "credentials").glob("issued-*.csv"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for row in rows.values():
        assert len(crypto.normalise_password(row["password"])) >= 13
        assert row["login"] and row["login"].lower() == row["login"]
    stored = models.Credential.select().first()
    assert stored.derived_key and stored.token_hash and not hasattr(stored, "password")
    again = credentials.issue_credentials(config, class_name=None, everyone=True, reporter=QUIET)
    assert again.issued == 0


def test_issue_needs_a_scope_and_a_real_class(school: None, config: Config) -> None:
    from otmetka.daemon.core.errors import OtmetkaError

    with pytest.raises(OtmetkaError, match="--class 7Б or --all"):
        credentials.issue_credentials(config, class_name=None, everyone=False, reporter=QUIET)
    with pytest.raises(OtmetkaError, match="no class named «9Я»"):
        credentials.issue_credentials(config, class_name="9Я", everyone=False, reporter=QUIET)
    result = credentials.issue_credentials(config, class_name="7Б", everyone=False, reporter=QUIET)
    assert result.issued == 5


def test_built_page_opens_with_its_password(school: None, config: Config) -> None:
    rows = _issue(config)
    result = _build(config)
    assert result.written == 5 and result.removed == 0
    assert (config.site.output_dir / "index.html").is_file()
    page = _open_page(config, rows["Иванова Мария"])
    assert "Иванова-Крылова" in page and "Иванов" in page
    with pytest.raises(crypto.DecryptionError):
        credential = models.Credential.get(
            models.Credential.login == rows["Иванова Мария"]["login"]
        )
        sealed_page = config.site.output_dir / "p" / f"{credential.page_id}.html"
        text = sealed_page.read_text(encoding="utf-8")
        import json

        sealed = json.loads(text.split('id="otm-envelope">', 1)[1].split("</script>", 1)[0])
        wrong = crypto.derive_key("WRONG-PASS-WORD-0000", bytes(credential.salt), sealed["iter"])
        crypto.decrypt_page(sealed, wrong, credential.page_id)


def test_no_personal_data_in_plain_text(school: None, config: Config) -> None:
    _issue(config)
    _build(config)
    surnames = {
        p.last_name for t in (models.Student, models.Guardian, models.Teacher) for p in t.select()
    }
    first_names = {p.first_name for t in (models.Student, models.Guardian) for p in t.select()}
    for path in config.site.output_dir.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            for name in surnames | first_names:
                assert name not in text, f"{name} in {path}"


def test_rebuild_touches_only_what_changed(school: None, config: Config, rules: MarkRules) -> None:
    _issue(config)
    _build(config)
    assert _build(config).written == 0
    later = "2026-09-16T10:00:00+03:00"
    delta = envelope(
        [
            change(
                "mark",
                "mk-new",
                {
                    "student_id": "s-1",
                    "subject_id": "math",
                    "date": "2026-09-14",
                    "lesson_id": "l-2",
                    "raw": "4",
                },
                updated_at=later,
            )
        ],
        mode="delta",
        cursor="c2",
    )
    import_document(delta, "delta.json", rules)
    result = _build(config)
    written = {
        (m.person_kind, m.person_id)
        for m in models.BuildManifest.select()
        if m.page_id in {entry[0] for entry in result.built}
    }
    assert written == {("student", "s-1"), ("guardian", "g-1"), ("teacher", "t-1")}


def test_a_full_rebuild_writes_back_a_page_file_lost_from_the_folder(
    school: None, config: Config
) -> None:
    """The manifest says the page is unchanged, but its file is gone (deleted by hand, a
    restore of the folder without it): a full build writes it again, and only it."""
    rows = _issue(config)
    _build(config)
    credential = models.Credential.get(models.Credential.login == rows["Иванова Мария"]["login"])
    lost = config.site.output_dir / "p" / f"{credential.page_id}.html"
    lost.unlink()
    result = build.build_site(build_options(config, full=True, today=TODAY))
    assert result.written == 1 and result.unchanged == 4
    assert "Иванова-Крылова" in _open_page(config, rows["Иванова Мария"])


def test_pages_of_people_who_left_are_removed(
    school: None, config: Config, rules: MarkRules
) -> None:
    rows = _issue(config)
    _build(config)
    credential = models.Credential.get(models.Credential.login == rows["Петров Иван"]["login"])
    page = config.site.output_dir / "p" / f"{credential.page_id}.html"
    assert page.exists()
    left = envelope(
        [
            change(
                "student",
                "s-3",
                {
                    "last_name": "Петров",
                    "first_name": "Иван",
                    "class_unit_id": "cls-7b",
                    "left_at": "2026-09-15",
                },
                updated_at="2026-09-15T12:00:00+03:00",
            )
        ],
        mode="delta",
        cursor="c3",
    )
    import_document(left, "left.json", rules)
    result = _build(config)
    assert not page.exists() and result.removed >= 1


def test_rotation_replaces_the_page(school: None, config: Config) -> None:
    rows = _issue(config)
    _build(config)
    old = models.Credential.get(models.Credential.login == rows["Петров Иван"]["login"])
    old_page = config.site.output_dir / "p" / f"{old.page_id}.html"
    result = credentials.rotate_credential(config, rows["Петров Иван"]["login"].upper(), QUIET)
    assert result.issued == 1
    _build(config)
    assert not old_page.exists()
    assert models.Credential.get_by_id(old.id).state == "revoked"


def test_a_failed_write_leaves_the_previous_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "page.html"
    atomic.write_atomic(target, b"old")

    def power_cut(*_args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "replace", power_cut)
    with pytest.raises(OSError, match="disk full"):
        atomic.write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["page.html"]


def test_a_blocked_page_is_sealed_like_any_page(school: None, config: Config) -> None:
    """The notice opens with the leaked password; from outside it is a page like the others."""
    rows = _issue(config)
    _build(config)
    row = rows["Петров Иван"]
    credential = models.Credential.get(models.Credential.login == row["login"])
    output = config.site.output_dir
    assert build.block_page(output, credential.page_id, "Дневник")
    page = output / "p" / f"{credential.page_id}.html"
    html = page.read_bytes()
    assert build.BLOCKED_MARK not in html and b"otm-envelope" in html
    assert "Доступ заблокирован" in _open_page(config, row)
    others = {len(p.read_bytes()) for p in (output / "p").glob("*.html") if p != page}
    assert len(html) in others
    assert page.stat().st_mtime == publishing.FIXED_MTIME
    assert not build.block_page(output, credential.page_id, "Дневник")  # already the notice
    assert page.read_bytes() == html


def test_pdfs_sealed_in_v1_are_retired(tmp_path: Path) -> None:
    """A v1 file carries its reader's PBKDF2 salt: the next build seals it again in v2."""
    key, salt = bytes(32), bytes(16)
    old = crypto.encrypt_page(b"%PDF", key, salt, "a" * 32, 1000)
    new = crypto.seal_file(b"%PDF", key, "b" * 32)
    (tmp_path / "f").mkdir()
    (tmp_path / "r").mkdir()
    for name, sealed in (("f/a.bin", old), ("r/a.bin", old), ("f/b.bin", new)):
        text = json.dumps(sealed, separators=(",", ":"), sort_keys=True)
        (tmp_path / name).write_text(text, encoding="ascii")
    assert build.retire_v1_files(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.rglob("*.bin")) == ["b.bin"]
