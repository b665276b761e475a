"""After every upstream batch: each pending correction compared with what upstream now says.

The importer calls `settle_after_import` inside each batch's transaction, after the batch
is applied:

- upstream sends the corrected value with a newer `updated_at`: confirmed, done;
- upstream resent the row, or changed other fields of it, but still has the old value of
  this one: the correction is applied again (in the same transaction as the batch);
- upstream changed this very field to a third value: a conflict. Upstream's value stands,
  the correction is kept, and `otmetka status` reports it until a later list import of the
  class settles it (a new correction, or the cell left at upstream's value).
"""

from __future__ import annotations

import contextvars
import dataclasses
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.exchange.reader import BatchError
from otmetka.daemon.lists.corrections import change_day, upstream_stamp, write_through
from otmetka.db import lists as stored
from otmetka.db import row_types

log = logging.getLogger("otmetka.lists")


@dataclass(frozen=True)
class Now:
    """What the journal holds now for a corrected field."""

    value: str
    updated_at: str
    alive: bool


def now_of_people(pending: Sequence[stored.Change]) -> dict[tuple[str, str, str], Now]:
    found = {}
    for entity in (stored.STUDENT, stored.GUARDIAN):
        wanted = [c for c in pending if c.entity == entity and c.subject_id is None]
        rows = stored.rows(entity, {c.entity_id for c in wanted})
        for change in wanted:
            row = rows.get(change.entity_id)
            if row is None:
                found[change.key] = Now("", "", False)
            else:
                value = stored.text(row[change.field])
                found[change.key] = Now(value, str(row["updated_at"]), not row["deleted_at"])
    return found


def now_of_group(change: stored.Change) -> Now:
    subject_id = change.subject_id or ""
    class_id = stored.class_of_students([change.entity_id]).get(change.entity_id)
    if class_id is None:
        return Now("", "", False)
    groups = stored.groups_of_subjects([subject_id], class_id).get(subject_id, [])
    rows = stored.memberships_of([change.entity_id], groups)
    day = change_day(change, stored.year_start_of_class(class_id))
    live = [
        row_types.MembershipRow(r.group_id, r.student_id, r.date_from, r.date_to)
        for r in rows
        if not r.deleted
    ]
    return Now(stored.group_ids_on(live, groups, day), upstream_stamp(rows), True)


def _verdict(change: stored.Change, now: Now) -> str:
    """confirmed / keep / reapply / conflict (see the module's docstring)."""
    if not now.alive:
        return "conflict"
    newer = now.updated_at > change.base_updated_at
    if now.value == change.new_value:
        return "confirmed" if newer else "keep"
    if not newer or now.value == change.old_value:
        return "reapply"
    return "conflict"


_SETTLING: contextvars.ContextVar[bool] = contextvars.ContextVar("settling", default=False)


def settle_after_import(rules: MarkRules) -> None:
    """Called by the importer inside each batch's transaction, after the batch is applied:
    settle every pending correction against what upstream now says. Not for the batch it
    writes itself to apply corrections again (that would recurse)."""
    if _SETTLING.get():
        return
    token = _SETTLING.set(True)
    try:
        _settle(rules)
    finally:
        _SETTLING.reset(token)


def _now_of(change: stored.Change, people: dict[tuple[str, str, str], Now]) -> Now:
    return people[change.key] if change.subject_id is None else now_of_group(change)


def _settle(rules: MarkRules) -> None:
    pending = stored.changes()
    if not pending:
        return
    people = now_of_people(pending)
    verdicts: dict[str, list[stored.Change]] = defaultdict(list)
    for change in pending:
        state = _now_of(change, people)
        verdict = _verdict(change, state)
        if verdict == "reapply" and state.updated_at > change.base_updated_at:
            stored.set_base(change.id, state.updated_at)
            change = dataclasses.replace(change, base_updated_at=state.updated_at)
        verdicts[verdict].append(change)
    stored.set_state([c.id for c in verdicts["confirmed"]], stored.CONFIRMED)
    stored.set_state([c.id for c in verdicts["conflict"]], stored.CONFLICT)
    if verdicts["reapply"]:
        _apply_again(verdicts["reapply"], rules)


def _apply_again(changes: list[stored.Change], rules: MarkRules) -> None:
    """Re-apply over the rows the batch just wrote, in the same transaction, so no build
    ever sees the correction undone. A correction that cannot hold any more (its row or
    group is gone upstream) becomes a conflict, and the batch is imported all the same."""
    keys = {(c.entity, c.entity_id) for c in changes}
    still = [c for c in stored.changes() if (c.entity, c.entity_id) in keys]
    try:
        write_through(still, rules, "local corrections (applied again)")
    except BatchError as error:
        log.warning("local corrections could not be applied again: %s", error)
        stored.set_state([c.id for c in changes], stored.CONFLICT)
        return
    people = now_of_people(changes)
    lost = [c.id for c in changes if _now_of(c, people).value != c.new_value]
    stored.set_state(lost, stored.CONFLICT)
