"""Queries over legally significant events (acknowledgements, consents, breach reports)."""

from __future__ import annotations

import json

from db import models

CONSENT_STATES = ("unknown", "granted", "refused", "withdrawn")


def consent_states() -> dict[str, str]:
    """Each guardian's current consent (the latest valid consent event); absent = unknown."""
    e = models.Event
    query = (
        e.select(e.guardian_id, e.payload)
        .where(e.kind == "consent", e.invalid == False, e.guardian_id.is_null(False))  # noqa: E712
        .order_by(e.guardian_id, e.occurred_at, e.received_at)
    )
    states: dict[str, str] = {}
    for row in query:
        states[str(row.guardian_id)] = json.loads(row.payload).get("decision", "unknown")
    return states
