"""Queries over legally significant events (acknowledgements, consents, breach reports),
the breach register and the outbox rows queued next to them.

Times are stored as naive UTC datetimes (see `otmetka.db.audit.stamp`). Consent is never stored as
a state: it is folded from the history of valid consent events, so invalidating one event
(made with a leaked login) gives back the state the family really chose.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import peewee as pw

from otmetka.db import models
from otmetka.db.audit import stamp
from otmetka.db.connection import database, is_sqlite

CONSENT_STATES = ("unknown", "granted", "refused", "withdrawn")
DECISIONS = ("granted", "refused", "withdrawn")
ON_PAPER = ("refused", "withdrawn")


def utc_naive(moment: dt.datetime) -> dt.datetime:
    """How every time in these tables is stored."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


# --- events ----------------------------------------------------------------------------------


def _sql(text: str) -> str:
    """Statements on the hot path of an act are written out once: building them with
    peewee costs more than running them. `?` becomes the driver's placeholder."""
    return text if is_sqlite() else text.replace("?", "%s")


_FIND = 'SELECT * FROM "event" WHERE "event_id" = ?'
_ADD = (
    'INSERT INTO "event" ("event_id", "kind", "credential_id", "guardian_id", "channel", '
    '"payload", "response", "occurred_at", "received_at", "invalid", "invalid_reason") '
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '') RETURNING \"id\""
)


def find(event_id: str) -> models.Event | None:
    found = list(models.Event.raw(_sql(_FIND), event_id))
    return found[0] if found else None


def add(
    *,
    event_id: str,
    kind: str,
    credential_id: int | None,
    guardian_id: str | None,
    channel: str,
    payload: str,
    response: str,
    occurred_at: dt.datetime,
    received_at: dt.datetime,
) -> models.Event:
    occurred, received = utc_naive(occurred_at), utc_naive(received_at)
    params = (
        event_id,
        kind,
        credential_id,
        guardian_id,
        channel,
        payload,
        response,
        stamp(occurred),
        stamp(received),
        False,
    )
    (row_id,) = database.execute_sql(_sql(_ADD), params).fetchone()
    return models.Event(
        id=row_id,
        event_id=event_id,
        kind=kind,
        credential=credential_id,
        guardian_id=guardian_id,
        channel=channel,
        payload=payload,
        response=response,
        occurred_at=occurred,
        received_at=received,
        invalid=False,
        invalid_reason="",
    )


def made_after(credential_id: int, moment: dt.datetime) -> list[models.Event]:
    """Still-valid events of a credential received, or claiming to be made, after `moment`."""
    e, at = models.Event, utc_naive(moment)
    query = e.select().where(
        e.credential == credential_id,
        e.invalid == False,  # noqa: E712
        (e.received_at > at) | (e.occurred_at > at),
    )
    return list(query.order_by(e.received_at, e.event_id))


def mark_invalid(event: models.Event, reason: str) -> None:
    event.invalid = True
    event.invalid_reason = reason
    event.save()


def acknowledgements(guardian_id: str) -> list[models.Event]:
    e = models.Event
    query = e.select().where(e.kind == "acknowledgement", e.guardian_id == guardian_id)
    return list(query.order_by(e.occurred_at, e.received_at))


@dataclass(frozen=True)
class LastAcknowledgement:
    """A guardian's latest valid acknowledgement, as the next page version shows it."""

    occurred_at: dt.datetime  # naive UTC
    channel: str
    week_start: dt.date | None  # the week the page showed; None on paper
    week_end: dt.date | None


def last_acknowledgements(guardian_ids: Iterable[str] | None) -> dict[str, LastAcknowledgement]:
    """Guardian -> latest valid acknowledgement, in one statement (None: every guardian)."""
    e = models.Event
    valid = (e.kind == "acknowledgement") & (e.invalid == False)  # noqa: E712
    if guardian_ids is not None:
        valid &= e.guardian_id.in_(sorted(set(guardian_ids)))
    newest = (
        e.select(e.guardian_id.alias("gid"), pw.fn.MAX(e.occurred_at).alias("at"))
        .where(valid)
        .group_by(e.guardian_id)
        .alias("newest")
    )
    on = (e.guardian_id == newest.c.gid) & (e.occurred_at == newest.c.at)
    rows = e.select(e.guardian_id, e.occurred_at, e.channel, e.payload).join(newest, on=on)
    found: dict[str, LastAcknowledgement] = {}
    for row in rows.where(valid).order_by(e.received_at, e.event_id):
        found[str(row.guardian_id)] = _last_acknowledgement(row)
    return found


