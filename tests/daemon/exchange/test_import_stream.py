"""Streaming import: files are read record by record in chunks, yet a file imports exactly as
the same document in memory, whatever its layout, its chunk edges or its encoding quirks."""

from __future__ import annotations

import copy
import datetime as dt
import gc
import json
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.demo.school import generate_school
from otmetka.daemon.exchange import importer, plain, row_makers, schema
from otmetka.daemon.exchange.importer import import_batch, import_document, import_file
from otmetka.daemon.exchange.reader import BatchError, from_document, read_file
from otmetka.daemon.exchange.records import MAX_KEPT_PROBLEMS, MAX_LISTED_ERRORS
from otmetka.daemon.exchange.validation import MarkValues
from otmetka.db import close_database, database, journal, migrate, models, open_database
from tests.support.factories import change, envelope, small_school, write_json

Document = dict[str, Any]
_BOOKKEEPING = {"import_log", "sync_state"}


@pytest.fixture(scope="module")
def school() -> Document:
    """A small but complete demo school: every entity, nested substitutions, 5,000 records."""
    return generate_school(students=11, seed=1, as_of=dt.date(2026, 9, 20))


def _journal_after(load: Callable[[], object]) -> dict[str, list[tuple[Any, ...]]]:
    """Everything but the bookkeeping of a fresh database after `load()`."""
    open_database("sqlite:///:memory:")
    try:
        migrate()
        load()
        dump = journal.dump_tables()
    finally:
        close_database()
    return {table: rows for table, rows in dump.items() if table not in _BOOKKEEPING}


@pytest.fixture(scope="module")
def school_journal(school: Document) -> dict[str, list[tuple[Any, ...]]]:
    return _journal_after(lambda: import_document(school, "school.json", MarkRules()))


def _jsonl(document: Document, newline: str = "\n", blank_lines: bool = False) -> str:
    header = {k: v for k, v in document.items() if k != "changes"}
    lines = [json.dumps(header, ensure_ascii=False)]
    for item in document["changes"]:
        lines += [json.dumps(item, ensure_ascii=False), *([""] if blank_lines else [])]
    return newline.join(lines) + newline


LAYOUTS: dict[str, tuple[str, Callable[[Document], str]]] = {
    "compact json": ("json", lambda d: json.dumps(d, ensure_ascii=False, separators=(",", ":"))),
    "pretty json": ("json", lambda d: json.dumps(d, ensure_ascii=False, indent=2)),
    "sorted keys: envelope after changes": ("json", lambda d: json.dumps(d, sort_keys=True)),
    "json lines": ("jsonl", _jsonl),
    "json lines, CRLF and blank lines": ("jsonl", lambda d: _jsonl(d, "\r\n", True)),
    "json with BOM": ("json", lambda d: "\ufeff" + json.dumps(d, ensure_ascii=False)),
}


@pytest.mark.parametrize("chunk_size", [7, 1000, 4 * 1024 * 1024])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_file_imports_exactly_like_the_document(
    layout: str,
    chunk_size: int,
    school: Document,
    school_journal: dict[str, Any],
    tmp_path: Path,
    rules: MarkRules,
) -> None:
    suffix, render = LAYOUTS[layout]
    path = tmp_path / f"school.{suffix}"
    path.write_text(render(school), encoding="utf-8")
    got = _journal_after(lambda: import_batch(read_file(path, chunk_size=chunk_size), rules))
    assert got == school_journal
    assert len(got["mark"]) == 206 and len(got["lesson"]) == 2564


def test_records_are_counted_without_parsing(school: Document, tmp_path: Path) -> None:
    json_file = write_json(tmp_path / "school.json", school)
    jsonl_file = tmp_path / "school.jsonl"
    jsonl_file.write_text(_jsonl(school), encoding="utf-8")
    assert len(read_file(json_file).changes) == len(school["changes"]) == 5024
    assert len(read_file(jsonl_file).changes) == 5024


def test_progress_counts_every_record_of_a_file(
    memory_db: None, school: Document, tmp_path: Path, rules: MarkRules
) -> None:
    seen: list[int] = []
    import_file(write_json(tmp_path / "school.json", school), rules, progress=seen.append)
    assert sum(seen) == 5024 and len(seen) > 1


