"""Issuing and rotating credentials: a login and a password per page.

The password exists only while it is written to the one-time list (owner-only CSV under
var/) and to the slips PDF beside it (eight slips a sheet, to cut and hand out; the
printed slips are recorded, so a class teacher can see who has not been given theirs);
the database keeps the salt, the derived key (so rebuilds skip the KDF) and the hash
of the endpoint token. Deriving costs ~0.1 s of a core per person at 600,000 iterations,
so a whole school is derived on every core, with a progress bar showing the time left.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from otmetka.daemon.core.config import Config
from otmetka.daemon.core.errors import OtmetkaError
from otmetka.daemon.core.progress import Reporter
from otmetka.db import credentials as credentials_db
from otmetka.db import journal, queries, write_transaction
from otmetka.db import printing as printed
from otmetka.db.models import Credential
from otmetka.db.row_types import PageKey
from otmetka.site_builder import crypto, keys, workers
from otmetka.site_builder.pages.audience import people_with_pages
from otmetka.site_builder.pdf import slips

ROLE_NAMES = {"guardian": "родитель", "student": "ученик", "teacher": "учитель"}


@dataclass
class NewCredential:
    key: PageKey
    login: str
    password: str
    salt: bytes
    derived_key: bytes = b""


@dataclass
class IssueResult:
    issued: int
    list_path: Path | None
    # In memory only, for `otmetka demo` to show a few: key -> (login, password).
    secrets: dict[PageKey, tuple[str, str]] = field(default_factory=dict, repr=False)
    slips_path: Path | None = None  # the slips PDF (owner-only), beside the list

    def summary(self) -> str:
        if not self.issued:
            return "everyone already has credentials; nothing issued"
        return (
            f"issued {self.issued} credentials; slips to print: {self.slips_path}; "
            f"one-time list of logins and passwords: {self.list_path} "
            "(both owner-only: print the slips, then delete both)"
        )


def _targets(class_name: str | None, everyone: bool) -> set[PageKey]:
    if not class_name and not everyone:
        raise OtmetkaError("say whom to issue credentials for: --class 7Б or --all")
    people = people_with_pages()
    if everyone:
        return people
    assert class_name is not None
    class_id = credentials_db.class_id_by_name(class_name)
    if class_id is None:
        raise OtmetkaError(f"no class named «{class_name}»; `otmetka status` lists the classes")
    return people & credentials_db.people_of_class(class_id)


def people_in_scope(class_name: str | None, everyone: bool) -> set[PageKey]:
    """Who should have a page among a class's people (or everyone's): students, their
    guardians and the class teacher."""
    return _targets(class_name, everyone)


def _fresh_login(taken: set[str]) -> str:
    while True:
        login = crypto.generate_login()
        if login not in taken and not credentials_db.login_taken(login):
            taken.add(login)
            return login


def _derive_all(
    new: list[NewCredential], iterations: int, threads: int, advance: Callable[[int], None]
) -> None:
    """Each new credential's page key, `threads` at a time. Threads, not processes:
    OpenSSL's PBKDF2 runs without the GIL, so threads fill every core without spawning an
    interpreter per worker or sending the passwords to other processes."""
    pool = ThreadPoolExecutor(max(1, min(threads, len(new))), thread_name_prefix="page-key")
    try:
        pending = {
            pool.submit(crypto.derive_key, item.password, item.salt, iterations): item
            for item in new
        }
        for done in as_completed(pending):
            pending[done].derived_key = done.result()
            advance(1)
    finally:
        # On Ctrl-C or a failed key, drop the queued keys instead of deriving them all first.
        pool.shutdown(wait=True, cancel_futures=True)


def _write_one_time_list(config: Config, new: list[NewCredential], at: dt.datetime) -> Path:
    folder = config.paths.var_dir / "credentials"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"issued-{at:%Y%m%d-%H%M%S-%f}.csv"
    labels = credentials_db.labels_of(item.key for item in new)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["login", "password", "role", "name", "class", "issued_at"])
        for item in sorted(new, key=lambda n: (labels[n.key][1], labels[n.key][0])):
            name, class_name = labels[item.key]
            role = ROLE_NAMES[item.key[0]]
            writer.writerow([item.login, item.password, role, name, class_name, at.isoformat()])
    return path


def _slips_pdf(config: Config, new: list[NewCredential], qr_password: bool) -> bytes:
    """The slips of the new credentials, ordered like the one-time list (class, name)."""
    labels = credentials_db.labels_of(item.key for item in new)
    items = [
        slips.Slip(labels[i.key][0], i.key[0], labels[i.key][1], i.login, i.password) for i in new
    ]
    items.sort(key=lambda slip: (slip.class_name, slip.name, slip.login))
    return slips.slips_pdf(items, slip_addresses(config), qr_password=qr_password).data


def slip_addresses(config: Config) -> slips.SlipAddresses:
    school = queries.school()
    name = school.name if school and school.name else config.school.name
    return slips.SlipAddresses(name, config.school.lan_url, config.school.mirror_url)


def write_slips(config: Config, pdf: bytes, at: dt.datetime, prefix: str = "issued") -> Path:
    """An owner-only slips PDF under var/credentials/, named like the one-time list."""
    folder = config.paths.var_dir / "credentials"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"{prefix}-{at:%Y%m%d-%H%M%S-%f}.pdf"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pdf)
    return path


def _store(
    new: list[NewCredential],
    salt_text: str,
    iterations: int,
    at: dt.datetime,
    revoking: list[Credential],
) -> None:
    with write_transaction():
        for old in revoking:
            credentials_db.revoke(old, at)
        for item in new:
            token = keys.endpoint_token(item.derived_key)
            credentials_db.add(
                key=item.key,
                login=item.login,
                page_id=crypto.page_id_for_login(item.login, salt_text),
                salt=item.salt,
                derived_key=item.derived_key,
                iterations=iterations,
                token_hash=crypto.hash_token(token),
                at=at,
            )
        for kind in ("guardian", "student", "teacher"):
            journal.mark_dirty(kind, [i.key[1] for i in new if i.key[0] == kind])
        printed.record_slips([printed.SlipRow(i.login, i.key, True) for i in new], at)


@dataclass
class PreparedIssue:
    """New logins with their keys derived, not stored yet: the slow part, done outside any
    transaction so a caller (a breach report) can store them inside its own."""

    new: list[NewCredential]
    iterations: int
    salt_text: str
    slips: bytes = b""  # the slips PDF, rendered here since it is slow too


def prepare_issue(
    config: Config, people: Iterable[PageKey], reporter: Reporter, *, qr_password: bool = False
) -> PreparedIssue:
    """`qr_password` puts the password into the slips' QR codes too (login only by default)."""
    taken: set[str] = set()
    new = [
        NewCredential(key, _fresh_login(taken), crypto.generate_password(), crypto.new_salt())
        for key in sorted(people)
    ]
    iterations = config.site.kdf_iterations
    if new:
        with reporter.bar("deriving page keys", len(new)) as advance:
            _derive_all(new, iterations, workers.usable_cores(), advance)
    salt_text = keys.public_salt(keys.load_or_create_secret(config.site.secret_file))
    slips = _slips_pdf(config, new, qr_password) if new else b""
    return PreparedIssue(new, iterations, salt_text, slips)