def _last_acknowledgement(row: models.Event) -> LastAcknowledgement:
    shown = json.loads(row.payload).get("shown") or {}
    start, end = shown.get("week_start"), shown.get("week_end")
    return LastAcknowledgement(
        occurred_at=stored_time(row.occurred_at),
        channel=str(row.channel),
        week_start=dt.date.fromisoformat(start) if isinstance(start, str) else None,
        week_end=dt.date.fromisoformat(end) if isinstance(end, str) else None,
    )


# --- consent ---------------------------------------------------------------------------------


def next_state(state: str, decision: str) -> str:
    """A refusal after consent was granted is a withdrawal; before it, a refusal."""
    if decision == "granted":
        return "granted"
    return "withdrawn" if state == "granted" else "refused"


@dataclass(frozen=True)
class ConsentStep:
    event_id: str
    state: str
    decision: str
    channel: str
    text_version: str
    occurred_at: dt.datetime
    invalid: bool


def _consent_rows(guardian_ids: list[str] | None) -> pw.ModelSelect[Any]:
    e = models.Event
    query = e.select(
        e.event_id,
        e.guardian_id,
        e.payload,
        e.channel,
        e.occurred_at,
        e.invalid,
    ).where(e.kind == "consent", e.guardian_id.is_null(False))
    if guardian_ids is not None:
        query = query.where(e.guardian_id.in_(guardian_ids))
    return query.order_by(e.guardian_id, e.occurred_at, e.received_at, e.event_id)


def consent_history(guardian_ids: list[str] | None = None) -> dict[str, list[ConsentStep]]:
    """Every consent event per guardian, oldest first, with the state it led to.

    Invalid events are listed (marked) but do not change the state.
    """
    history: dict[str, list[ConsentStep]] = {}
    state: dict[str, str] = {}
    for row in _consent_rows(guardian_ids):
        gid = str(row.guardian_id)
        body = json.loads(row.payload)
        decision = str(body.get("decision", ""))
        current = state.get(gid, "unknown")
        if not row.invalid and decision in DECISIONS:
            current = state[gid] = next_state(current, decision)
        step = ConsentStep(
            row.event_id,
            current,
            decision,
            row.channel,
            str(body.get("text_version", "")),
            row.occurred_at,
            bool(row.invalid),
        )
        history.setdefault(gid, []).append(step)
    return history


def consent_states() -> dict[str, str]:
    """Each guardian's current consent (folded from valid consent events); absent = unknown."""
    return {gid: last_state(steps) for gid, steps in consent_history().items()}


def last_state(steps: list[ConsentStep]) -> str:
    valid = [s for s in steps if not s.invalid]
    return valid[-1].state if valid else "unknown"


def consent_counts() -> dict[str, int]:
    """How many guardians (with a child on roll or not) are in each consent state."""
    states = consent_states()
    g = models.Guardian
    everyone = g.select().where(g.deleted_at.is_null()).count()
    counts = {state: sum(1 for s in states.values() if s == state) for state in CONSENT_STATES}
    counts["unknown"] = everyone - sum(counts[s] for s in CONSENT_STATES if s != "unknown")
    return counts


_CONSENTS_OF = (
    'SELECT "payload", "invalid", "occurred_at" FROM "event" '
    'WHERE "kind" = \'consent\' AND "guardian_id" = ? '
    'ORDER BY "occurred_at", "received_at", "event_id"'
)


def consent_state(guardian_id: str) -> str:
    """One guardian's current consent: the same fold as `consent_history`, in one query."""
    return consent_since(guardian_id)[0]


def consent_since(guardian_id: str) -> tuple[str, dt.datetime | None]:
    """One guardian's current consent and when the family made that choice (naive UTC; a
    repeated grant does not move it); None while the state is unknown."""
    state, since = "unknown", None
    for payload, invalid, occurred in database.execute_sql(_sql(_CONSENTS_OF), (guardian_id,)):
        decision = str(json.loads(payload).get("decision", ""))
        if invalid or decision not in DECISIONS:
            continue
        after = next_state(state, decision)
        if after != state:
            state, since = after, stored_time(occurred)
    return state, since


