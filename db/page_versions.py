"""The page versions built for each login: an acknowledgement from a page must name one.

The builder records the version of every page it renders (`record`, in its write
transaction); the endpoint reads a login's versions back (`versions_of`). Old versions are
kept for a while, not only the newest, so a parent who acknowledges offline from a page
built days ago is still believed. Times are stored as naive UTC.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import peewee as pw

from otmetka.db import models
from otmetka.db.connection import chunks, upsert_many

# An act may arrive at most `endpoint.offline_window_days` (up to 60) late, and a phone may
# keep a page for weeks before the parent acts on it: a version that stopped being built
# within this long still counts.
KEEP = dt.timedelta(days=90)

VersionEntry = tuple[int, str]  # credential id, page version


def _naive(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def record(entries: Iterable[VersionEntry], at: dt.datetime) -> None:
    """Remember the versions just built (call inside the build's write transaction); forget
    the versions of these logins that no build has rendered for `KEEP`."""
    when = _naive(at)
    unique = list(dict.fromkeys(entries))
    v = models.PageVersion
    fields: list[pw.Field] = [v.credential, v.version, v.first_built_at, v.last_built_at]
    rows = [(cid, version, when, when) for cid, version in unique]
    upsert_many(v, fields, rows, conflict=[v.credential, v.version], update=[v.last_built_at])
    for ids in chunks(cid for cid, _version in unique):
        v.delete().where(v.credential.in_(ids), v.last_built_at < when - KEEP).execute()


def versions_of(credential_id: int) -> set[str]:
    """The versions built for this login and still kept (empty: none was ever recorded)."""
    v = models.PageVersion
    return {str(row.version) for row in v.select(v.version).where(v.credential == credential_id)}
