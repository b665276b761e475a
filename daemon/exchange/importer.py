"""The importer: the only writer of journal tables.

A batch is validated record by record (exchange.validation) and each valid change taken by
the function generated for its entity (exchange.row_makers) in the same pass, inside
one transaction that also holds the cursor, the import log and the set of people whose pages
must be rebuilt. References are settled at the end, against the batch and the database; any
problem anywhere rolls the whole transaction back, so the database never holds half a file.

Only what must span the batch stays in memory: per record its id and a fingerprint (to
catch an id sent twice with different data), references to records not seen yet, and the
people affected. Rows go to SQLite in chunks as they are made.
"""

from __future__ import annotations

import datetime as dt
import functools
import gc
import logging
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.exchange import plain, reader, row_makers, schema, validation
from otmetka.daemon.exchange.reader import BatchError, Problems, RawBatch
from otmetka.db import journal, write_transaction

log = logging.getLogger("otmetka.importer")

Progress = Callable[[int], None]

# Run inside each batch's transaction once the batch is applied (the class lists settle
# teachers' corrections against it). Features above the exchange register here, through
# the runtime's wiring, so the importer never imports them.
AfterBatch = Callable[[MarkRules], None]
_AFTER_BATCH: list[AfterBatch] = []


def register_after_batch(hook: AfterBatch) -> None:
    """Run `hook(rules)` after every batch is applied; registering it again changes nothing."""
    if hook not in _AFTER_BATCH:
        _AFTER_BATCH.append(hook)


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
# A batch of at least this many records writes a table that was empty before it without
# its plain indexes, made again at the end (journal.set_aside_indexes): a tenth of a first
# import of a year. Smaller batches would pay more for the rebuilds; a first pull sets them
# aside for all its pages at once instead (journal.set_aside_while_empty).
BULK_RECORDS = 50_000
_CHUNK_ROWS = row_makers.CHUNK_ROWS
_INDEX_BITS = row_makers.INDEX_BITS
_INDEX_MASK = (1 << _INDEX_BITS) - 1


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


# --- dirty set ------------------------------------------------------------------------------


@dataclass
class _Affected:
    students: set[str] = field(default_factory=set)
    groups: set[str] = field(default_factory=set)
    classes: set[str] = field(default_factory=set)
    guardians: set[str] = field(default_factory=set)
    teachers: set[str] = field(default_factory=set)
    everyone: bool = False

    def own_set(self, entity: str) -> set[str] | None:
        """The set an entity's own id goes into (a student is a person with a page)."""
        owners = {
            "student": self.students,
            "guardian": self.guardians,
            "teacher": self.teachers,
            "class_unit": self.classes,
            "group": self.groups,
        }
        return owners.get(entity)

    def linked_sets(self, entity: str) -> tuple[set[str], ...]:
        """The sets of the people and groups a row of `entity` points at, in the order of
        `row_makers.linked_fields(entity)`."""
        sets = {"student_id": self.students, "guardian_id": self.guardians, "group_id": self.groups}
        return tuple(sets[name] for name in row_makers.linked_fields(entity))


def _record_dirty(affected: _Affected) -> int:
    students = affected.students | journal.group_members(affected.groups)
    students |= journal.students_of_classes(affected.classes) if affected.classes else set()
    journal.mark_dirty("student", students)
    journal.mark_dirty("guardian", affected.guardians)
    journal.mark_dirty("teacher", affected.teachers)
    if affected.everyone:
        journal.mark_dirty("all", ["*"])
    return len(students) + len(affected.guardians) + len(affected.teachers)


# --- one batch ------------------------------------------------------------------------------

_TAKERS: dict[str, Callable[[row_makers.Sink], row_makers.Taker]] = {}


def _taker(entity: str) -> Callable[[row_makers.Sink], row_makers.Taker]:
    if entity not in _TAKERS:
        own = _Affected().own_set(entity) is not None
        _TAKERS[entity] = row_makers.taker(entity, everyone=entity in _GLOBAL, own=own)
    return _TAKERS[entity]


