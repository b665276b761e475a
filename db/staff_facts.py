"""What the staff pages read besides the journal: the parents' phone numbers for the class
teacher's table, and which deputy heads' pages are older than the last act they show."""

from __future__ import annotations

import peewee as pw

from otmetka.db import models
from otmetka.db.connection import database

DEPUTY_ROLE = '"deputy_head"'


def guardian_phones() -> dict[str, str]:
    """Guardian id -> phone number as the journal gives it, for everyone who has one: one
    statement whatever the size of the school (the staff pages look them up by id)."""
    g = models.Guardian
    query = g.select(g.id, g.phone).where(g.deleted_at.is_null(), g.phone != "")
    found = {str(row[0]): str(row[1]).strip() for row in database.execute(query)}
    return {gid: phone for gid, phone in found.items() if phone}


def deputies_behind_acts() -> set[str]:
    """Deputy heads whose page was built before the latest act (consent, acknowledgement,
    breach report) was received: their page counts every class's consents and lists the
    breaches, so any act changes it. The class teachers' pages follow the act through the
    dirty set (the act marks its guardian in its own transaction)."""
    b, t, e = models.BuildManifest, models.Teacher, models.Event
    latest = e.select(pw.fn.MAX(e.received_at))
    query = (
        b.select(b.person_id)
        .join(t, on=(t.id == b.person_id))
        .where(b.person_kind == "teacher", t.deleted_at.is_null(), t.roles.contains(DEPUTY_ROLE))
        .group_by(b.person_id)
        .having(pw.fn.MAX(b.built_at) < latest)  # a rotated login's old row waits for removal
    )
    return {str(row[0]) for row in database.execute(query).fetchall()}
