"""The importer: the only writer of journal tables.

A batch is read and validated whole (daemon.batch), its references are checked against the
batch and the database, and then it is applied in one transaction together with the cursor,
the import log and the set of people whose pages must be rebuilt. Any problem rejects the
whole batch, so the database never holds half a file.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from daemon import batch as batches
from daemon.batch import Batch, BatchError, RawBatch
from daemon.marks import MarkRules
from db import journal, write_transaction

log = logging.getLogger("otmetka.importer")

Progress = Callable[[int], None]

# Entities whose change touches every page (the school calendar, the bell, vocabularies).
_GLOBAL = {
    "school",
    "academic_year",
    "period",
    "holiday",
    "subject",
    "bell_slot",
    "work_kind",
    "attendance_code",
}
_STUDENT_FIELDS = ("student_id",)
_GROUP_ENTITIES = {"lesson", "work", "homework", "timetable_entry"}


@dataclass
class ImportResult:
    origin: str
    mode: str
    cursor: str
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    dirty_people: int = 0
    already_imported: bool = False

    @property
    def records(self) -> int:
        return sum(c["upserted"] + c["deleted"] for c in self.counts.values())

    def summary(self) -> str:
        if self.already_imported:
            return f"{self.origin}: already imported, nothing changed"
        parts = ", ".join(
            f"{name} {c['upserted'] + c['deleted']}"
            for name, c in self.counts.items()
            if any(c.values())
        )
        return (
            f"{self.origin}: imported {self.records} records ({parts}); "
            f"{self.dirty_people} pages to rebuild"
        )


# --- references --------------------------------------------------------------------------


def _batch_ids(grouped: dict[str, list[tuple[int, Any]]]) -> dict[str, set[str]]:
    return {
        entity: {change.id for _, change in items if change.op == "upsert"}
        for entity, items in grouped.items()
    }


def _check_references(batch: Batch, grouped: dict[str, list[tuple[int, Any]]]) -> list[str]:
    in_batch = _batch_ids(grouped)
    wanted: dict[str, set[str]] = defaultdict(set)
    uses: list[tuple[int, Any, str, str, str]] = []
    for entity, field_name, target in batches.sorted_references():
        for index, change in grouped.get(entity, []):
            if change.op != "upsert":
                continue
            for ref in batches.reference_values(change, field_name):
                if ref not in in_batch[target]:
                    wanted[target].add(ref)
                    uses.append((index, change, field_name, target, ref))
    known = {target: journal.existing_ids(target, ids) for target, ids in wanted.items()}
    return [
        f"{batch.origin}: record {index} (id '{change.id}', type '{change.type}'): field "
        f"'{field_name}': refers to {target} '{ref}', which is neither in this file nor already "
        f"imported; send the {target} first or correct the id"
        for index, change, field_name, target, ref in uses
        if ref not in known[target]
    ]


def _check_school(batch: Batch) -> list[str]:
    others = journal.school_ids_seen() - {batch.header.school_id}
    if not others:
        return []
    return [
        f"{batch.origin}: envelope: field 'school_id' is '{batch.header.school_id}' but this "
        f"database holds school '{sorted(others)[0]}'; use the right file or a separate database"
    ]


# --- rows ---------------------------------------------------------------------------------


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    row: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            row.update(_flatten(value, f"{prefix}{key}_"))
        else:
            row[f"{prefix}{key}"] = value
    return row


def _utc_text(moment: dt.datetime, tz: ZoneInfo) -> str:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=tz)
    return aware.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _row(batch: Batch, index: int, change: Any, tz: ZoneInfo) -> dict[str, Any]:
    row = _flatten(change.data.model_dump())
    row["id"] = change.id
    row["updated_at"] = _utc_text(change.updated_at, tz)
    if change.type == "mark":
        values = batch.mark_values[index]
        row.update(value=values.value, value2=values.value2, passed=values.passed)
    return row


def _unique_rows(batch: Batch, items: list[tuple[int, Any]], tz: ZoneInfo) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for index, change in items:
        if change.op == "upsert":
            rows[change.id] = _row(batch, index, change, tz)
    return list(rows.values())


# --- dirty set ------------------------------------------------------------------------------


@dataclass
class _Affected:
    students: set[str] = field(default_factory=set)
    groups: set[str] = field(default_factory=set)
    classes: set[str] = field(default_factory=set)
    guardians: set[str] = field(default_factory=set)
    teachers: set[str] = field(default_factory=set)
    everyone: bool = False


def _note_affected(affected: _Affected, entity: str, row: dict[str, Any]) -> None:
    if entity in _GLOBAL:
        affected.everyone = True
    elif entity == "student":
        affected.students.add(row["id"])
    elif entity == "guardian":
        affected.guardians.add(row["id"])
    elif entity == "teacher":
        affected.teachers.add(row["id"])
    elif entity == "class_unit":
        affected.classes.add(row["id"])
    elif entity == "group":
        affected.groups.add(row["id"])
    if row.get("student_id"):
        affected.students.add(row["student_id"])
    if row.get("guardian_id"):
        affected.guardians.add(row["guardian_id"])
    if entity in _GROUP_ENTITIES and row.get("group_id"):
        affected.groups.add(row["group_id"])


def _record_dirty(affected: _Affected) -> int:
    students = affected.students | journal.group_members(affected.groups)
    students |= journal.students_of_classes(affected.classes) if affected.classes else set()
    journal.mark_dirty("student", students)
    journal.mark_dirty("guardian", affected.guardians)
    journal.mark_dirty("teacher", affected.teachers)
    if affected.everyone:
        journal.mark_dirty("all", ["*"])
    return len(students) + len(affected.guardians) + len(affected.teachers)


# --- applying -----------------------------------------------------------------------------


def _apply(
    batch: Batch, grouped: dict[str, list[tuple[int, Any]]], source: str, progress: Progress | None
) -> ImportResult:
    tz = ZoneInfo(batch.header.tz)
    header = batch.header
    result = ImportResult(batch.origin, header.mode, header.cursor)
    affected = _Affected()
    for entity, items in grouped.items():
        rows = _unique_rows(batch, items, tz)
        journal.upsert_rows(entity, rows)
        deletes = [(c.id, _utc_text(c.updated_at, tz)) for _, c in items if c.op == "delete"]
        deleted_rows = journal.rows_by_id(entity, [i for i, _ in deletes]) if deletes else {}
        journal.tombstone(entity, deletes)
        for row in [*rows, *deleted_rows.values()]:
            _note_affected(affected, entity, row)
        result.counts[entity] = {"upserted": len(rows), "deleted": len(deletes)}
        if progress:
            progress(len(items))
    result.dirty_people = _record_dirty(affected)
    journal.record_import(
        source=source,
        origin=batch.origin,
        batch_hash=batch.digest,
        mode=header.mode,
        cursor=header.cursor,
        school_id=header.school_id,
        counts=result.counts,
        at=dt.datetime.now(dt.UTC),
    )
    return result


def import_batch(
    raw: RawBatch, rules: MarkRules, *, source: str = "file", progress: Progress | None = None
) -> ImportResult:
    """Validate and apply one batch, all or nothing. Raises BatchError with every problem."""
    batch, problems = batches.validate(raw, rules)
    if journal.batch_seen(batch.digest):
        return ImportResult(
            batch.origin, batch.header.mode, batch.header.cursor, already_imported=True
        )
    grouped = batches.changes_by_type(batch)
    problems += _check_school(batch) + _check_references(batch, grouped)
    if problems:
        raise BatchError(batch.origin, problems)
    with write_transaction():
        result = _apply(batch, grouped, source, progress)
    log.info("%s", result.summary())
    return result


def import_file(
    path: Path, rules: MarkRules, *, source: str = "file", progress: Progress | None = None
) -> ImportResult:
    return import_batch(batches.read_file(path), rules, source=source, progress=progress)


def import_document(
    document: dict[str, Any],
    origin: str,
    rules: MarkRules,
    *,
    source: str = "file",
    progress: Progress | None = None,
) -> ImportResult:
    raw = batches.from_document(document, origin)
    return import_batch(raw, rules, source=source, progress=progress)


__all__ = ["BatchError", "ImportResult", "import_batch", "import_document", "import_file"]