# record index, change id, reference, target id
Pending = tuple[int, str, row_makers.Reference, str]
_TARGETS = {target for fields in schema.REFERENCES.values() for target in fields.values()}


class KnownIds:
    """Ids of referenced entities known to be stored, kept by a caller that imports batch
    after batch (the pages of one pull): a reference to one of them needs no lookup. Most of
    a year's marks refer to lessons and students sent pages earlier, and looking those up
    again for every page cost a sixth of a pull. Learnt only from committed batches; a
    tombstone from another writer in between is not seen, which at worst lets a mark in
    that refers to a lesson deleted meanwhile, as if the mark had come first."""

    def __init__(self) -> None:
        self.ids: dict[str, set[str]] = {target: set() for target in _TARGETS}
        self._staged: list[tuple[str, set[str], set[str]]] = []

    def stage(self, entity: str, present: set[str], gone: set[str]) -> None:
        if entity in self.ids:
            self._staged.append((entity, present, gone))

    def commit(self) -> None:
        for entity, present, gone in self._staged:
            self.ids[entity] |= present
            self.ids[entity] -= gone
        self._staged = []

    def discard(self) -> None:
        self._staged = []


class _Entity:
    """What one entity type of the batch keeps while the records stream past."""

    def __init__(self, name: str, affected: _Affected) -> None:
        self.name = name
        self.references = row_makers.entity_references(name)
        # id -> fingerprint << 32 | record index; deletes also keep their time
        self.upserted: dict[str, int] = {}
        self.deleted: dict[str, tuple[int, str]] = {}
        self.rows: list[tuple[Any, ...]] = []
        self.everyone = name in _GLOBAL
        self.own = affected.own_set(name)
        self.linked = tuple(
            zip(row_makers.linked_fields(name), affected.linked_sets(name), strict=True)
        )
        self.take: row_makers.Taker = lambda index, change: None
        self.bulk = False  # a big batch: indexes of a table empty before it are set aside
        self.set_aside: list[str] | None = None  # their statements, once decided

    def bind(self, run: _Run) -> None:
        """Generate `take(index, change)` for this entity in `run` (see row_makers.taker)."""
        sink = row_makers.Sink(
            upserted=self.upserted,
            deleted=self.deleted,
            rows=self.rows,
            flush=self.flush,
            problems=run.problems.texts,
            repeat=run.repeat,
            later=run.pending.append,
            stamps=run.stamps,
            utc=run.utc,
            take_delete=functools.partial(run.take_delete, self),
            refused=run.refused,
            affected=run.affected,
            own=self.own,
            linked=tuple(target for _, target in self.linked),
            targets=tuple(
                (run.entities[ref.target].upserted, run.known.ids[ref.target])
                for ref in self.references
            ),
            marks=run.marks.known,
            mark_of=run.marks.of,
            mark_problem=run.mark_problem,
        )
        self.take = _taker(self.name)(sink)

    def note_affected(self, affected: _Affected, row_id: str, data: Mapping[str, Any]) -> None:
        if self.everyone:
            affected.everyone = True
        if self.own is not None:
            self.own.add(row_id)
        for key, target in self.linked:
            value = data.get(key)
            if value:
                target.add(value)

    def flush(self) -> None:
        if self.rows:
            if self.set_aside is None:
                bulk = self.bulk and journal.is_empty(self.name)
                self.set_aside = journal.set_aside_indexes(self.name) if bulk else []
            journal.upsert_rows(self.name, self.rows)
            self.rows.clear()  # the taker holds this very list

    def restore_indexes(self) -> None:
        if self.set_aside:
            journal.restore_indexes(self.set_aside)
        self.set_aside = []


