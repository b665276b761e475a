"""The page versions kept per login: every version a build rendered, recent ones kept, a
login's old ones forgotten only when its own page is built again."""

from __future__ import annotations

import datetime as dt

from otmetka.db import credentials as credentials_db
from otmetka.db import models, page_versions

BUILT = dt.datetime(2026, 9, 1, 8, 0, tzinfo=dt.UTC)


def _login(name: str) -> int:
    credential = credentials_db.add(
        key=("guardian", name),
        login=name,
        page_id=f"page-{name}",
        salt=b"salt",
        derived_key=b"key",
        iterations=1,
        token_hash=f"hash-{name}",
        at=BUILT,
    )
    return int(credential.get_id())


def test_every_version_built_for_a_login_is_kept(memory_db: None) -> None:
    mother, father = _login("mother"), _login("father")
    page_versions.record([(mother, "a" * 64), (father, "b" * 64), (mother, "a" * 64)], BUILT)
    page_versions.record([(mother, "c" * 64)], BUILT + dt.timedelta(days=1))
    assert page_versions.versions_of(mother) == {"a" * 64, "c" * 64}
    assert page_versions.versions_of(father) == {"b" * 64}
    assert page_versions.versions_of(mother + father + 1) == set()


def test_a_version_built_again_stays_and_old_ones_go_with_the_logins_next_build(
    memory_db: None,
) -> None:
    mother, father = _login("mother"), _login("father")
    page_versions.record([(mother, "a" * 64), (mother, "b" * 64), (father, "f" * 64)], BUILT)
    later = BUILT + page_versions.KEEP + dt.timedelta(days=1)
    page_versions.record([(mother, "a" * 64)], later)  # unchanged page, built again
    assert page_versions.versions_of(mother) == {"a" * 64}
    assert page_versions.versions_of(father) == {"f" * 64}  # not built since: kept
    row = models.PageVersion.get(models.PageVersion.version == "a" * 64)
    assert (row.first_built_at, row.last_built_at) == (
        BUILT.replace(tzinfo=None),
        later.replace(tzinfo=None),
    )
