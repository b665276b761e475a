"""Issuing and rotating credentials: a login and a password per page.

The password exists only while it is written to the one-time list (owner-only CSV under
var/); the database keeps the salt, the derived key (so rebuilds skip the KDF) and the hash
of the endpoint token. Deriving costs ~0.1 s per person at 600,000 iterations, so a whole
school is derived in a process pool with a progress bar.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from daemon.config import Config
from daemon.errors import OtmetkaError
from daemon.progress import Reporter
from daemon.project import open_project
from db import credentials as stored
from db import journal, write_transaction
from db.models import Credential
from site_builder import crypto, keys
from site_builder.render import people_with_pages

PageKey = tuple[str, str]
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

    def summary(self) -> str:
        if not self.issued:
            return "everyone already has credentials; nothing issued"
        return (
            f"issued {self.issued} credentials; one-time list of logins and passwords: "
            f"{self.list_path} (owner-only: print the slips, then delete it)"
        )


def _targets(class_name: str | None, everyone: bool) -> set[PageKey]:
    if not class_name and not everyone:
        raise OtmetkaError("say whom to issue credentials for: --class 7Б or --all")
    people = people_with_pages()
    if everyone:
        return people
    assert class_name is not None
    class_id = stored.class_id_by_name(class_name)
    if class_id is None:
        raise OtmetkaError(f"no class named «{class_name}»; `otmetka status` lists the classes")
    return people & stored.people_of_class(class_id)


def _fresh_login(taken: set[str]) -> str:
    while True:
        login = crypto.generate_login()
        if login not in taken and not stored.login_taken(login):
            taken.add(login)
            return login


def _derive_one(args: tuple[str, bytes, int]) -> bytes:
    return crypto.derive_key(*args)


def _derive_all(
    new: list[NewCredential], iterations: int, workers: int, advance: Callable[[int], None]
) -> None:
    jobs = [(item.password, item.salt, iterations) for item in new]
    if len(jobs) < 8 or workers < 2:
        results: Iterable[bytes] = map(_derive_one, jobs)
        for item, key in zip(new, results, strict=True):
            item.derived_key = key
            advance(1)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for item, key in zip(new, pool.map(_derive_one, jobs, chunksize=8), strict=True):
            item.derived_key = key
            advance(1)


def _write_one_time_list(config: Config, new: list[NewCredential], at: dt.datetime) -> Path:
    folder = config.paths.var_dir / "credentials"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"issued-{at:%Y%m%d-%H%M%S-%f}.csv"
    labels = stored.labels_of(item.key for item in new)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["login", "password", "role", "name", "class", "issued_at"])
        for item in sorted(new, key=lambda n: (labels[n.key][1], labels[n.key][0])):
            name, class_name = labels[item.key]
            role = ROLE_NAMES[item.key[0]]
            writer.writerow([item.login, item.password, role, name, class_name, at.isoformat()])
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
            stored.revoke(old, at)
        for item in new:
            token = keys.endpoint_token(item.derived_key)
            stored.add(
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


def _issue_for(
    config: Config,
    people: Iterable[PageKey],
    reporter: Reporter,
    revoking: list[Credential] | None = None,
) -> IssueResult:
    taken: set[str] = set()
    new = [
        NewCredential(key, _fresh_login(taken), crypto.generate_password(), crypto.new_salt())
        for key in sorted(people)
    ]
    if not new:
        return IssueResult(0, None)
    iterations = config.site.kdf_iterations
    with reporter.bar("deriving page keys", len(new)) as advance:
        _derive_all(new, iterations, os.cpu_count() or 1, advance)
    at = dt.datetime.now(dt.UTC)
    salt_text = keys.public_salt(keys.load_or_create_secret(config.site.secret_file))
    path = _write_one_time_list(config, new, at)
    _store(new, salt_text, iterations, at, revoking or [])
    return IssueResult(len(new), path, {item.key: (item.login, item.password) for item in new})


def issue_credentials(
    config: Config, *, class_name: str | None, everyone: bool, reporter: Reporter
) -> IssueResult:
    """Credentials for everyone in scope who should have a page and has none yet."""
    open_project(config)
    have = set(stored.active_by_person())
    return _issue_for(config, _targets(class_name, everyone) - have, reporter)


def rotate_credential(config: Config, login: str, reporter: Reporter) -> IssueResult:
    """Revoke a login and issue a new login and password for the same person."""
    open_project(config)
    credential = stored.by_login(crypto.normalise_login(login))
    if credential is None or credential.state != "active":
        raise OtmetkaError(f"no active login «{login}»; check the spelling on the slip")
    key = (credential.person_kind, credential.person_id)
    return _issue_for(config, [key], reporter, revoking=[credential])