class _Run:
    """Applying one batch inside its transaction."""

    def __init__(
        self,
        origin: str,
        tz: ZoneInfo,
        problems: Problems,
        known: KnownIds,
        rules: MarkRules,
        bulk: bool = False,
    ) -> None:
        self.origin, self.tz, self.problems, self.known = origin, tz, problems, known
        self.marks = validation.MarkValues(rules)
        self.affected = _Affected()
        self.entities = {name: _Entity(name, self.affected) for name in schema.ENTITY_MODELS}
        self.pending: list[Pending] = []
        self.stamps: dict[str, str] = {}
        for entity in self.entities.values():
            entity.bulk = bulk
            entity.bind(self)
        self.takers = {name: entity.take for name, entity in self.entities.items()}

    def utc(self, moment: str) -> str | None:
        """The UTC text of an `updated_at` sent as `moment`, kept by it; None if the models
        do not take it for a date-time."""
        if len(self.stamps) > 10000:  # timestamps repeat a lot; keep the cache small
            self.stamps.clear()
        try:
            parsed = plain.MOMENT.validate_python(moment)
        except ValidationError:
            return None
        text = self.stamps[moment] = row_makers.utc_text(parsed, self.tz)
        return text

    def mark_problem(self, index: int, change: Any, text: str) -> None:
        self.problems.add(validation.mark_problem(self.origin, index, change["id"], text))

    def refused(self, index: int, change: dict[str, Any]) -> None:
        """A change the plain validation passed and the models do not (exchange.plain)."""
        self.problems.extend(validation.refusal(self.origin, index, change, must=True))

    def take_delete(self, entity: _Entity, index: int, change: Any, at: str) -> None:
        packed = hash(("delete", at)) << _INDEX_BITS | index
        change_id = change["id"]
        earlier = entity.deleted.setdefault(change_id, (packed, at))[0]
        if earlier is packed and change_id in entity.upserted:
            earlier = entity.upserted[change_id]
        if earlier is not packed:
            self.repeat(index, change, packed, earlier)

    def repeat(self, index: int, change: Any, packed: int, earlier: int) -> None:
        """An id seen before: fine with the very same data, a problem with any other.

        Data are compared by a 64-bit fingerprint: a collision is ~1 in 10^19."""
        if earlier >> _INDEX_BITS != packed >> _INDEX_BITS:
            self.problems.add(
                f"{self.origin}: record {index} (id '{change['id']}', type '{change['type']}'): "
                f"repeats record {earlier & _INDEX_MASK} with different data; an id may "
                "appear once per file: keep the right version and remove the other"
            )

    def _unknown_references(self) -> list[str]:
        """References to ids neither upserted in this batch nor present in the database."""
        wanted: dict[str, set[str]] = defaultdict(set)
        open_uses = []
        for use in self.pending:  # most were answered by records that came later
            target_id, target = use[3], use[2].target
            if target_id not in self.entities[target].upserted:
                wanted[target].add(target_id)
                open_uses.append(use)
        known = {name: journal.existing_ids(name, ids) for name, ids in wanted.items()}
        for name, ids in known.items():
            self.known.stage(name, ids, set())
        return [
            f"{self.origin}: record {index} (id '{change_id}', type '{ref.entity}'): field "
            f"'{ref.label}': refers to {ref.target} '{target_id}', which is neither in this "
            f"file nor already imported; send the {ref.target} first or correct the id"
            for index, change_id, ref, target_id in open_uses
            if target_id not in known[ref.target]
        ]

    def settle(self) -> None:
        """Write what is left and check the references; raise if anything was wrong."""
        if not self.problems:
            for entity in self.entities.values():
                entity.flush()
                entity.restore_indexes()
        self.problems.extend(self._unknown_references())
        if self.problems:
            raise self.problems.error()

    def learn(self) -> None:
        """What this batch leaves stored, for the batches after it (once it commits)."""
        for name in self.known.ids:
            entity = self.entities[name]
            self.known.stage(name, set(entity.upserted), set(entity.deleted))

    def tombstones(self) -> None:
        for entity in self.entities.values():
            if entity.deleted:
                rows = journal.rows_by_id(entity.name, entity.deleted)
                journal.tombstone(entity.name, [(i, at) for i, (_, at) in entity.deleted.items()])
                for row in rows.values():
                    entity.note_affected(self.affected, row["id"], row)

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            name: {
                "upserted": len(entity.upserted),
                "deleted": len(entity.deleted),
            }
            for name, entity in self.entities.items()
        }


