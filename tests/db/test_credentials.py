"""Credential rows: a login keeps the moments it was issued and revoked as naive UTC, like
every other stored time, whatever zone the caller's clock was in."""

from __future__ import annotations

import datetime as dt

from otmetka.db import credentials as credentials_db
from otmetka.db import database, models

YEKATERINBURG = dt.timezone(dt.timedelta(hours=5))


def _credential(at: dt.datetime = dt.datetime(2026, 9, 1, 8, 0)) -> models.Credential:
    return credentials_db.add(
        key=("guardian", "g-1"),
        login="mother",
        page_id="page-1",
        salt=b"salt",
        derived_key=b"key",
        iterations=1,
        token_hash="token-hash",
        at=at,
    )


def test_add_stores_an_aware_issue_time_as_naive_utc(memory_db: None) -> None:
    credential = _credential(dt.datetime(2026, 9, 1, 13, 0, tzinfo=YEKATERINBURG))
    (text,) = database.execute_sql('SELECT "issued_at" FROM "credential"').fetchone()
    assert str(text) == "2026-09-01 08:00:00"
    reloaded = models.Credential.get_by_id(credential.get_id())
    assert (reloaded.state, reloaded.issued_at) == ("active", dt.datetime(2026, 9, 1, 8, 0))


def test_revoke_stores_an_aware_time_as_naive_utc(memory_db: None) -> None:
    credential = _credential()
    credentials_db.revoke(credential, dt.datetime(2026, 9, 16, 14, 30, tzinfo=YEKATERINBURG))
    (text,) = database.execute_sql('SELECT "revoked_at" FROM "credential"').fetchone()
    assert str(text) == "2026-09-16 09:30:00"
    reloaded = models.Credential.get_by_id(credential.get_id())
    assert (reloaded.state, reloaded.revoked_at) == ("revoked", dt.datetime(2026, 9, 16, 9, 30))


def test_revoke_keeps_a_naive_time_as_it_is(memory_db: None) -> None:
    credential = _credential()
    credentials_db.revoke(credential, dt.datetime(2026, 9, 16, 9, 30))
    reloaded = models.Credential.get_by_id(credential.get_id())
    assert reloaded.revoked_at == dt.datetime(2026, 9, 16, 9, 30)