def _old_row(entity: str, item: Any, tz: ZoneInfo, mark: Any) -> tuple[Any, ...]:
    """A row as the importer built it before it was generated: model_dump, flatten, convert."""

    def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        flat: dict[str, Any] = {}
        for key, value in data.items():
            if isinstance(value, dict):
                flat.update(flatten(value, f"{prefix}{key}_"))
            else:
                flat[f"{prefix}{key}"] = value
        return flat

    row = flatten(item.data.model_dump())
    row.update(id=item.id, updated_at=row_makers.utc_text(item.updated_at, tz), deleted_at=None)
    if mark is not None:
        row.update(value=mark.value, value2=mark.value2, passed=mark.passed)
    return tuple(
        journal._to_db(row[c]) if c in row else journal.column_default(entity, c)
        for c in journal.column_names(entity)
    )


def _lists_of_tuples(value: Any) -> Any:
    """A list left at its default is an empty tuple in a plain change (exchange.plain)."""
    if isinstance(value, dict):
        return {key: _lists_of_tuples(item) for key, item in value.items()}
    return () if value == [] else value


def test_generated_rows_match_the_plain_conversion(school: Document, rules: MarkRules) -> None:
    tz, marks, seen = ZoneInfo("Europe/Moscow"), MarkValues(rules), set()
    for raw in [*school["changes"], *small_school()["changes"]]:
        item = schema.CHANGE_ADAPTER.validate_python(raw)
        change = plain.CHANGE.validate_python(raw)
        expected = {
            **_lists_of_tuples(item.model_dump(by_alias=True)),
            "updated_at": raw["updated_at"],
        }
        assert change == expected, raw
        mark = marks.of(change["data"]) if item.type == "mark" else None
        at = row_makers.utc_text(item.updated_at, tz)
        row = row_makers.row_maker(item.type)(change, change["data"], at, mark)
        assert row == _old_row(item.type, item, tz, mark), raw
        seen.add(item.type)
    assert seen == set(schema.ENTITY_MODELS)


# --- the JSON reader -------------------------------------------------------------------------


def _mark(record_id: str, **data: Any) -> Document:
    base = {"student_id": "s-1", "subject_id": "math", "date": "2026-09-21", "raw": "5"}
    return change("mark", record_id, {**base, **data})


def _expect_rejection(path: Path, rules: MarkRules, chunk_size: int = 1000) -> str:
    before = journal.dump_tables()
    with pytest.raises(BatchError) as caught:
        import_batch(read_file(path, chunk_size=chunk_size), rules)
    assert journal.dump_tables() == before, "a rejected batch must not change anything"
    return str(caught.value)


def test_text_that_looks_like_a_record_boundary_stays_text(
    memory_db: None, tmp_path: Path, rules: MarkRules
) -> None:
    import_document(small_school(), "base.json", rules)
    tricky = 'см. {"type": "mark"},{"id": "x"} и },{" ещё'
    document = envelope([_mark("mk-t1", comment=tricky), _mark("mk-t2")], mode="delta")
    import_batch(read_file(write_json(tmp_path / "t.json", document), chunk_size=16), rules)
    assert models.Mark.get_by_id("mk-t1").comment == tricky
    assert models.Mark.get_by_id("mk-t2").raw_text == "5"


def _with_problems_deep_inside(school: Document) -> tuple[Document, list[int]]:
    """The school with bad records far from both ends of the file, where a big chunk reads
    them in blocks validated together: the indexes of the bad records."""
    document = copy.deepcopy(school)
    changes = document["changes"]
    lessons = [n for n, item in enumerate(changes) if item["type"] == "lesson"][1000:1002]
    changes[lessons[0]]["data"]["slot"] = 99  # its homework then refers to an unknown lesson
    changes.insert(lessons[1], 42)  # type: ignore[arg-type]
    marks = [n for n, item in enumerate(changes) if item != 42 and item["type"] == "mark"][:3]
    changes[marks[0]]["data"]["raw"] = "9"
    changes[marks[1]]["data"]["extra"] = [{"id": "s-1"}, {"id": "s-2"}]  # cut wrongly
    changes[marks[2]]["data"]["comment"] = 'x"updated_at"},{"id": "y'  # fine, looks odd
    return document, [marks[0], marks[1], lessons[0], lessons[1]]


