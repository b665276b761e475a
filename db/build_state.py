"""What the builder keeps between runs: the manifest of built pages and the dirty set."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable

from otmetka.db import models
from otmetka.db.connection import chunks, upsert_many
from otmetka.db.row_types import PageKey


def dirty_rows() -> set[tuple[str, str]]:
    d = models.DirtyPerson
    return {(row.person_kind, row.person_id) for row in d.select()}


def any_dirty() -> bool:
    return models.DirtyPerson.select().exists()


def clear_dirty(rows: Iterable[tuple[str, str]]) -> None:
    """Forget only what this build read: rows an import added meanwhile stay for the next."""
    d = models.DirtyPerson
    people: dict[str, list[str]] = defaultdict(list)
    for kind, person_id in rows:
        people[kind].append(person_id)
    for kind, ids in people.items():  # a full build read thousands: a statement per chunk
        for chunk in chunks(ids):
            d.delete().where(d.person_kind == kind, d.person_id.in_(chunk)).execute()


def manifest() -> dict[str, models.BuildManifest]:
    return {row.page_id: row for row in models.BuildManifest.select()}


def manifest_page_ids() -> set[str]:
    m = models.BuildManifest
    return {row.page_id for row in m.select(m.page_id)}


def record_pages(entries: Iterable[tuple[str, PageKey, str]], at: dt.datetime) -> None:
    m = models.BuildManifest
    upsert_many(
        m,
        [m.page_id, m.person_kind, m.person_id, m.content_hash, m.built_at],
        [(page_id, kind, person, digest, at) for page_id, (kind, person), digest in entries],
        conflict=[m.page_id],
        update=[m.person_kind, m.person_id, m.content_hash, m.built_at],
    )


def forget_pages(page_ids: Iterable[str]) -> None:
    m = models.BuildManifest
    for chunk in chunks(page_ids):
        m.delete().where(m.page_id.in_(chunk)).execute()


def get_setting(key: str) -> str | None:
    row = models.Setting.get_or_none(models.Setting.key == key)
    return row.value if row else None


def put_setting(key: str, value: str) -> None:
    s = models.Setting
    s.insert(key=key, value=value).on_conflict(
        conflict_target=[s.key], preserve=[s.value]
    ).execute()


def drop_setting(key: str) -> None:
    models.Setting.delete().where(models.Setting.key == key).execute()