def stored_time(value: object) -> dt.datetime:
    """A time read back with raw SQL (SQLite gives text), as naive UTC."""
    if isinstance(value, dt.datetime):
        return utc_naive(value)
    return utc_naive(dt.datetime.fromisoformat(str(value)))


# --- families ----------------------------------------------------------------------------------


def _active_student(today: dt.date) -> pw.Expression:
    s = models.Student
    return s.deleted_at.is_null() & (s.left_at.is_null() | (s.left_at > today.isoformat()))


_CHILDREN_OF = (
    'SELECT l."student_id", l."is_legal_representative" FROM "guardian_link" AS l '
    'JOIN "student" AS s ON s."id" = l."student_id" '
    'WHERE l."guardian_id" = ? AND l."deleted_at" IS NULL AND s."deleted_at" IS NULL '
    'AND (s."left_at" IS NULL OR s."left_at" > ?) ORDER BY l."student_id"'
)


def children_of(guardian_id: str, today: dt.date) -> list[tuple[str, bool]]:
    """(student id, link is a legal representative) of the guardian's children on roll."""
    found: dict[str, bool] = {}
    rows = database.execute_sql(_sql(_CHILDREN_OF), (guardian_id, today.isoformat()))
    for student_id, legal in rows:
        found[str(student_id)] = found.get(str(student_id), False) or bool(legal)
    return sorted(found.items())


def guardian(guardian_id: str) -> models.Guardian | None:
    g = models.Guardian
    return g.get_or_none(g.id == guardian_id, g.deleted_at.is_null())


def students_of_refusing_families(guardian_ids: Iterable[str]) -> set[str]:
    """Children of whom one of these guardians is a legal representative."""
    link = models.GuardianLink
    wanted = sorted(set(guardian_ids))
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        query = link.select(link.student_id).where(
            link.guardian_id.in_(wanted[start : start + 500]),
            link.deleted_at.is_null(),
            link.is_legal_representative == True,  # noqa: E712
        )
        found.update(str(row.student_id) for row in query)
    return found


@dataclass
class PaperFamily:
    """A guardian who gets paper instead of a page, and why."""

    guardian_id: str
    name: str
    reason: str  # refused / withdrawn / paper delivery
    since: dt.datetime | None
    children: list[tuple[str, str, str]] = field(default_factory=list)  # id, name, class


def _full_name(row: Any) -> str:
    return " ".join(p for p in (row.last_name, row.first_name, row.middle_name) if p)


def _children_labels(guardian_ids: list[str], today: dt.date) -> dict[str, list[tuple[str, ...]]]:
    link, s, c = models.GuardianLink, models.Student, models.ClassUnit
    query = (
        link.select(link.guardian_id, s.id, s.last_name, s.first_name, s.middle_name, c.name)
        .join(s, on=(s.id == link.student_id))
        .join(c, pw.JOIN.LEFT_OUTER, on=(c.id == s.class_unit_id))
        .where(link.guardian_id.in_(guardian_ids), link.deleted_at.is_null())
        .where(_active_student(today))
        .order_by(s.last_name, s.first_name, s.id)
    )
    found: dict[str, list[tuple[str, ...]]] = {}
    for gid, sid, last, first, middle, class_name in database.execute(query).fetchall():
        name = " ".join(p for p in (last, first, middle) if p)
        found.setdefault(str(gid), []).append((str(sid), name, str(class_name or "")))
    return found


def paper_list(today: dt.date) -> list[PaperFamily]:
    """Families to serve on paper: consent refused or withdrawn, or upstream says paper.

    Only guardians with a child on roll are listed; sorted by name.
    """
    history = consent_history()
    refusing = {gid: steps for gid, steps in history.items() if last_state(steps) in ON_PAPER}
    g = models.Guardian
    paper = g.select().where(g.deleted_at.is_null(), g.delivery != "electronic")
    people = {row.id: row for row in paper}
    people.update({row.id: row for row in g.select().where(g.id.in_(list(refusing)))})
    labels = _children_labels(sorted(people), today)
    families = []
    for gid, row in people.items():
        if gid not in labels:
            continue
        steps = refusing.get(gid)
        valid = [s for s in steps if not s.invalid] if steps else []
        reason = valid[-1].state if valid else "paper delivery"
        since = valid[-1].occurred_at if valid else None
        families.append(PaperFamily(gid, _full_name(row), reason, since, list(labels[gid])))  # type: ignore[arg-type]
    return sorted(families, key=lambda f: (f.name, f.guardian_id))


