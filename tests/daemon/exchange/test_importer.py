"""The importer: all-or-nothing batches, idempotence, deltas, tombstones, dirty set."""

from __future__ import annotations

import copy
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.exchange.importer import KnownIds, import_batch, import_document, import_file
from otmetka.daemon.exchange.reader import BatchError, from_document, read_file
from otmetka.daemon.exchange.schema import ENTITY_MODELS
from otmetka.db import journal, models
from tests.support.factories import change, envelope, small_school, write_json


def test_small_school_imports_every_entity(memory_db: None, rules: MarkRules) -> None:
    result = import_document(small_school(), "small.json", rules)
    assert result.counts["student"] == {"upserted": 3, "deleted": 0}
    assert result.counts["mark"]["upserted"] == 3
    assert models.Student.get_by_id("s-1").last_name == "Иванова-Крылова"
    lesson = models.Lesson.get_by_id("l-2")
    assert (lesson.substitution_original_teacher_id, lesson.substitution_reason) == (
        "t-1",
        "болезнь",
    )
    assert models.Membership.get_by_id("m-1").date_from.isoformat() == "2026-09-01"
    assert journal.cursor_of("file") == "c1"


def test_marks_keep_raw_text_and_numbers(memory_db: None) -> None:
    import_document(small_school(), "small.json", MarkRules(minus_delta=0.25))
    marks = {m.id: (m.raw_text, m.value, m.value2) for m in models.Mark.select()}
    assert marks == {
        "mk-1": ("5", 5.0, None),
        "mk-2": ("4-", 3.75, None),
        "mk-3": ("3/5", 3.0, 5.0),
    }


def test_same_batch_twice_changes_nothing(file_db: Path, rules: MarkRules) -> None:
    import_document(small_school(), "small.json", rules)
    before = journal.dump_tables()
    again = import_document(small_school(), "small.json", rules)
    assert again.already_imported
    assert journal.dump_tables() == before


def test_same_file_twice_changes_nothing(file_db: Path, tmp_path: Path, rules: MarkRules) -> None:
    path = write_json(tmp_path / "full.json", small_school())
    import_file(path, rules)
    before = journal.dump_tables()
    import_file(path, rules)
    assert journal.dump_tables() == before


def test_reimport_of_same_rows_in_new_document_keeps_journal(
    memory_db: None, rules: MarkRules
) -> None:
    import_document(small_school(), "a.json", rules)
    before = {t: rows for t, rows in journal.dump_tables().items() if t not in _BOOKKEEPING}
    import_document(small_school(cursor="c2"), "b.json", rules)
    after = {t: rows for t, rows in journal.dump_tables().items() if t not in _BOOKKEEPING}
    assert after == before


_BOOKKEEPING = {"import_log", "sync_state", "dirty_person"}


def _delta() -> dict:
    later = "2026-09-20T10:00:00+03:00"
    return envelope(
        [
            change(
                "mark",
                "mk-1",
                {
                    "student_id": "s-1",
                    "subject_id": "math",
                    "date": "2026-09-07",
                    "lesson_id": "l-1",
                    "raw": "4",
                },
                updated_at=later,
            ),
            change("attendance", "a-1", op="delete", updated_at=later),
            change(
                "mark",
                "mk-9",
                {
                    "student_id": "s-2",
                    "subject_id": "math",
                    "date": "2026-09-14",
                    "lesson_id": "l-2",
                    "raw": "2",
                },
                updated_at=later,
            ),
        ],
        mode="delta",
        cursor="c2",
    )


def test_delta_applies_only_its_changes(memory_db: None, rules: MarkRules) -> None:
    import_document(small_school(), "full.json", rules)
    before = journal.dump_tables()
    models.DirtyPerson.delete().execute()
    import_document(_delta(), "delta.json", rules)
    after = journal.dump_tables()
    changed = {t for t in after if after[t] != before[t]} - _BOOKKEEPING
    assert changed == {"mark", "attendance"}
    assert models.Mark.get_by_id("mk-1").raw_text == "4"
    assert models.Attendance.get_by_id("a-1").deleted_at is not None
    assert journal.cursor_of("file") == "c2"
    dirty = {(d.person_kind, d.person_id) for d in models.DirtyPerson.select()}
    assert dirty == {("student", "s-1"), ("student", "s-2"), ("student", "s-3")}


def test_older_update_does_not_overwrite_newer(memory_db: None, rules: MarkRules) -> None:
    import_document(small_school(), "full.json", rules)
    import_document(_delta(), "delta.json", rules)
    stale = envelope(
        [
            change(
                "mark",
                "mk-1",
                {
                    "student_id": "s-1",
                    "subject_id": "math",
                    "date": "2026-09-07",
                    "lesson_id": "l-1",
                    "raw": "2",
                },
            )
        ],
        mode="delta",
        cursor="c3",
    )
    import_document(stale, "stale.json", rules)
    assert models.Mark.get_by_id("mk-1").raw_text == "4"


