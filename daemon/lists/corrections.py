"""Applying teachers' corrections on top of upstream data.

A correction goes through the importer, the only writer of journal tables, as a batch of
source "local" that rewrites the changed rows with the teacher's values and the row's own
upstream `updated_at`. So every page, extract and letter sees the correction at once, and
any later row from upstream (same or newer `updated_at`) still wins in the table; `settle`
then decides, after every upstream batch, whether the correction still has to be applied.

A group change ends the student's membership of the other groups of that subject the day
before the correction (or removes it when it had not started yet) and adds a membership of
the new group from that day; before the school year starts, from the first day of the year.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.exchange import importer, schema
from otmetka.daemon.lists.layout import membership_day
from otmetka.db import journal
from otmetka.db import lists as stored

SOURCE = "local"


def _exchange_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date) else value


def exchange_data(entity: str, row: dict[str, Any]) -> dict[str, Any]:
    """A journal row as the `data` of an exchange change of `entity`."""
    model = schema.ENTITY_MODELS[entity]
    return {
        (info.alias or name): _exchange_value(row[name])
        for name, info in model.model_fields.items()
    }


def _stored_value(field_name: str, value: str) -> Any:
    if field_name == "birth_date":
        return dt.date.fromisoformat(value) if value else None
    return value


def _person_changes(pending: Sequence[stored.Change]) -> list[dict[str, Any]]:
    """Upserts of student and guardian rows with every pending correction laid over them,
    under the row's own `updated_at` (a later upstream row still wins)."""
    fields: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    for change in pending:
        if change.subject_id is None:
            fields[(change.entity, change.entity_id)][change.field] = change.new_value
    out = []
    for entity in (stored.STUDENT, stored.GUARDIAN):
        ids = [pid for kind, pid in fields if kind == entity]
        for pid, row in sorted(stored.rows(entity, ids).items()):
            if row["deleted_at"]:
                continue  # upstream deleted it: settle_after_import reports the conflict
            merged = dict(row)
            for name, value in fields[(entity, pid)].items():
                merged[name] = _stored_value(name, value)
            data = exchange_data(entity, merged)
            out.append(_upsert(entity, pid, row["updated_at"], data))
    return out


def _upsert(entity: str, record_id: str, updated_at: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": entity, "id": record_id, "op": "upsert", "updated_at": updated_at, "data": data}


def change_day(change: stored.Change, year_start: dt.date | None) -> dt.date:
    """The day a group change takes effect: the day it was made, or the year's first day."""
    return membership_day(change.created_at.date(), year_start)


def _membership_changes(change: stored.Change) -> list[dict[str, Any]]:
    """End the student's memberships of the subject's other groups, and join the new one."""
    subject_id = change.subject_id or ""
    student_id = change.entity_id
    class_id = stored.class_of_students([student_id]).get(student_id, "")
    groups = stored.groups_of_subjects([subject_id], class_id).get(subject_id, [])
    day = change_day(change, stored.year_start_of_class(class_id))
    rows = [r for r in stored.memberships_of([student_id], groups) if not r.deleted]
    out: list[dict[str, Any]] = []
    holds_new = False
    for row in rows:
        current = row.date_from <= day and (row.date_to is None or day <= row.date_to)
        if row.group_id == change.new_value:
            holds_new = holds_new or current
        elif current or row.date_from > day:
            out.append(_leave(row, day))
    if change.new_value and not holds_new:
        record_id = f"{stored.LOCAL_ID_PREFIX}{uuid.uuid5(uuid.NAMESPACE_URL, f'{change.id}')}"
        data = {"group_id": change.new_value, "student_id": student_id, "from": day.isoformat()}
        out.append(_upsert("membership", record_id, _stamp(change), data))
    return out


def _leave(row: stored.MembershipFull, day: dt.date) -> dict[str, Any]:
    if row.date_from >= day:  # had not started: it goes
        return {"type": "membership", "id": row.id, "op": "delete", "updated_at": row.updated_at}
    data = {
        "group_id": row.group_id,
        "student_id": row.student_id,
        "from": row.date_from.isoformat(),
        "to": (day - dt.timedelta(days=1)).isoformat(),
    }
    return _upsert("membership", row.id, row.updated_at, data)


def _stamp(change: stored.Change) -> str:
    return change.base_updated_at or change.created_at.replace(tzinfo=dt.UTC).isoformat()


def write_through(pending: Sequence[stored.Change], rules: MarkRules, origin: str) -> int:
    """Apply corrections to the journal tables through the importer (source "local")."""
    records = _person_changes(pending)
    for change in pending:
        if change.subject_id is not None:
            records += _membership_changes(change)
    if not records:
        return 0
    schools = sorted(journal.school_ids_seen())
    now = dt.datetime.now(dt.UTC)
    document = {
        "format": schema.FORMAT_NAME,
        "version": schema.FORMAT_VERSION,
        "school_id": schools[0] if schools else "local",
        "tz": "UTC",
        "mode": "delta",
        "cursor": f"local-{now:%Y%m%dT%H%M%S.%f}",
        "generated_at": now.isoformat(),
        "changes": records,
    }
    return importer.import_document(document, origin, rules, source=SOURCE).records


def upstream_stamp(rows: Iterable[stored.MembershipFull]) -> str:
    stamps = [r.updated_at for r in rows if not r.id.startswith(stored.LOCAL_ID_PREFIX)]
    return max(stamps, default="")