def guardian_names(guardian_ids: Iterable[str]) -> dict[str, str]:
    g = models.Guardian
    wanted = sorted(set(guardian_ids))
    names: dict[str, str] = {}
    for start in range(0, len(wanted), 500):
        for row in g.select().where(g.id.in_(wanted[start : start + 500])):
            names[row.id] = _full_name(row)
    return names


# --- credentials -------------------------------------------------------------------------------


def credential_by_token_hash(token_hash: str) -> models.Credential | None:
    query = 'SELECT * FROM "credential" WHERE "token_hash" = ?'
    found = list(models.Credential.raw(_sql(query), token_hash))
    return found[0] if found else None


def credential_by_login(login: str) -> models.Credential | None:
    c = models.Credential
    return c.get_or_none(c.login == login)


def active_credential(person_kind: str, person_id: str) -> models.Credential | None:
    c = models.Credential
    return c.get_or_none(
        c.person_kind == person_kind, c.person_id == person_id, c.state == "active"
    )


def forget_page(page_id: str) -> None:
    m = models.BuildManifest
    m.delete().where(m.page_id == page_id).execute()


def mark_dirty(person_kind: str, person_id: str) -> None:
    d = models.DirtyPerson
    d.insert(person_kind=person_kind, person_id=person_id).on_conflict_ignore().execute()


# --- breach reports ----------------------------------------------------------------------------


def add_breach(
    *,
    event: models.Event,
    credential: models.Credential,
    received_at: dt.datetime,
    deadline: dt.datetime,
    new_login: str,
    notified: list[str],
) -> models.BreachReport:
    return models.BreachReport.create(
        event=event,
        credential=credential,
        received_at=utc_naive(received_at),
        deadline=utc_naive(deadline),
        new_login=new_login,
        notified=json.dumps(notified),
    )


def breach_of_event(event: models.Event) -> models.BreachReport | None:
    b = models.BreachReport
    return b.get_or_none(b.event == event)


def breaches(include_closed: bool = False) -> list[models.BreachReport]:
    b = models.BreachReport
    query = b.select(b, models.Credential).join(models.Credential)
    if not include_closed:
        query = query.where(b.state == "open")
    return list(query.order_by(b.received_at, b.id))


def breaches_of(credential_id: int) -> list[models.BreachReport]:
    b = models.BreachReport
    return list(b.select().where(b.credential == credential_id).order_by(b.id))


def breach_by_id(report_id: int) -> models.BreachReport | None:
    return models.BreachReport.get_or_none(models.BreachReport.id == report_id)


def close_breach(report: models.BreachReport, at: dt.datetime, note: str) -> None:
    report.state = "closed"
    report.closed_at = utc_naive(at)
    report.closed_note = note
    report.save()


def blocked_page_ids() -> set[str]:
    """Pages replaced by «доступ заблокирован»: their logins were reported leaked."""
    b, c = models.BreachReport, models.Credential
    query = c.select(c.page_id).join(b).distinct()
    return {str(row.page_id) for row in query}


# --- outbox ------------------------------------------------------------------------------------


_QUEUE = (
    'INSERT INTO "outbox_item" ("kind", "key", "payload", "attempts", "next_try", '
    '"last_error", "created_at") VALUES (?, ?, ?, 0, ?, \'\', ?) ON CONFLICT DO NOTHING'
)


def queue_outbox(kind: str, key: str, payload: dict[str, Any], at: dt.datetime) -> None:
    """One outbox row, in the caller's transaction; a key queued before is left as it is."""
    text = json.dumps(payload, ensure_ascii=False, sort_keys=True)
    moment = stamp(utc_naive(at))
    database.execute_sql(_sql(_QUEUE), (kind, key, text, moment, moment))


# --- the operator ------------------------------------------------------------------------------


def operator() -> tuple[str, str, str]:
    """(full name, address, short name) of the school: the operator the consent names."""
    s = models.School
    row = s.select().where(s.deleted_at.is_null()).order_by(s.id).first()
    if row is None:
        return "", "", ""
    return row.name, row.address, row.short_name or row.name
