"""The audit chain: every legally significant act appends one entry, and each entry holds
the hash of the one before it, so an edit or a deletion anywhere breaks the chain.

An entry's hash is SHA-256 over the canonical JSON of ``[seq, at, actor, action, subject,
details, prev_hash]`` (times as ``YYYY-MM-DD HH:MM:SS.ffffff`` UTC, details as stored).
The first entry's ``prev_hash`` is 64 zeros. `verify()` walks the chain and also checks
every event row against the entry that recorded it, so editing an event (or deleting one
together with nothing else) is caught as well. Deleting the newest entries *and* their
events leaves a shorter valid chain; only an outside copy of the head (``verify`` prints
it; the outbox pushes every event upstream) can show that.

Appending must happen inside the caller's write transaction, next to the act it records.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from otmetka.db import models
from otmetka.db.connection import database, is_sqlite

GENESIS = "0" * 64
RECORD_ACTION = "event.record"
INVALIDATE_ACTION = "event.invalidate"


def stamp(value: object) -> str:
    """The canonical text of a stored time: naive UTC with microseconds.

    Anything that is not a datetime (a row edited by hand into garbage) is taken as text,
    so it hashes differently instead of crashing the check.
    """
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat(sep=" ", timespec="microseconds")
    return str(value)


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def entry_hash(
    seq: int, at: str, actor: str, action: str, subject: str, details: str, prev_hash: str
) -> str:
    return _sha256(canonical([seq, at, actor, action, subject, details, prev_hash]))


def event_digest(event: models.Event) -> str:
    """What the recording entry vouches for: every field of the event but its validity,
    which changes later through its own `event.invalidate` entry."""
    fields = [
        event.event_id,
        event.kind,
        event.credential_id,  # type: ignore[attr-defined]
        event.guardian_id,
        event.channel,
        event.payload,
        event.response,
        stamp(event.occurred_at),
        stamp(event.received_at),
    ]
    return _sha256(canonical(fields))


def event_subject(event_id: str) -> str:
    return f"event:{event_id}"


def _sql(text: str) -> str:
    return text if is_sqlite() else text.replace("?", "%s")


_HEAD = 'SELECT "seq", "entry_hash" FROM "audit_entry" ORDER BY "seq" DESC LIMIT 1'
_APPEND = (
    'INSERT INTO "audit_entry" ("seq", "at", "actor", "action", "subject", "details", '
    '"prev_hash", "entry_hash") VALUES (?, ?, ?, ?, ?, ?, ?, ?)'
)


def _head() -> tuple[int, str]:
    last = database.execute_sql(_HEAD).fetchone()
    return (int(last[0]), str(last[1])) if last else (0, GENESIS)


def append(actor: str, action: str, subject: str, details: dict[str, Any], at: dt.datetime) -> str:
    """Add one entry at the end of the chain (call inside a write transaction); returns its
    hash. Written by hand: every act appends at least one, so it is on the hot path."""
    seq, prev = _head()
    seq += 1
    at_text, details_text = stamp(at), canonical(details)
    digest = entry_hash(seq, at_text, actor, action, subject, details_text, prev)
    params = (seq, at_text, actor, action, subject, details_text, prev, digest)
    database.execute_sql(_sql(_APPEND), params)
    return digest


def record_event(
    actor: str, event: models.Event, at: dt.datetime, claimed: dt.datetime | None = None
) -> str:
    """The entry that vouches for an event: its digest, the time the act claims (as sent,
    before a clock ahead of ours is clamped) and the time it was received, side by side."""
    details = {
        "kind": event.kind,
        "digest": event_digest(event),
        "claimed_at": stamp(event.occurred_at if claimed is None else claimed),
        "received_at": stamp(event.received_at),
    }
    return append(actor, RECORD_ACTION, event_subject(event.event_id), details, at)


# --- verification ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    seq: int
    message: str

    def __str__(self) -> str:
        return f"entry #{self.seq}: {self.message}"


@dataclass
class Verification:
    entries: int
    head: str
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.ok:
            return f"audit chain intact: {self.entries} entries, head {self.head}"
        first = self.problems[0]
        more = len(self.problems) - 1
        tail = f" ({more} more problem{'s' if more != 1 else ''} after it)" if more else ""
        return f"audit chain broken at {first}{tail}"


def _chain_problems(rows: Iterable[models.AuditEntry]) -> Iterator[Problem]:
    expected_seq, prev = 1, GENESIS
    for row in rows:
        if row.seq != expected_seq:
            yield Problem(expected_seq, "missing: deleted from the chain")
            return
        if row.prev_hash != prev:
            yield Problem(row.seq, "does not follow the entry before it (edited or replaced)")
            return
        digest = entry_hash(
            row.seq,
            stamp(row.at),
            row.actor,
            row.action,
            row.subject,
            row.details,
            row.prev_hash,
        )
        if digest != row.entry_hash:
            yield Problem(row.seq, f"{row.action} {row.subject} was edited after it was written")
            return
        expected_seq, prev = expected_seq + 1, row.entry_hash


def _details(row: models.AuditEntry) -> dict[str, Any]:
    try:
        value = json.loads(row.details)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


@dataclass
class _EventMarks:
    recorded: list[models.AuditEntry]
    invalidated: list[models.AuditEntry]


def _marks_by_event(rows: Iterable[models.AuditEntry]) -> dict[str, _EventMarks]:
    marks: dict[str, _EventMarks] = {}
    for row in rows:
        if row.action not in (RECORD_ACTION, INVALIDATE_ACTION):
            continue
        entry = marks.setdefault(row.subject, _EventMarks([], []))
        (entry.recorded if row.action == RECORD_ACTION else entry.invalidated).append(row)
    return marks


def _event_problems(rows: list[models.AuditEntry], after: int) -> Iterator[Problem]:
    """Events that differ from what their entries vouch for, or have no entry at all."""
    marks = _marks_by_event(rows)
    events = {event_subject(e.event_id): e for e in models.Event.select()}
    for subject, event in events.items():
        mark = marks.get(subject)
        if mark is None or not mark.recorded:
            yield Problem(after + 1, f"missing: no entry records {subject} (deleted)")
            continue
        entry = mark.recorded[0]
        if _details(entry).get("digest") != event_digest(event):
            yield Problem(entry.seq, f"{subject} was edited after it was recorded")
        elif bool(event.invalid) != bool(mark.invalidated):
            yield Problem(entry.seq, f"{subject}: its validity was changed without an entry")
    for subject, mark in marks.items():
        if subject not in events and mark.recorded:
            yield Problem(mark.recorded[0].seq, f"{subject} was deleted")


def verify() -> Verification:
    """Walk the chain from the first entry; report where it first breaks."""
    a = models.AuditEntry
    rows = list(a.select().order_by(a.seq))
    problems = list(_chain_problems(rows))
    head = rows[-1].entry_hash if rows else GENESIS
    problems += _event_problems(rows, rows[-1].seq if rows else 0)
    problems.sort(key=lambda p: p.seq)
    return Verification(len(rows), head, problems)
