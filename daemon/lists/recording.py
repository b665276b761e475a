"""Recording an edited class list: `otmetka lists import FILE`, or the file dropped into inbox/.

Once every cell of the file is right, each changed field is recorded as a correction
(replacing an open one of the same field), applied here at once (`corrections`) and queued
for upstream (`OutboxItem` kind "local_change"), all in one transaction. A field the file
shows at upstream's value settles a conflict the teacher accepted.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otmetka.daemon.acts.paper import staff_actor
from otmetka.daemon.core.config import Config
from otmetka.daemon.core.errors import OtmetkaError
from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.core.settings import mark_rules, today_in
from otmetka.daemon.lists.corrections import upstream_stamp, write_through
from otmetka.daemon.lists.layout import Snapshot
from otmetka.daemon.lists.reading import Reading, read_list
from otmetka.db import acts as events
from otmetka.db import lists as stored
from otmetka.db import write_transaction

log = logging.getLogger("otmetka.lists")


def _base(entity: str, entity_id: str, field_name: str, snap: Snapshot) -> str:
    """The upstream `updated_at` a correction is made against."""
    if field_name.startswith(stored.GROUP_FIELD):
        subject_id = field_name.removeprefix(stored.GROUP_FIELD)
        groups = list(snap.group_names.get(subject_id, {}))
        return upstream_stamp(stored.memberships_of([entity_id], groups))
    row = stored.rows(entity, [entity_id]).get(entity_id)
    return str(row["updated_at"]) if row else ""


def _outbox_payload(change: stored.Change, school_id: str, class_id: str) -> dict[str, Any]:
    payload = {
        "change_id": change.id,
        "school_id": school_id,
        "class_id": class_id,
        "entity": change.entity,
        "id": change.entity_id,
        "field": change.field,
        "value": change.new_value,
        "previous": change.old_value,
        "changed_at": change.created_at.replace(tzinfo=dt.UTC).isoformat(),
        "author": change.author,
    }
    if change.subject_id is not None:
        payload.update(field="group", subject_id=change.subject_id)
    return payload


@dataclass
class ListImportResult:
    origin: str
    class_name: str
    corrections: int = 0
    students: int = 0
    guardians: int = 0
    settled: int = 0  # conflicts settled by this file

    def summary(self) -> str:
        if not self.corrections and not self.settled:
            return f"{self.origin}: list of {self.class_name} checked, nothing changed"
        return (
            f"{self.origin}: list of {self.class_name}: {self.corrections} corrections recorded "
            f"({self.students} students, {self.guardians} guardians), applied here and queued "
            f"for upstream; {self.settled} conflicts settled"
        )


def _record(
    snap: Snapshot, reading: Reading, author: str, school_id: str
) -> tuple[list[stored.Change], int]:
    """New corrections (replacing open ones of the same fields) and their outbox items."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    open_ones = stored.open_changes_of([*reading.changed, *reading.kept])
    settled = [c.id for k, c in open_ones.items() if k in reading.kept and c.state == "conflict"]
    stored.set_state(settled, stored.RESOLVED)
    made = []
    for key, value in sorted(reading.changed.items()):
        entity, entity_id, field_name = key
        earlier = open_ones.get(key)
        upstream_value = snap.values(entity)[entity_id][field_name]
        base = _base(entity, entity_id, field_name, snap)
        if earlier is not None:
            stored.set_state(
                [earlier.id], stored.SUPERSEDED if earlier.state == "pending" else stored.RESOLVED
            )
            if earlier.state == "pending":  # the table holds our value; upstream's is older
                upstream_value, base = earlier.old_value, earlier.base_updated_at
        change = stored.add_change(
            entity=entity,
            entity_id=entity_id,
            field=field_name,
            old_value=upstream_value,
            new_value=value,
            base_updated_at=base,
            author=author,
            at=now,
        )
        payload = _outbox_payload(change, school_id, snap.class_row.id)
        events.queue_outbox("local_change", f"local-change-{uuid.uuid4().hex}", payload, now)
        made.append(change)
    return made, len(settled)


def apply_list(
    path: Path, rules: MarkRules, *, today: dt.date, author: str, school_id: str
) -> ListImportResult:
    """Check the file and, if every cell is right, record, apply and queue its corrections,
    all in one transaction. Raises ListError (naming each wrong cell) with nothing applied."""
    snap, reading = read_list(path, today)
    result = ListImportResult(path.name, snap.class_row.name)
    with write_transaction():
        made, result.settled = _record(snap, reading, author, school_id)
        touched = {(c.entity, c.entity_id) for c in made}
        pending = [c for c in stored.changes() if (c.entity, c.entity_id) in touched]
        write_through(pending, rules, path.name)
    result.corrections = len(made)
    result.students = len({c.entity_id for c in made if c.entity == stored.STUDENT})
    result.guardians = len({c.entity_id for c in made if c.entity == stored.GUARDIAN})
    log.info("%s", result.summary())
    return result


def _author(origin: str) -> str:
    return f"{staff_actor()} ({origin})"


def import_list(config: Config, path: Path) -> ListImportResult:
    """`otmetka lists import FILE`."""
    if not path.is_file():
        raise OtmetkaError(f"{path}: no such file; give the path of the edited list (.xlsx)")
    return apply_list(
        path,
        mark_rules(config),
        today=today_in(config),
        author=_author(path.name),
        school_id=config.school.school_id,
    )


def import_for_inbox(config: Config, path: Path, rules: MarkRules) -> tuple[int, list[str]]:
    """A list dropped into inbox/: (records changed, summary lines) for the inbox watcher."""
    result = apply_list(
        path,
        rules,
        today=today_in(config),
        author=f"inbox ({path.name})",
        school_id=config.school.school_id,
    )
    return result.corrections + result.settled, [result.summary()]
