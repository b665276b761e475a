"""Retention: who is due for purging, the purge itself, and the rows an extract of the
event log needs.

A purge deletes what the school holds about a student who left (or whom upstream deleted)
longer ago than the retention period, and about guardians whose only children those were:
their journal rows, printed-extract records, slips and pages' bookkeeping; their logins are
revoked and their page keys wiped. Events and the audit chain stay: they are the legal
record of what families did, and they carry ids and logins, not names. Call the purge inside a write
transaction, with the audit entry that records it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from typing import Any

from otmetka.db import models
from otmetka.db.acts import utc_naive
from otmetka.db.audit import stamp
from otmetka.db.connection import chunks

PURGE_ACTION = "retention.purge"


# --- who is due ---------------------------------------------------------------------------------


def students_due(cutoff: dt.date) -> list[str]:
    """Students who left on or before `cutoff`, or were deleted upstream before it."""
    s = models.Student
    left = s.left_at.is_null(False) & (s.left_at <= cutoff)
    deleted = s.deleted_at.is_null(False) & (s.deleted_at < cutoff.isoformat())
    return sorted(str(row.id) for row in s.select(s.id).where(left | deleted))


def guardians_only_of(student_ids: Sequence[str]) -> list[str]:
    """Guardians every one of whose children (by any link, even a deleted one) is in
    `student_ids`: nothing of theirs is needed once those children are purged."""
    link = models.GuardianLink
    wanted = set(student_ids)
    candidates: set[str] = set()
    for chunk in chunks(wanted):
        query = link.select(link.guardian_id).where(link.student_id.in_(chunk))
        candidates.update(str(row.guardian_id) for row in query)
    keep: set[str] = set()
    for chunk in chunks(candidates):
        query = link.select(link.guardian_id, link.student_id).where(link.guardian_id.in_(chunk))
        keep.update(str(r.guardian_id) for r in query if str(r.student_id) not in wanted)
    return sorted(candidates - keep)


# --- what goes -----------------------------------------------------------------------------------


def _person_rows(kind: str, ids: Sequence[str]) -> list[tuple[type[models.BaseModel], Any]]:
    """(table, condition) pairs of the rows about these people outside the journal."""
    dirty, manifest, slip = models.DirtyPerson, models.BuildManifest, models.CredentialSlip
    return [
        (dirty, (dirty.person_kind == kind) & dirty.person_id.in_(ids)),
        (manifest, (manifest.person_kind == kind) & manifest.person_id.in_(ids)),
        (slip, (slip.person_kind == kind) & slip.person_id.in_(ids)),
    ]


def _student_rows(ids: list[str]) -> list[tuple[type[models.BaseModel], Any]]:
    m, a, ms, r = models.Mark, models.Attendance, models.Membership, models.Recommendation
    link, issue, change = models.GuardianLink, models.ExtractIssue, models.LocalChange
    return [
        (m, m.student_id.in_(ids)),
        (a, a.student_id.in_(ids)),
        (ms, ms.student_id.in_(ids)),
        (r, r.student_id.in_(ids)),
        (link, link.student_id.in_(ids)),
        (issue, issue.student_id.in_(ids)),
        (change, (change.entity == "student") & change.entity_id.in_(ids)),
        *_person_rows("student", ids),
        (models.Student, models.Student.id.in_(ids)),
    ]


def _guardian_rows(ids: list[str]) -> list[tuple[type[models.BaseModel], Any]]:
    link, mail, change = models.GuardianLink, models.GuardianMail, models.LocalChange
    return [
        (link, link.guardian_id.in_(ids)),
        (mail, mail.guardian_id.in_(ids)),
        (change, (change.entity == "guardian") & change.entity_id.in_(ids)),
        *_person_rows("guardian", ids),
        (models.Guardian, models.Guardian.id.in_(ids)),
    ]


def _plan(students: Sequence[str], guardians: Sequence[str]) -> list[tuple[str, Any, Any]]:
    """(label, table, condition) of everything a purge deletes, chunked for IN lists."""
    plan = []
    for chunk in chunks(students):
        plan += [(t._meta.table_name, t, cond) for t, cond in _student_rows(chunk)]
    for chunk in chunks(guardians):
        plan += [(t._meta.table_name, t, cond) for t, cond in _guardian_rows(chunk)]
    return plan


def _add(counts: dict[str, int], label: str, n: int) -> None:
    if n:
        counts[label] = counts.get(label, 0) + n


def count_due(students: Sequence[str], guardians: Sequence[str]) -> dict[str, int]:
    """What `purge` would delete, per table (a dry run)."""
    counts: dict[str, int] = {}
    for label, table, condition in _plan(students, guardians):
        _add(counts, label, table.select().where(condition).count())
    _add(counts, "homework", len(_individual_homework(students)[0]))
    _add(counts, "credential", len(_credentials_of(students, guardians)))
    return counts


def purge(students: Sequence[str], guardians: Sequence[str]) -> dict[str, int]:
    """Delete every row about these people (see the module doc); counts per table."""
    counts: dict[str, int] = {}
    gone, trimmed = _individual_homework(students)
    h = models.Homework
    for chunk in chunks(gone):
        _add(counts, "homework", h.delete().where(h.id.in_(chunk)).execute())
    for homework_id, remaining in trimmed.items():
        h.update(student_ids=json.dumps(remaining)).where(h.id == homework_id).execute()
    _add(counts, "credential", _purge_credentials(_credentials_of(students, guardians)))
    for label, table, condition in _plan(students, guardians):
        _add(counts, label, table.delete().where(condition).execute())
    return counts


def _individual_homework(students: Sequence[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Homework set for some of these students only (to delete), and homework naming them
    among others (to keep, without them)."""
    wanted = set(students)
    if not wanted:
        return [], {}
    h = models.Homework
    gone, trimmed = [], {}
    for row in h.select(h.id, h.student_ids).where(h.student_ids != "[]"):
        listed = [str(s) for s in json.loads(row.student_ids or "[]")]
        if not wanted.intersection(listed):
            continue
        remaining = [s for s in listed if s not in wanted]
        if remaining:
            trimmed[str(row.id)] = remaining
        else:
            gone.append(str(row.id))
    return gone, trimmed