# --- the batch ------------------------------------------------------------------------------


def _check_school(origin: str, header: schema.EnvelopeHeader) -> list[str]:
    others = journal.school_ids_seen() - {header.school_id}
    if not others:
        return []
    return [
        f"{origin}: envelope: field 'school_id' is '{header.school_id}' but this "
        f"database holds school '{sorted(others)[0]}'; use the right file or a separate database"
    ]


def _stream(raw: RawBatch, run: _Run, progress: Progress | None) -> None:
    validation.stream(raw, run.problems, run.takers, progress)
    run.problems.extend(validation.late_header_problems(raw))


def _apply(
    raw: RawBatch,
    header: schema.EnvelopeHeader,
    rules: MarkRules,
    problems: Problems,
    source: str,
    progress: Progress | None,
    known: KnownIds | None,
) -> ImportResult:
    bulk = len(raw.records) >= BULK_RECORDS
    run = _Run(raw.origin, ZoneInfo(header.tz), problems, known or KnownIds(), rules, bulk)
    _stream(raw, run, progress)
    run.settle()
    if known is not None:
        run.learn()
    run.tombstones()
    result = ImportResult(raw.origin, header.mode, header.cursor, counts=run.counts())
    result.dirty_people = _record_dirty(run.affected)
    journal.record_import(
        source=source,
        origin=raw.origin,
        batch_hash=raw.digest,
        mode=header.mode,
        cursor=header.cursor,
        school_id=header.school_id,
        counts=result.counts,
        at=dt.datetime.now(dt.UTC),
    )
    for hook in _AFTER_BATCH:
        hook(rules)
    return result


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a batch is applied, as it was afterwards.

    A batch makes no reference cycles: reference counting frees its millions of short-lived
    objects. But the collector would walk every live object again and again (a page of a
    pull keeps its parsed changes alive), costing over a tenth of the import."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def import_batch(
    raw: RawBatch,
    rules: MarkRules,
    *,
    source: str = "file",
    progress: Progress | None = None,
    known: KnownIds | None = None,
) -> ImportResult:
    """Validate and apply one batch, all or nothing. Raises BatchError with every problem.

    Rows are written as their records pass, inside the batch's one transaction; a problem
    anywhere (a bad record, an unknown reference, a file cut off near its end) rolls all of
    it back, so a rejected batch leaves the database exactly as it was. `known` carries the
    ids stored by earlier batches of the same caller (see KnownIds).
    """
    header = validation.check_header(raw)
    if journal.batch_seen(raw.digest):
        return ImportResult(raw.origin, header.mode, header.cursor, already_imported=True)
    problems = Problems(raw.origin)
    problems.extend(_check_school(raw.origin, header))
    try:
        with _collector_paused(), write_transaction():
            result = _apply(raw, header, rules, problems, source, progress, known)
    except BaseException:
        if known is not None:
            known.discard()
        raise
    if known is not None:
        known.commit()
    log.info("%s", result.summary())
    return result


def import_file(
    path: Path, rules: MarkRules, *, source: str = "file", progress: Progress | None = None
) -> ImportResult:
    return import_batch(reader.read_file(path), rules, source=source, progress=progress)


def import_document(
    document: dict[str, Any],
    origin: str,
    rules: MarkRules,
    *,
    source: str = "file",
    progress: Progress | None = None,
) -> ImportResult:
    raw = reader.from_document(document, origin)
    return import_batch(raw, rules, source=source, progress=progress)


__all__ = [
    "BatchError",
    "ImportResult",
    "KnownIds",
    "import_batch",
    "import_document",
    "import_file",
    "register_after_batch",
]
