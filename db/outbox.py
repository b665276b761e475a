"""Queries of the sync daemon: the outbox, what the last pull and push did, and the few
stored journal facts the OneRoster adapter needs to complete a delta.

Outbox timestamps are stored as naive UTC, as `otmetka.db.acts.queue_outbox` writes them, so that
they compare as text in SQLite; functions here take and return aware UTC datetimes.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from otmetka.db import models
from otmetka.db.acts import utc_naive
from otmetka.db.connection import chunks, write_transaction


def _moment(value: Any) -> dt.datetime | None:
    """A stored timestamp as an aware UTC datetime (naive values are taken as UTC)."""
    if value is None or value == "":
        return None
    moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --- small facts between runs ---------------------------------------------------------------


def put_fact(key: str, value: dict[str, Any]) -> None:
    """Store a small JSON fact (last pull, last push) in its own short transaction."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    s = models.Setting
    with write_transaction():
        s.insert(key=key, value=text).on_conflict(
            conflict_target=[s.key], update={s.value: text}
        ).execute()


def get_fact(key: str) -> dict[str, Any] | None:
    row = models.Setting.get_or_none(models.Setting.key == key)
    if row is None:
        return None
    value = json.loads(row.value)
    return value if isinstance(value, dict) else None


# --- outbox -------------------------------------------------------------------------------


def _pk() -> Any:
    return models.OutboxItem._meta.primary_key


@dataclass(frozen=True)
class OutboxEntry:
    id: int
    kind: str
    key: str
    payload: str
    attempts: int
    created_at: dt.datetime | None


def enqueue(kind: str, key: str, payload: dict[str, Any], at: dt.datetime | None = None) -> bool:
    """Queue an item unless its key is queued already (inside the caller's transaction).

    Returns False for a repeated key, so a replayed request never queues twice.
    """
    moment = utc_naive(at or now_utc())
    o = models.OutboxItem
    if o.select().where(o.key == key).exists():
        return False
    o.insert(
        kind=kind,
        key=key,
        payload=json.dumps(payload, ensure_ascii=False, sort_keys=True),
        next_try=moment,
        created_at=moment,
    ).on_conflict_ignore().execute()
    return True


def due_items(kinds: Iterable[str], now: dt.datetime, limit: int) -> list[OutboxEntry]:
    """Unsent items of these kinds whose next try has come, oldest first."""
    o = models.OutboxItem
    query = (
        o.select()
        .where(o.kind.in_(list(kinds)), o.done_at.is_null(), o.next_try <= utc_naive(now))
        .order_by(_pk())
        .limit(limit)
    )
    return [
        OutboxEntry(
            row.get_id(), row.kind, row.key, row.payload, row.attempts, _moment(row.created_at)
        )
        for row in query
    ]


def mark_sent(ids: Iterable[int], at: dt.datetime) -> None:
    o = models.OutboxItem
    with write_transaction():
        for chunk in chunks(ids):
            o.update(done_at=utc_naive(at), last_error="").where(_pk().in_(chunk)).execute()


def mark_failed(failures: dict[int, tuple[str, dt.datetime]]) -> None:
    """Count a failed attempt: keep the error and the moment of the next try."""
    o = models.OutboxItem
    with write_transaction():
        for item_id, (error, next_try) in failures.items():
            o.update(
                attempts=o.attempts + 1, last_error=error[:2000], next_try=utc_naive(next_try)
            ).where(_pk() == item_id).execute()


def outbox_backlog() -> dict[str, Any]:
    """What is waiting, per kind, the oldest waiting item and the latest error."""
    o = models.OutboxItem
    waiting = o.select().where(o.done_at.is_null())
    per_kind: dict[str, int] = {}
    for row in waiting.select(o.kind):
        per_kind[row.kind] = per_kind.get(row.kind, 0) + 1
    oldest = waiting.order_by(_pk()).first()
    failing = waiting.where(o.last_error != "").order_by(_pk().desc()).first()
    return {
        "total": sum(per_kind.values()),
        "per_kind": dict(sorted(per_kind.items())),
        "oldest": _moment(oldest.created_at) if oldest else None,
        "last_error": failing.last_error if failing else "",
        "max_attempts": max((row.attempts for row in waiting.select(o.attempts)), default=0),
    }


# --- stored journal facts for adapters ------------------------------------------------------


def stored_student_classes(student_ids: Iterable[str]) -> dict[str, str]:
    """The class each (not deleted) student is in now."""
    s = models.Student
    found: dict[str, str] = {}
    for chunk in chunks(student_ids):
        query = s.select(s.id, s.class_unit_id).where(s.id.in_(chunk), s.deleted_at.is_null())
        found.update({row.id: row.class_unit_id for row in query})
    return found


def stored_group_classes(group_ids: Iterable[str]) -> dict[str, list[str]]:
    """The classes each stored group belongs to."""
    g = models.Group
    found: dict[str, list[str]] = {}
    for chunk in chunks(group_ids):
        query = g.select(g.id, g.class_unit_ids).where(g.id.in_(chunk), g.deleted_at.is_null())
        found.update({row.id: _id_list(row.class_unit_ids) for row in query})
    return found


def stored_group_subjects(group_ids: Iterable[str]) -> dict[str, str]:
    g = models.Group
    found: dict[str, str] = {}
    for chunk in chunks(group_ids):
        query = g.select(g.id, g.subject_id).where(g.id.in_(chunk), g.deleted_at.is_null())
        found.update({row.id: row.subject_id for row in query if row.subject_id})
    return found


def stored_guardian_links(person_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Live guardian links touching these guardians or students: id -> (guardian, student)."""
    link = models.GuardianLink
    found: dict[str, tuple[str, str]] = {}
    for chunk in chunks(person_ids):
        query = link.select(link.id, link.guardian_id, link.student_id).where(
            (link.guardian_id.in_(chunk) | link.student_id.in_(chunk)),
            link.deleted_at.is_null(),
        )
        found.update({row.id: (row.guardian_id, row.student_id) for row in query})
    return found


def stored_work_subjects(work_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Subject and date of stored works: id -> (subject_id, date)."""
    w = models.Work
    found: dict[str, tuple[str, str]] = {}
    for chunk in chunks(work_ids):
        query = w.select(w.id, w.subject_id, w.date).where(w.id.in_(chunk), w.deleted_at.is_null())
        found.update({row.id: (row.subject_id, str(row.date)) for row in query})
    return found


def _id_list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    try:
        parsed = json.loads(value or "[]")
    except (TypeError, json.JSONDecodeError):
        return []
    return [str(v) for v in parsed] if isinstance(parsed, list) else []