def _credentials_of(students: Sequence[str], guardians: Sequence[str]) -> list[models.Credential]:
    c = models.Credential
    found: list[models.Credential] = []
    for kind, ids in (("student", students), ("guardian", guardians)):
        for chunk in chunks(ids):
            found.extend(c.select().where(c.person_kind == kind, c.person_id.in_(chunk)))
    return found


def _purge_credentials(credentials: list[models.Credential]) -> int:
    """Revoke the logins and wipe their page keys. The rows stay: events and audit entries
    name the login, and an extract of the log (`otmetka audit extract`) still finds the
    person behind it; what is left (login, ids, hashes) opens nothing."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for credential in credentials:
        credential.state = "revoked"
        credential.derived_key = b""
        credential.revoked_at = credential.revoked_at or now
        credential.save()
    return len(credentials)


def purge_sent_outbox(before: dt.datetime) -> int:
    """Sent mail and pushed events older than the period: their copies served their turn."""
    o = models.OutboxItem
    naive = utc_naive(before)
    return int(o.delete().where(o.done_at.is_null(False), o.done_at < naive).execute())


def count_sent_outbox(before: dt.datetime) -> int:
    o = models.OutboxItem
    naive = utc_naive(before)
    return int(o.select().where(o.done_at.is_null(False), o.done_at < naive).count())


def head_seq() -> int:
    """The number of the newest audit entry (0 when the chain is empty)."""
    a = models.AuditEntry
    last = a.select(a.seq).order_by(a.seq.desc()).first()
    return int(last.seq) if last else 0


# --- the extract of the event log ---------------------------------------------------------------


def credential_by_login(login: str) -> models.Credential | None:
    c = models.Credential
    return c.get_or_none(c.login == login)


def logins_of_person(person_kind: str, person_id: str) -> list[models.Credential]:
    """Every login this person ever had, oldest first."""
    c = models.Credential
    query = c.select().where(c.person_kind == person_kind, c.person_id == person_id)
    return list(query.order_by(c.issued_at, c.login))


def events_of(credential_ids: Sequence[int], guardian_id: str | None) -> list[models.Event]:
    """Acts made with these logins, and (for a guardian) acts registered for them on paper."""
    e = models.Event
    condition = e.credential.in_(list(credential_ids))
    if guardian_id is not None:
        condition = condition | (e.guardian_id == guardian_id)
    return list(e.select().where(condition).order_by(e.received_at, e.event_id))


def breach_ids_of(credential_ids: Sequence[int]) -> list[int]:
    b = models.BreachReport
    query = b.select(b.id).where(b.credential.in_(list(credential_ids)))
    return [int(row.id) for row in query]


def audit_entries_about(subjects: Iterable[str], person_id: str) -> list[models.AuditEntry]:
    """Entries whose subject is one of `subjects`, and purges that named this person."""
    a = models.AuditEntry
    found: dict[int, models.AuditEntry] = {}
    for chunk in chunks(subjects):
        for row in a.select().where(a.subject.in_(chunk)):
            found[int(row.seq)] = row
    for row in a.select().where(a.action == PURGE_ACTION):
        details = json.loads(row.details)
        if person_id in details.get("students", []) + details.get("guardians", []):
            found[int(row.seq)] = row
    return [found[seq] for seq in sorted(found)]


def person_name(person_kind: str, person_id: str) -> str:
    """The person's full name, or "" when purged (or never known)."""
    tables: dict[str, type[models.PersonModel]] = {
        "guardian": models.Guardian,
        "student": models.Student,
        "teacher": models.Teacher,
    }
    table = tables.get(person_kind)
    row = table.get_or_none(table.id == person_id) if table else None
    if row is None:
        return ""
    return " ".join(p for p in (row.last_name, row.first_name, row.middle_name) if p)


def entry_row(entry: models.AuditEntry) -> dict[str, Any]:
    """An audit entry as stored, with the text its hash covers."""
    return {
        "seq": int(entry.seq),
        "at": stamp(entry.at),
        "actor": entry.actor,
        "action": entry.action,
        "subject": entry.subject,
        "details": entry.details,
        "prev_hash": entry.prev_hash,
        "entry_hash": entry.entry_hash,
    }


def event_row(event: models.Event) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "kind": event.kind,
        "credential_id": event.credential_id,  # type: ignore[attr-defined]
        "guardian_id": event.guardian_id,
        "channel": event.channel,
        "payload": event.payload,
        "response": event.response,
        "occurred_at": stamp(event.occurred_at),
        "received_at": stamp(event.received_at),
        "invalid": bool(event.invalid),
        "invalid_reason": event.invalid_reason,
    }