def test_bad_records_inside_blocks_are_reported_as_one_by_one(
    memory_db: None, school: Document, tmp_path: Path, rules: MarkRules
) -> None:
    """A block that is not valid as a whole is validated again record by record: the same
    problems, named by the same record indexes, as a small chunk size (no blocks) gives."""
    document, bad = _with_problems_deep_inside(school)
    path = write_json(tmp_path / "deep.json", document)
    assert path.stat().st_size > 1024 * 1024 and min(bad) > 200
    by_blocks = _expect_rejection(path, rules, chunk_size=4 * 1024 * 1024)
    one_by_one = _expect_rejection(path, rules, chunk_size=1000)
    assert by_blocks == one_by_one
    assert (
        f"record {bad[0]} (id '{document['changes'][bad[0]]['id']}', type 'mark'): "
        "field 'raw': «9»" in by_blocks
    )
    assert f"record {bad[1]} (id " in by_blocks and "field 'extra'" in by_blocks
    assert f"record {bad[2]} (id " in by_blocks and "field 'slot'" in by_blocks
    assert f"record {bad[3]} (id '?', type '?'): is not a JSON object" in by_blocks
    assert "field 'lesson_id': refers to lesson" in by_blocks
    assert by_blocks.count("deep.json: record ") == 5
    assert "malformed" not in by_blocks


