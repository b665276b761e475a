"""`otmetka secret rotate`: every page moves to a new address, the same login and password
open it there, nothing is left at the old addresses, and a rotation killed between its
database commit and its rename is finished by the next run."""

from __future__ import annotations

import datetime as dt
import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from otmetka.daemon.access import secret
from otmetka.daemon.acts import paper, registers
from otmetka.daemon.cli import main
from otmetka.daemon.core import pidfile
from otmetka.daemon.core.errors import OtmetkaError
from otmetka.daemon.runtime import open_project
from otmetka.db import build_state, close_database, models
from otmetka.site_builder import build, crypto, keys
from tests.support.acts_support import (
    QUIET,
    TODAY,
    School,
    build_school,
    make_config,
    write_config_file,
)

SON = "Иванов Артём"  # reported leaked: his old login's page shows «доступ заблокирован»


@pytest.fixture
def school(project_dir: Path) -> School:
    """The small school with logins and its site built, one login reported leaked."""
    write_config_file(project_dir)
    config = make_config(project_dir)
    school = build_school(config)
    paper.register_breach(config, login=school.login(SON), received_at="2026-09-16T10:00")
    open_project(config)
    school.rebuild()
    return school


def _page_ids() -> dict[str, str]:
    """login -> page id of every credential, revoked ones too."""
    return {row.login: row.page_id for row in models.Credential.select()}


def _pages(school: School) -> set[str]:
    return {p.stem for p in (school.config.site.output_dir / "p").glob("*.html")}


def _readers(school: School) -> list[str]:
    return [name for name in school.logins if name != SON]


def _open_with_stored_key(school: School, name: str) -> str:
    credential = school.credential(name)
    html = school.page(name).read_text(encoding="utf-8")
    sealed = json.loads(html.split('id="otm-envelope">', 1)[1].split("</script>", 1)[0])
    return crypto.decrypt_page(sealed, bytes(credential.derived_key), credential.page_id).decode()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _salt_of(path: Path) -> str:
    return keys.public_salt(bytes.fromhex(path.read_text(encoding="ascii")))


def test_rotation_moves_every_page_and_keeps_logins_and_passwords(school: School) -> None:
    config = school.config
    secret_file = config.site.secret_file
    old_secret, old_salt = secret_file.read_bytes(), _salt_of(secret_file)
    old_ids, old_files = _page_ids(), _pages(school)
    opened = {name: school.open_page(name) for name in _readers(school)}
    assert models.Credential.select().where(models.Credential.state == "revoked").count() == 1

    result = secret.rotate_secret(config, QUIET, today=TODAY)

    new_salt = _salt_of(secret_file)
    assert new_salt != old_salt and secret_file.read_bytes() != old_secret
    new_ids = _page_ids()
    assert new_ids.keys() == old_ids.keys()
    assert all(new_ids[login] != old_ids[login] for login in old_ids)  # revoked ones too
    assert new_ids == {login: crypto.page_id_for_login(login, new_salt) for login in new_ids}
    assert result.page_ids_changed == result.credentials == len(old_ids)
    for name, before in opened.items():  # the same password, the same page, a new address
        assert school.open_page(name) == before
        assert _open_with_stored_key(school, name) == before
    assert _pages(school).isdisjoint(old_files)
    assert _pages(school) == set(build_state.manifest()) | {new_ids[school.login(SON)]}
    # the leaked login moved too; its notice opens only with its own key
    assert build.BLOCKED_MARK.decode() in _open_with_stored_key(school, SON)
    index = (config.site.output_dir / "index.html").read_text(encoding="utf-8")
    assert new_salt in index and old_salt not in index

    old_file = secret.old_path(secret_file)
    assert old_file.read_bytes() == old_secret
    assert _mode(secret_file) == _mode(old_file) == 0o600
    assert not secret.pending_path(secret_file).exists()
    assert "page ids changed" in result.summary() and "passwords stay" in result.summary()


def test_the_rotation_is_audited_without_the_secret(school: School) -> None:
    config = school.config
    old_secret = config.site.secret_file.read_text(encoding="ascii").strip()
    secret.rotate_secret(config, QUIET, today=TODAY)
    new_secret = config.site.secret_file.read_text(encoding="ascii").strip()

    entry = models.AuditEntry.select().order_by(models.AuditEntry.seq.desc()).get()
    assert entry.action == secret.AUDIT_ACTION and entry.actor.startswith("staff:")
    details = json.loads(entry.details)
    assert details["what"] == "site secret rotated"
    assert details["credentials"] == details["page_ids"] == len(_page_ids())
    assert old_secret not in entry.details and new_secret not in entry.details
    assert registers.verify_audit(config).ok


def _commit_without_rename(school: School) -> bytes:
    """What a rotation leaves when the power goes between its commit and its rename."""
    secret_file = school.config.site.secret_file
    new = secret.prepare(secret_file)
    secret.commit(keys.public_salt(new), "staff:test", dt.datetime.now(dt.UTC))
    return new


