"""For `otmetka status`: teachers' corrections waiting for upstream, and every conflict."""

from __future__ import annotations

from otmetka.daemon.lists.settle import now_of_group, now_of_people
from otmetka.db import lists as stored
from otmetka.db import queries

FIELD_NAMES = {
    "last_name": "surname",
    "first_name": "first name",
    "middle_name": "patronymic",
    "birth_date": "birth date",
    "phone": "phone",
    "email": "e-mail",
    "delivery": "delivery",
}


def _field_name(change: stored.Change, subjects: dict[str, str]) -> str:
    if change.subject_id is not None:
        return f"group in {subjects.get(change.subject_id, change.subject_id)}"
    return FIELD_NAMES.get(change.field, change.field)


def _conflict_line(
    change: stored.Change, now: str, names: dict[str, str], subjects: dict[str, str]
) -> str:
    who = f"{change.entity} {names.get(change.entity_id, change.entity_id)} ({change.entity_id})"
    return (
        f"conflict: {who}, {_field_name(change, subjects)}: corrected to «{change.new_value}» on "
        f"{change.created_at:%Y-%m-%d}, but upstream has since changed it to «{now}»; upstream's "
        "value stands. Export the class list again (otmetka lists export --class …): leave the "
        "cell to accept it, or correct it again and import the list"
    )


def conflict_lines() -> list[str]:
    conflicts = stored.changes((stored.CONFLICT,))
    if not conflicts:
        return []
    now = now_of_people(conflicts)
    subjects = {s.id: s.name for s in queries.subjects()}
    names: dict[str, str] = {}
    for entity in (stored.STUDENT, stored.GUARDIAN):
        names |= stored.person_names(entity, [c.entity_id for c in conflicts if c.entity == entity])
    lines = []
    for change in conflicts:
        state = now.get(change.key) if change.subject_id is None else now_of_group(change)
        value = state.value if state and state.alive else "(deleted)"
        lines.append(_conflict_line(change, value, names, subjects))
    return lines


def status_lines() -> list[str]:
    """For `otmetka status`: corrections waiting for upstream, and every conflict."""
    counts = stored.state_counts()
    if not counts:
        return ["local corrections: none"]
    head = (
        f"local corrections: {counts.get(stored.PENDING, 0)} waiting for upstream, "
        f"{counts.get(stored.CONFIRMED, 0)} confirmed, {counts.get(stored.CONFLICT, 0)} conflicts"
    )
    return [head, *conflict_lines()]