def commit_issue(
    config: Config,
    prepared: PreparedIssue,
    at: dt.datetime,
    revoking: list[Credential] | None = None,
) -> IssueResult:
    """Write the one-time list and the slips, then store the credentials (in the caller's
    transaction if there is one); if storing fails, both files are deleted again."""
    new = prepared.new
    if not new:
        return IssueResult(0, None)
    path = _write_one_time_list(config, new, at)
    slips_path = None
    try:
        slips_path = write_slips(config, prepared.slips, at)
        _store(new, prepared.salt_text, prepared.iterations, at, revoking or [])
    except BaseException:
        path.unlink(missing_ok=True)
        if slips_path is not None:
            slips_path.unlink(missing_ok=True)
        raise
    secrets = {item.key: (item.login, item.password) for item in new}
    return IssueResult(len(new), path, secrets, slips_path)


def _issue_for(
    config: Config,
    people: Iterable[PageKey],
    reporter: Reporter,
    revoking: list[Credential] | None = None,
) -> IssueResult:
    prepared = prepare_issue(config, people, reporter)
    return commit_issue(config, prepared, dt.datetime.now(dt.UTC), revoking)


def issue_credentials(
    config: Config, *, class_name: str | None, everyone: bool, reporter: Reporter
) -> IssueResult:
    """Credentials for everyone in scope who should have a page and has none yet."""
    have = set(credentials_db.active_by_person())
    return _issue_for(config, _targets(class_name, everyone) - have, reporter)


def rotate_credential(config: Config, login: str, reporter: Reporter) -> IssueResult:
    """Revoke a login and issue a new login and password for the same person."""
    credential = credentials_db.by_login(crypto.normalise_login(login))
    if credential is None or credential.state != "active":
        raise OtmetkaError(f"no active login «{login}»; check the spelling on the slip")
    key = (credential.person_kind, credential.person_id)
    return _issue_for(config, [key], reporter, revoking=[credential])