def test_a_rotation_killed_after_its_commit_is_finished_when_the_project_opens(
    school: School,
) -> None:
    config = school.config
    secret_file = config.site.secret_file
    old_secret = secret_file.read_bytes()
    new = _commit_without_rename(school)
    assert secret_file.read_bytes() == old_secret  # the database and the file disagree now
    close_database()

    open_project(config)  # any command: `otmetka build`, the daemon starting

    assert keys.load_or_create_secret(secret_file) == new
    assert secret.old_path(secret_file).read_bytes() == old_secret
    assert not secret.pending_path(secret_file).exists()
    school.rebuild()
    for name in _readers(school):
        assert school.open_page(name)
    index = (config.site.output_dir / "index.html").read_text(encoding="utf-8")
    assert keys.public_salt(new) in index


def test_the_next_rotation_finishes_one_killed_after_its_commit(school: School) -> None:
    config = school.config
    secret_file = config.site.secret_file
    interrupted = _commit_without_rename(school)  # the database is still open: no hook ran

    secret.rotate_secret(config, QUIET, today=TODAY)

    # The interrupted secret was put in place first, then replaced by a fresh one.
    assert secret.old_path(secret_file).read_text(encoding="ascii").strip() == interrupted.hex()
    assert not secret.pending_path(secret_file).exists()
    salt = _salt_of(secret_file)
    assert _page_ids() == {login: crypto.page_id_for_login(login, salt) for login in _page_ids()}
    for name in _readers(school):
        assert school.open_page(name)
    rotations = models.AuditEntry.select().where(models.AuditEntry.action == secret.AUDIT_ACTION)
    assert rotations.count() == 2 and registers.verify_audit(config).ok


@pytest.mark.parametrize("leftover", ["uncommitted", "cut off"])
def test_a_new_secret_never_committed_is_removed_by_the_next_rotation(
    school: School, leftover: str
) -> None:
    config = school.config
    secret_file = config.site.secret_file
    old_secret = secret_file.read_bytes()
    pending = secret.pending_path(secret_file)
    if leftover == "uncommitted":
        secret.prepare(secret_file)  # killed before the commit
    else:
        pending.write_text("3f9a", encoding="ascii")  # killed while writing it
    stale = pending.read_bytes()
    close_database()
    open_project(config)
    assert pending.read_bytes() == stale  # opening the project leaves it alone
    assert secret_file.read_bytes() == old_secret

    secret.rotate_secret(config, QUIET, today=TODAY)

    assert not pending.exists()
    assert secret_file.read_bytes() not in (old_secret, stale)
    assert secret.old_path(secret_file).read_bytes() == old_secret
    for name in _readers(school):
        assert school.open_page(name)


def test_rotating_without_a_secret_says_to_run_init(project_dir: Path) -> None:
    config = make_config(project_dir)
    with pytest.raises(OtmetkaError, match="otmetka init"):
        secret.rotate_secret(config, QUIET)
    database = config.database_path()
    assert database is not None and not database.exists()  # nothing made on the way


def test_rotating_refuses_while_the_daemon_runs(school: School) -> None:
    config = school.config
    secret_file = config.site.secret_file
    before, ids = secret_file.read_bytes(), _page_ids()
    lock = pidfile.PidLock(pidfile.pid_path(config))
    lock.acquire()
    try:
        with pytest.raises(OtmetkaError, match="stop it first"):
            secret.rotate_secret(config, QUIET, today=TODAY)
    finally:
        lock.release()
    assert secret_file.read_bytes() == before and _page_ids() == ids
    assert not secret.pending_path(secret_file).exists()


def _cli(runner: CliRunner, school: School, *args: str, given: str | None = None) -> str:
    config_file = school.config.base_dir / "config.yaml"
    result = runner.invoke(main, ["--config", str(config_file), *args], input=given)
    close_database()
    assert result.exit_code == (1 if given == "n\n" else 0), result.output
    return result.output


def test_the_command_asks_then_rotates_and_the_audit_still_verifies(
    school: School, runner: CliRunner
) -> None:
    secret_file = school.config.site.secret_file
    before = secret_file.read_bytes()
    close_database()

    output = _cli(runner, school, "secret", "rotate", given="n\n")
    assert "Rotate the site secret?" in output and "Aborted" in output
    assert secret_file.read_bytes() == before

    output = _cli(runner, school, "secret", "rotate", "--yes")
    summary = [line for line in output.splitlines() if line.startswith("site secret rotated")]
    assert len(summary) == 1 and "old bookmarks" in summary[0]
    assert secret_file.read_bytes() != before
    assert secret.old_path(secret_file).read_bytes() == before
    assert "audit chain intact" in _cli(runner, school, "audit", "verify")
    open_project(school.config)
    for name in _readers(school):
        assert school.open_page(name)
