"""Helpers for the tests of acts: the small school built with logins, bodies of API calls,
and a waitress server on a chosen port that stops without racing its own loop."""

from __future__ import annotations

import csv
import datetime as dt
import json
import secrets
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otmetka.daemon.access import credentials
from otmetka.daemon.core.config import Config, config_from_dict
from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.core.progress import Reporter
from otmetka.daemon.core.settings import build_options
from otmetka.daemon.exchange.importer import import_document
from otmetka.daemon.runtime import open_project
from otmetka.db import acts as events
from otmetka.db import database, models, page_versions, write_transaction
from otmetka.site_builder import build, crypto, keys
from tests.support.factories import change, envelope, small_school
from tests.support.servers import waitress_server

TODAY = dt.date(2026, 9, 16)
HEAD, SUPPORT = "head@school.example", "it@school.example"
QUIET = Reporter(quiet=True)
# A guardian of the small school (two children): the acts tests sign in as her.
MOTHER = "Иванова Мария"


serve = waitress_server


def call(
    port: int,
    path: str,
    body: bytes | dict[str, Any] | None = None,
    *,
    method: str = "POST",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    sent = {"Content-Type": "application/json", **(headers or {})}
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/{path}", data=data, headers=sent, method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            status, answer_headers = response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        raw, status, answer_headers = error.read(), error.code, dict(error.headers)
    return status, answer_headers, json.loads(raw) if raw else None


def event_id() -> str:
    return secrets.token_hex(16)


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


MADE_UP_VERSION = "ab" * 32


def newest_version(token: str) -> str:
    """The newest page version built for the token's login, as its page would send it;
    a made-up one for a token of no login, or before the database is open."""
    if database.obj is None:
        return MADE_UP_VERSION
    found = events.credential_by_token_hash(crypto.hash_token(token))
    v = models.PageVersion
    newest = (
        v.select(v.version).where(v.credential == found).order_by(v.last_built_at.desc()).first()
        if found is not None
        else None
    )
    return str(newest.version) if newest is not None else MADE_UP_VERSION


def ack_body(token: str, children: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "event_id": event_id(),
        "token": token,
        "occurred_at": now_iso(),
        "page_version": newest_version(token),
        "children": children,
        "shown": {"as_of": "2026-09-16", "week_start": "2026-09-14", "week_end": "2026-09-19"},
        **extra,
    }


def consent_body(token: str, decision: str, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": event_id(),
        "token": token,
        "occurred_at": now_iso(),
        "decision": decision,
        "text_version": "2026-1",
        **extra,
    }


def breach_body(token: str, **extra: Any) -> dict[str, Any]:
    body = {"event_id": event_id(), "token": token, "occurred_at": now_iso(), "note": "пароль"}
    return {**body, **extra}


@dataclass
class School:
    config: Config
    logins: dict[str, dict[str, str]]  # full name -> one-time list row

    def login(self, name: str) -> str:
        return self.logins[name]["login"]

    def credential(self, name: str) -> models.Credential:
        return models.Credential.get(models.Credential.login == self.login(name))

    def token(self, name: str) -> str:
        return keys.endpoint_token(bytes(self.credential(name).derived_key))

    def page_data(self, name: str) -> dict[str, Any]:
        """The data block the page's script posts acts with, from the decrypted page."""
        fragment = self.open_page(name)
        text = fragment.split('id="otm-page-data">', 1)[1].split("</script>", 1)[0]
        data: dict[str, Any] = json.loads(text)
        return data

    def record_version(self, name: str) -> str:
        """Record the person's current page version as the build does; returns it."""
        version = str(self.page_data(name)["page_version"])
        with write_transaction():
            page_versions.record([(self.credential(name).id, version)], dt.datetime.now(dt.UTC))
        return version

    def page(self, name: str) -> Path:
        return self.config.site.output_dir / "p" / f"{self.credential(name).page_id}.html"

    def open_page(self, name: str) -> str:
        """The decrypted fragment of a person's page, opened with their password."""
        credential = self.credential(name)
        html = self.page(name).read_text(encoding="utf-8")
        text = html.split('id="otm-envelope">', 1)[1].split("</script>", 1)[0]
        sealed = json.loads(text)
        key = crypto.derive_key(
            self.logins[name]["password"], bytes(credential.salt), sealed["iter"]
        )
        return crypto.decrypt_page(sealed, key, credential.page_id).decode("utf-8")

    def site(self) -> dict[str, tuple[str, str]]:
        """Each person's page id and page, opened with the password from the one-time list
        (after a restore or a move: the same ids and pages are the same site)."""
        open_project(self.config)
        return {name: (self.credential(name).page_id, self.open_page(name)) for name in self.logins}

    def rebuild(self) -> build.BuildResult:
        return build.build_site(build_options(self.config, today=TODAY))


def make_config(folder: Path, **sections: dict[str, Any]) -> Config:
    data: dict[str, Any] = {
        "site": {"kdf_iterations": 100_000},
        "school": {"head_email": HEAD, "support_email": SUPPORT},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return config_from_dict(data, base_dir=folder, env={})


def logins_for_everyone(config: Config) -> dict[str, dict[str, str]]:
    """Issue a login to everyone; the one-time list's rows (login, password...) by name."""
    issued = credentials.issue_credentials(config, class_name=None, everyone=True, reporter=QUIET)
    assert issued.list_path is not None
    with issued.list_path.open(encoding="utf-8-sig") as handle:
        return {row["name"]: row for row in csv.DictReader(handle)}


def build_school(config: Config) -> School:
    """The small school imported, everyone given a login, the site built (no consent yet)."""
    open_project(config)
    import_document(small_school(), "school.json", MarkRules())
    school = School(config, logins_for_everyone(config))
    school.rebuild()
    return school


def rows(kind: str | None = None) -> list[models.Event]:
    e = models.Event
    query = e.select() if kind is None else e.select().where(e.kind == kind)
    return list(query.order_by(e.received_at))


def write_config_file(folder: Path, extra: str = "") -> Path:
    """The same settings as `make_config`, as the config.yaml the CLI reads."""
    path = folder / "config.yaml"
    text = (
        f"site:\n  kdf_iterations: 100000\nschool:\n  head_email: {HEAD}\n"
        f"  support_email: {SUPPORT}\n{extra}"
    )
    path.write_text(text, encoding="utf-8")
    return path


SMALL_SCHOOL_STUDENTS = {
    "s-1": ("Иванова-Крылова", "Алёна"),
    "s-2": ("Иванов", "Артём"),
    "s-3": ("Петров", "Иван"),
}


def leaving(ids: list[str], day: str, cursor: str = "c-left") -> dict[str, Any]:
    """A delta from upstream: the small school's students `ids` left on `day`."""
    changes = [
        change(
            "student",
            sid,
            {
                "last_name": SMALL_SCHOOL_STUDENTS[sid][0],
                "first_name": SMALL_SCHOOL_STUDENTS[sid][1],
                "class_unit_id": "cls-7b",
                "left_at": day,
            },
            updated_at="2026-09-10T08:00:00+03:00",
        )
        for sid in ids
    ]
    return envelope(changes, mode="delta", cursor=cursor)


def leave_school(ids: list[str], day: str, cursor: str = "c-left") -> None:
    """The small school's students `ids` left on `day`, imported as upstream sends it."""
    import_document(leaving(ids, day, cursor), "left.json", MarkRules())
