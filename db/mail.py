"""Mail: outbox rows of kind "mail", guardians' addresses, and what mail each guardian had.

The outbox row is the letter: its payload is everything needed to send it again the same
way, with the same Message-ID, so a retry after a crash is recognisably the same message.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any, NamedTuple

import peewee as pw

from otmetka.db import models
from otmetka.db.connection import chunks, database
from otmetka.db.outbox import OutboxEntry

MAIL = "mail"
# `last_error` of a row whose attempt has started and not finished (docs/mail.md).
SENDING = "sending: "


class GuardianContact(NamedTuple):
    id: str
    last_name: str
    first_name: str
    middle_name: str
    email: str


class MailState(NamedTuple):
    guardian_id: str
    intro_version: int
    digest_at: dt.datetime | None
    digest_seen: frozenset[str]


class QueuedMail(NamedTuple):
    """A mail row as `otmetka mail status` shows it."""

    id: int
    key: str
    payload: str
    attempts: int
    next_try: dt.datetime
    last_error: str
    created_at: dt.datetime
    done_at: dt.datetime | None


# --- guardians ----------------------------------------------------------------------------


def guardian_contacts(ids: Iterable[str]) -> dict[str, GuardianContact]:
    """Live guardians among `ids` who have an e-mail address."""
    g = models.Guardian
    found: dict[str, GuardianContact] = {}
    for chunk in chunks(ids):
        query = g.select(g.id, g.last_name, g.first_name, g.middle_name, g.email).where(
            g.id.in_(chunk), g.deleted_at.is_null(), g.email != ""
        )
        for row in database.execute(query).fetchall():
            contact = GuardianContact._make(row)
            if contact.email.strip():
                found[contact.id] = contact._replace(email=contact.email.strip())
    return found


def mail_states(ids: Iterable[str]) -> dict[str, MailState]:
    gm = models.GuardianMail
    found: dict[str, MailState] = {}
    for chunk in chunks(ids):
        for row in gm.select().where(gm.guardian_id.in_(chunk)):
            seen = frozenset(json.loads(row.digest_seen or "[]"))
            found[row.guardian_id] = MailState(
                row.guardian_id, row.intro_version, row.digest_at, seen
            )
    return found


def record_intro(guardian_id: str, version: int, at: dt.datetime) -> None:
    gm = models.GuardianMail
    gm.insert(guardian_id=guardian_id, intro_version=version, intro_at=at).on_conflict(
        conflict_target=[gm.guardian_id], preserve=[gm.intro_version, gm.intro_at]
    ).execute()


def record_digest(guardian_id: str, at: dt.datetime, seen: Iterable[str]) -> None:
    gm = models.GuardianMail
    text = json.dumps(sorted(set(seen)), ensure_ascii=False, separators=(",", ":"))
    gm.insert(guardian_id=guardian_id, digest_at=at, digest_seen=text).on_conflict(
        conflict_target=[gm.guardian_id], preserve=[gm.digest_at, gm.digest_seen]
    ).execute()


# --- the outbox, mail side ----------------------------------------------------------------


def key_exists(key: str) -> bool:
    o = models.OutboxItem
    return o.select().where(o.key == key).exists()


def queue(key: str, payload: str, at: dt.datetime) -> bool:
    """Add a mail row unless `key` is already in the outbox; True if added.

    Call it inside a write transaction: the check and the insert must not be split by
    another writer.
    """
    if key_exists(key):
        return False
    models.OutboxItem.create(kind=MAIL, key=key, payload=payload, next_try=at, created_at=at)
    return True


def _id() -> Any:
    """The outbox's primary key column (peewee adds it; type checkers cannot see it)."""
    return models.OutboxItem._meta.primary_key


def _unsent() -> pw.Expression:
    o = models.OutboxItem
    return (o.kind == MAIL) & o.done_at.is_null()


def as_utc(value: Any) -> dt.datetime:
    """A stored time as aware UTC: the outbox holds aware values and naive UTC ones."""
    moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return moment.astimezone(dt.UTC) if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def pending(now: dt.datetime, *, due_only: bool) -> list[OutboxEntry]:
    """Unsent mail, oldest first; `due_only=False` includes rows waiting out a backoff."""
    o = models.OutboxItem
    query = o.select().where(_unsent())
    if due_only:
        query = query.where(o.next_try <= now)
    return [
        OutboxEntry(r.get_id(), r.kind, r.key, r.payload, r.attempts, as_utc(r.created_at))
        for r in query.order_by(_id())
    ]


def _marker(at: dt.datetime) -> str:
    return SENDING + at.astimezone(dt.UTC).isoformat(timespec="microseconds")


def start_sending(item_id: int, at: dt.datetime, busy_since: dt.datetime) -> bool:
    """Claim a row for one attempt; False if it is sent, or another sender claimed it
    after `busy_since` (and may still be talking to the server).

    The claim is written before the message goes out: after a crash mid-send the row
    says when the unfinished attempt started.
    """
    o = models.OutboxItem
    busy = o.last_error.startswith(SENDING) & (o.last_error > _marker(busy_since))
    updated = (
        o.update(last_error=_marker(at))
        .where(_id() == item_id, o.done_at.is_null(), ~busy)
        .execute()
    )
    return bool(updated)


def mark_sent(item_id: int, at: dt.datetime, note: str = "") -> None:
    o = models.OutboxItem
    o.update(done_at=at, last_error=note).where(_id() == item_id).execute()


def note_unreachable(ids: Iterable[int], error: str) -> None:
    """Say why letters were not tried (no connection); attempts and next try unchanged."""
    o = models.OutboxItem
    for chunk in chunks(ids):
        o.update(last_error=error).where(_id().in_(chunk), o.done_at.is_null()).execute()


# --- status -------------------------------------------------------------------------------


def _queued(row: models.OutboxItem) -> QueuedMail:
    return QueuedMail(
        id=row.get_id(),
        key=row.key,
        payload=row.payload,
        attempts=row.attempts,
        next_try=as_utc(row.next_try),
        last_error=row.last_error,
        created_at=as_utc(row.created_at),
        done_at=as_utc(row.done_at) if row.done_at else None,
    )


def unsent_rows(limit: int) -> list[QueuedMail]:
    o = models.OutboxItem
    query = o.select().where(_unsent()).order_by(o.next_try, _id()).limit(limit)
    return [_queued(row) for row in query]


def counts(now: dt.datetime) -> dict[str, int]:
    """pending (unsent), due (of them, to try now), failing (tried at least once), sent."""
    o = models.OutboxItem
    unsent = o.select().where(_unsent())
    return {
        "pending": unsent.count(),
        "due": unsent.where(o.next_try <= now).count(),
        "failing": o.select().where(_unsent(), o.attempts > 0).count(),
        "sent": o.select().where(o.kind == MAIL, o.done_at.is_null(False)).count(),
    }


def last_sent() -> QueuedMail | None:
    o = models.OutboxItem
    query = o.select().where(o.kind == MAIL, o.done_at.is_null(False))
    row = query.order_by(o.done_at.desc(), _id().desc()).first()
    return _queued(row) if row else None


def by_key(key: str) -> models.OutboxItem | None:
    o = models.OutboxItem
    return o.get_or_none(o.key == key)