def test_upsert_after_tombstone_restores_row(memory_db: None, rules: MarkRules) -> None:
    import_document(small_school(), "full.json", rules)
    import_document(_delta(), "delta.json", rules)
    back = copy.deepcopy(small_school(cursor="c4"))
    for item in back["changes"]:
        item["updated_at"] = "2026-10-01T10:00:00+03:00"
    import_document(back, "back.json", rules)
    assert models.Attendance.get_by_id("a-1").deleted_at is None


def test_progress_is_reported(memory_db: None, rules: MarkRules) -> None:
    seen: list[int] = []
    raw = read_file_from(small_school())
    import_batch(raw, rules, progress=seen.append)
    assert sum(seen) == len(small_school()["changes"])


def read_file_from(document: dict):
    from otmetka.daemon.exchange.reader import from_document

    return from_document(document, "doc.json")


def test_batch_for_another_school_is_refused(memory_db: None, rules: MarkRules) -> None:
    import_document(small_school(), "full.json", rules)
    other = small_school(school_id="sch-2", cursor="x")
    with pytest.raises(BatchError, match="holds school 'sch-1'"):
        import_document(other, "other.json", rules)


def test_jsonl_file(memory_db: None, tmp_path: Path, rules: MarkRules) -> None:
    import json

    document = small_school()
    header = {k: v for k, v in document.items() if k != "changes"}
    lines = [json.dumps(header, ensure_ascii=False)]
    lines += [json.dumps(c, ensure_ascii=False) for c in document["changes"]]
    path = tmp_path / "school.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = import_file(path, rules)
    assert result.counts["mark"]["upserted"] == 3
    assert len(read_file(path).changes) == len(document["changes"])


def _flat_fields(model: type[BaseModel], prefix: str = "") -> set[str]:
    names: set[str] = set()
    for name, info in model.model_fields.items():
        nested = [
            a
            for a in typing.get_args(info.annotation) or (info.annotation,)
            if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        names |= _flat_fields(nested[0], f"{prefix}{name}_") if nested else {prefix + name}
    return names


def test_every_exchange_field_has_a_column() -> None:
    assert set(ENTITY_MODELS) == set(models.JOURNAL_TABLES)
    for entity, model in ENTITY_MODELS.items():
        columns = set(journal.column_names(entity))
        assert _flat_fields(model) <= columns, f"{entity}: {_flat_fields(model) - columns}"


# --- ids known across the batches of one caller (the pages of a pull) -----------------------


def _mark_on(lesson_id: str, mark_id: str = "mk-9") -> dict[str, Any]:
    data = {"student_id": "s-1", "subject_id": "math", "date": "2026-09-07", "raw": "5"}
    return change("mark", mark_id, {**data, "lesson_id": lesson_id}, updated_at=LATER)


LATER = "2026-09-20T08:00:00+03:00"


def test_known_ids_follow_a_deletion_in_an_earlier_batch(memory_db: None, rules: MarkRules) -> None:
    known = KnownIds()
    import_batch(from_document(small_school(), "p1"), rules, known=known)
    assert "l-1" in known.ids["lesson"]
    gone = envelope([change("lesson", "l-1", op="delete", updated_at=LATER)], mode="delta")
    import_batch(from_document(gone, "p2"), rules, known=known)
    assert "l-1" not in known.ids["lesson"]
    late_mark = envelope([_mark_on("l-1")], mode="delta", cursor="c3")
    with pytest.raises(BatchError, match="refers to lesson 'l-1', which is neither"):
        import_batch(from_document(late_mark, "p3"), rules, known=known)


def test_known_ids_learn_nothing_from_a_batch_rolled_back(
    memory_db: None, rules: MarkRules
) -> None:
    known = KnownIds()
    import_batch(from_document(small_school(), "p1"), rules, known=known)
    lesson = {"slot": 1, "group_id": "g-math", "subject_id": "math", "teacher_id": "t-2"}
    new_lesson = change("lesson", "l-new", {**lesson, "date": "2026-09-21"}, updated_at=LATER)
    broken = envelope([new_lesson, _mark_on("l-none", "mk-8")], mode="delta", cursor="c2")
    with pytest.raises(BatchError, match="l-none"):
        import_batch(from_document(broken, "p2"), rules, known=known)
    art = change("subject", "art", {"name": "ИЗО"}, updated_at=LATER)
    import_batch(
        from_document(envelope([art], mode="delta", cursor="c2"), "p2b"), rules, known=known
    )
    assert "art" in known.ids["subject"] and "l-new" not in known.ids["lesson"]
    refers = envelope([_mark_on("l-new")], mode="delta", cursor="c3")
    with pytest.raises(BatchError, match="refers to lesson 'l-new'"):
        import_batch(from_document(refers, "p3"), rules, known=known)
    assert models.Lesson.get_or_none(models.Lesson.id == "l-new") is None