def test_problems_the_plain_validation_leaves_to_the_models_read_the_same(
    memory_db: None, school: Document, tmp_path: Path, rules: MarkRules
) -> None:
    """Deep inside blocks: an upsert without data (left to the importer), dates out of
    order, and characters no text may hold, in blocks with and without backslashes (the
    character rules are skipped only where no such character can stand)."""
    document = copy.deepcopy(school)
    changes = document["changes"]
    kinds = ("mark", "membership", "attendance", "mark")  # none referred to by another
    at = {kind: [n for n, item in enumerate(changes) if item["type"] == kind] for kind in kinds}
    no_data, late, bidi, tab = (at[kind][len(at[kind]) // n] for n, kind in enumerate(kinds, 2))
    assert max(no_data, late, bidi, tab) < len(changes) - 500  # not among the last, read alone
    del changes[no_data]["data"]
    changes[late]["data"]["to"] = "2000-01-01"
    changes[bidi]["data"]["code"] = "Н\u202eБ"
    changes[tab]["data"]["raw"] = "4\t-"
    path = write_json(tmp_path / "deep.json", document)
    by_blocks = _expect_rejection(path, rules, chunk_size=4 * 1024 * 1024)
    assert by_blocks == _expect_rejection(path, rules, chunk_size=1000)
    named = f"record {no_data} (id '{changes[no_data]['id']}', type 'mark')"
    assert f"{named}: field '': Value error, an upsert needs 'data'" in by_blocks
    assert f"record {late} (id " in by_blocks and "'date_to' (2000-01-01) is before" in by_blocks
    assert f"record {bidi} (id " in by_blocks and "character 2 is U+202E" in by_blocks
    assert f"record {tab} (id " in by_blocks and "character 2 is U+0009" in by_blocks
    assert by_blocks.count("deep.json: record ") == 4


def test_blocks_of_records_import_exactly_like_the_document(
    school: Document, school_journal: dict[str, Any], tmp_path: Path, rules: MarkRules
) -> None:
    """With a text that looks like a record boundary inside a record of a block."""
    document = copy.deepcopy(school)
    mark = next(item for item in document["changes"][500:] if item["type"] == "mark")
    mark["data"]["comment"] = 'x"updated_at"},{"id": "y'
    path = write_json(tmp_path / "blocks-odd.json", document)
    expected = _journal_after(lambda: import_document(document, "odd.json", rules))
    got = _journal_after(lambda: import_batch(read_file(path), rules))
    assert got == expected != school_journal


def _indexes() -> list[tuple[str, str]]:
    query = "SELECT name, sql FROM sqlite_master WHERE type = 'index' ORDER BY name"
    return [tuple(row) for row in database.execute_sql(query).fetchall()]


def test_bulk_load_sets_indexes_aside_and_makes_them_again(
    school: Document,
    school_journal: dict[str, Any],
    tmp_path: Path,
    rules: MarkRules,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A big batch into empty tables writes them without their plain indexes: the same rows,
    the same indexes afterwards, and all of them back when the batch is refused."""
    monkeypatch.setattr(importer, "BULK_RECORDS", 1)
    path = write_json(tmp_path / "bulk.json", school)
    found: dict[str, Any] = {}

    def load() -> None:
        found["before"] = _indexes()
        import_batch(read_file(path), rules)
        found["after"] = _indexes()

    assert _journal_after(load) == school_journal
    assert found["after"] == found["before"] and len(found["before"]) > 20
    bad = copy.deepcopy(school)  # found wrong only at the end, the indexes made again
    next(item for item in bad["changes"] if item["type"] == "mark")["data"]["lesson_id"] = "?"
    open_database("sqlite:///:memory:")
    try:
        migrate()
        before = _indexes()
        refused = _expect_rejection(write_json(tmp_path / "bad.json", bad), rules, 1024**2)
        assert "refers to lesson '?'" in refused and _indexes() == before
    finally:
        close_database()


def test_array_of_objects_inside_a_record_is_an_error_not_a_broken_file(
    memory_db: None, tmp_path: Path, rules: MarkRules
) -> None:
    import_document(small_school(), "base.json", rules)
    objects = [{"id": "s-1"}, {"id": "s-2"}]
    document = envelope(
        [_mark("mk-a"), _mark("mk-b", extra=objects), _mark("mk-c"), _mark("mk-d", raw="9")],
        mode="delta",
    )
    message = _expect_rejection(write_json(tmp_path / "objects.json", document), rules)
    assert "record 1 (id 'mk-b', type 'mark'): field 'extra'" in message
    assert "remove it or check its spelling" in message
    assert "record 3 (id 'mk-d', type 'mark'): field 'raw': «9»" in message
    assert "malformed" not in message


def test_time_zone_after_the_changes_is_used(
    memory_db: None, tmp_path: Path, rules: MarkRules
) -> None:
    """json.dumps(sort_keys=True) puts `changes` first: the envelope is read before records."""
    document = small_school()
    document["tz"] = "Asia/Yekaterinburg"  # UTC+5
    for item in document["changes"]:
        item["updated_at"] = "2026-09-01T08:00:00"  # no offset: the school's time zone
    path = tmp_path / "sorted.json"
    path.write_text(json.dumps(document, sort_keys=True), encoding="utf-8")
    assert path.read_text().startswith('{"changes": [')
    import_batch(read_file(path, chunk_size=64), rules)
    assert models.Mark.get_by_id("mk-1").updated_at == "2026-09-01T03:00:00.000000+00:00"


def test_unknown_envelope_key_after_the_changes_is_reported(
    memory_db: None, tmp_path: Path, rules: MarkRules
) -> None:
    text = json.dumps(small_school(), ensure_ascii=False)
    path = tmp_path / "extra.json"
    path.write_text(text[:-1] + ', "comment": ["exported by hand"]}', encoding="utf-8")
    message = _expect_rejection(path, rules)
    assert "extra.json: envelope: field 'comment'" in message and "remove it" in message


@pytest.mark.parametrize("suffix", ["json", "jsonl"])
def test_decomposed_letters_split_across_chunks_are_composed(
    memory_db: None, suffix: str, tmp_path: Path, rules: MarkRules
) -> None:
    document = small_school()
    student = next(item for item in document["changes"] if item["type"] == "student")
    student["data"]["last_name"] = unicodedata.normalize("NFD", "Йовович-Семёнова Алёна")
    path = tmp_path / f"nfd.{suffix}"
    text = _jsonl(document) if suffix == "jsonl" else json.dumps(document, ensure_ascii=False)
    path.write_text(text, encoding="utf-8")
    for chunk_size in (3, 5, 7):
        close_database()
        open_database("sqlite:///:memory:")
        migrate()
        import_batch(read_file(path, chunk_size=chunk_size), rules)
        stored = models.Student.get_by_id(student["id"]).last_name
        assert stored == "Йовович-Семёнова Алёна" == unicodedata.normalize("NFC", stored)


def test_legacy_bytes_deep_in_the_file_are_found_before_anything_is_read(
    tmp_path: Path,
) -> None:
    document = small_school(cursor="c9")
    document["changes"][-1]["data"]["comment"] = "Молодец"
    text = json.dumps(document, ensure_ascii=False)
    start = text.index("Молодец")
    data = text[:start].encode() + "Молодец".encode("cp1251") + text[start + 7 :].encode()
    path = tmp_path / "legacy.json"
    path.write_bytes(data)
    with pytest.raises(BatchError) as caught:
        read_file(path, chunk_size=100)
    offset = len(text[:start].encode())
    assert f"legacy.json: byte {offset} is not UTF-8" in str(caught.value)
    assert "re-save or re-export it as UTF-8" in str(caught.value)


@pytest.mark.parametrize("chunk_size", [16, 4 * 1024 * 1024])
def test_cut_off_file_names_the_record_at_any_chunk_size(
    memory_db: None, chunk_size: int, school: Document, tmp_path: Path, rules: MarkRules
) -> None:
    first_mark = next(i for i, item in enumerate(school["changes"]) if item["type"] == "mark")
    mark_id = school["changes"][first_mark]["id"]
    text = json.dumps(school, ensure_ascii=False)
    path = tmp_path / "cut.json"
    path.write_text(text[: text.index(f'"id": "{mark_id}"') + 60], encoding="utf-8")
    message = _expect_rejection(path, rules, chunk_size)
    assert f"in record {first_mark} (id '{mark_id}')" in message
    assert "the JSON is cut off or malformed" in message and "copy or download it again" in message


def test_record_that_is_not_an_object(memory_db: None, tmp_path: Path, rules: MarkRules) -> None:
    import_document(small_school(), "base.json", rules)
    document = envelope([5, _mark("mk-ok")], mode="delta")
    for batch in (
        read_file(write_json(tmp_path / "five.json", document)),
        from_document(document, "five.json"),
    ):
        before = journal.dump_tables()
        with pytest.raises(BatchError, match=r"record 0 \(id '\?', type '\?'\): is not a JSON"):
            import_batch(batch, rules)
        assert journal.dump_tables() == before


def test_empty_change_list_moves_the_cursor(
    memory_db: None, tmp_path: Path, rules: MarkRules
) -> None:
    import_document(small_school(), "base.json", rules)
    result = import_file(write_json(tmp_path / "empty.json", envelope([], cursor="c7")), rules)
    assert result.records == 0 and journal.cursor_of("file") == "c7"


def test_file_deleted_after_reading_still_imports(
    memory_db: None, tmp_path: Path, rules: MarkRules
) -> None:
    """An unpacked archive member is removed once read; its records are still there."""
    path = write_json(tmp_path / "member.json", small_school())
    batch = read_file(path)
    path.unlink()
    assert import_batch(batch, rules).counts["mark"]["upserted"] == 3


# --- what spans the whole batch ----------------------------------------------------------------


def _reversed(document: Document) -> Document:
    return {**document, "changes": list(reversed(document["changes"]))}


def test_references_to_records_further_down_are_accepted(
    school: Document, school_journal: dict[str, Any], tmp_path: Path, rules: MarkRules
) -> None:
    path = write_json(tmp_path / "reversed.json", _reversed(school))
    assert _journal_after(lambda: import_file(path, rules)) == school_journal


def test_same_record_twice_is_imported_once(
    memory_db: None, tmp_path: Path, rules: MarkRules
) -> None:
    import_document(small_school(), "base.json", rules)
    twice = envelope([_mark("mk-2x"), _mark("mk-2x"), _mark("mk-other")], mode="delta")
    result = import_file(write_json(tmp_path / "twice.json", twice), rules)
    assert result.counts["mark"] == {"upserted": 2, "deleted": 0}


def test_upsert_and_delete_of_one_id_is_refused(
    memory_db: None, tmp_path: Path, rules: MarkRules
) -> None:
    import_document(small_school(), "base.json", rules)
    both = envelope([_mark("mk-1"), change("mark", "mk-1", op="delete")], mode="delta")
    message = _expect_rejection(write_json(tmp_path / "both.json", both), rules)
    assert "record 1 (id 'mk-1', type 'mark'): repeats record 0 with different data" in message


def test_custom_value_counts_when_comparing_repeats(
    memory_db: None, tmp_path: Path, rules: MarkRules
) -> None:
    """On the five scale `value` does not change the row, but it is still different data."""
    import_document(small_school(), "base.json", rules)
    repeats = envelope([_mark("mk-v", value=4.0), _mark("mk-v", value=3.0)], mode="delta")
    message = _expect_rejection(write_json(tmp_path / "repeats.json", repeats), rules)
    assert "repeats record 0 with different data" in message


def test_problems_of_every_kind_come_together(
    memory_db: None, tmp_path: Path, rules: MarkRules
) -> None:
    import_document(small_school(), "base.json", rules)
    document = envelope(
        [_mark("mk-x", raw="7"), _mark("mk-y", student_id="s-404")],
        school_id="sch-other",
        mode="delta",
    )
    message = _expect_rejection(write_json(tmp_path / "all.json", document), rules)
    assert "field 'school_id' is 'sch-other'" in message
    assert "record 0 (id 'mk-x', type 'mark'): field 'raw'" in message
    assert "record 1 (id 'mk-y', type 'mark'): field 'student_id': refers to student" in message


def test_problems_beyond_those_kept_are_counted(
    memory_db: None, tmp_path: Path, rules: MarkRules
) -> None:
    import_document(small_school(), "base.json", rules)
    count = MAX_KEPT_PROBLEMS + 250
    bad = envelope([_mark(f"mk-bad-{n}", raw="0") for n in range(count)], mode="delta")
    message = _expect_rejection(write_json(tmp_path / "bad.json", bad), rules)
    assert f"… and {count - MAX_LISTED_ERRORS} more problems" in message
    assert message.count("field 'raw'") == MAX_LISTED_ERRORS


def test_document_digest_ignores_key_order(memory_db: None, rules: MarkRules) -> None:
    document = small_school()
    import_document(document, "a.json", rules)
    shuffled = {key: document[key] for key in reversed(list(document))}
    shuffled["changes"] = [dict(reversed(list(item.items()))) for item in document["changes"]]
    assert import_document(shuffled, "b.json", rules).already_imported


def test_jsonl_line_numbers_count_blank_lines(
    memory_db: None, tmp_path: Path, rules: MarkRules
) -> None:
    import_document(small_school(), "base.json", rules)
    path = tmp_path / "blank.jsonl"
    path.write_text(_jsonl(envelope([_mark("mk-l1"), _mark("mk-l2")], mode="delta"), "\n", True))
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[3] = lines[3][:25]  # the second record, after one blank line
    path.write_text("\n".join(lines), encoding="utf-8")
    message = _expect_rejection(path, rules)
    assert "blank.jsonl: line 4 (record 1): malformed JSON" in message


def _marks(count: int) -> list[Document]:
    return [_mark(f"mk-bulk-{n}", date=f"2026-09-{1 + n % 28:02d}") for n in range(count)]


@pytest.mark.parametrize("failure", ["unknown reference at the end", "file cut off at the end"])
def test_rows_already_written_are_rolled_back(
    memory_db: None, failure: str, tmp_path: Path, rules: MarkRules
) -> None:
    """More marks than one write chunk go to SQLite before the problem shows up."""
    import_document(small_school(), "base.json", rules)
    many = _marks(importer._CHUNK_ROWS + 1000)
    last = _mark("mk-last", student_id="s-404") if failure.startswith("unknown") else _mark("x")
    text = json.dumps(envelope([*many, last], mode="delta"), ensure_ascii=False)
    path = tmp_path / "big.json"
    path.write_text(text if failure.startswith("unknown") else text[:-60], encoding="utf-8")
    message = _expect_rejection(path, rules, chunk_size=64 * 1024)
    expected = "student 's-404'" if failure.startswith("unknown") else "cut off or malformed"
    assert expected in message
    assert models.Mark.select().count() == 3


def test_batch_referring_to_thousands_of_imported_ids(
    school: Document, school_journal: dict[str, Any], rules: MarkRules
) -> None:
    """The second batch's references are all answered by the database, in many lookups."""
    later = {"mark", "attendance", "homework", "work"}
    changes = school["changes"]
    first = {**school, "changes": [c for c in changes if c["type"] not in later]}
    second = {**school, "cursor": "c2", "changes": [c for c in changes if c["type"] in later]}

    def load() -> None:
        import_document(first, "first.json", rules)
        import_document(second, "second.json", rules)

    got = _journal_after(load)
    assert {t: r for t, r in got.items() if t != "dirty_person"} == {
        t: r for t, r in school_journal.items() if t != "dirty_person"
    }
    assert len({c["data"]["lesson_id"] for c in second["changes"] if c["type"] == "homework"}) > 900


@pytest.mark.parametrize("enabled", [True, False])
def test_garbage_collector_is_left_as_it_was(
    memory_db: None, enabled: bool, rules: MarkRules
) -> None:
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        import_document(small_school(), "a.json", rules)
        assert gc.isenabled() is enabled
        with pytest.raises(BatchError):
            import_document(envelope([_mark("mk-x", raw="9")], cursor="c2"), "b.json", rules)
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


@pytest.mark.parametrize("pad", ["", " "])
def test_record_starting_with_a_nul_byte_is_refused_cleanly(
    memory_db: None, pad: str, tmp_path: Path, rules: MarkRules
) -> None:
    """json.loads(bytes) would take a leading NUL for UTF-16 and fail to decode (either
    length parity of the line hits one of the two ways that goes wrong)."""
    import_document(small_school(), "base.json", rules)
    lines = _jsonl(envelope([_mark("mk-n1"), _mark("mk-n2")], mode="delta")).splitlines()
    lines[2] = "\x00" + pad + lines[2]
    path = tmp_path / "nul.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8")
    message = _expect_rejection(path, rules)
    assert "nul.jsonl: line 3 (record 1): malformed JSON" in message
