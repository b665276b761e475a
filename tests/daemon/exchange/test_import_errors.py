"""Bad input: every problem names the file, the record (index and id) and the field, says
what to do, and leaves the database exactly as it was."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.exchange.importer import import_document, import_file
from otmetka.daemon.exchange.reader import BatchError
from otmetka.db import journal, models
from tests.support.factories import change, envelope, small_school, write_json

Document = dict[str, Any]


@pytest.fixture
def imported(memory_db: None, rules: MarkRules) -> dict[str, list[tuple[Any, ...]]]:
    """A database holding the small school, and its full dump to compare against."""
    import_document(small_school(), "base.json", rules)
    return journal.dump_tables()


def _delta_with(*changes: Document) -> Document:
    good = change(
        "mark",
        "mk-new",
        {
            "student_id": "s-2",
            "subject_id": "math",
            "date": "2026-09-14",
            "lesson_id": "l-2",
            "raw": "5",
        },
    )
    return envelope([good, *changes], mode="delta", cursor="bad")


def _import_expecting_error(path: Path, rules: MarkRules, before: dict) -> str:
    with pytest.raises(BatchError) as caught:
        import_file(path, rules)
    assert journal.dump_tables() == before, "a rejected batch must not change anything"
    message = str(caught.value)
    assert message.startswith(path.name)
    assert "nothing from this file was imported" in message
    return message


def _mark(**data: Any) -> Document:
    base = {"student_id": "s-1", "subject_id": "math", "date": "2026-09-21", "raw": "5"}
    return change("mark", "mk-bad", {**base, **data})


CASES: dict[str, tuple[Callable[[], Document], list[str]]] = {
    "unknown entity type": (
        lambda: _delta_with(change("marks", "x-1", {"raw": "5"})),
        ["record 1 (id 'x-1', type 'marks')", "unknown entity type 'marks'", "use one of"],
    ),
    "missing required field": (
        lambda: _delta_with(
            change("student", "s-9", {"last_name": "Орлов", "class_unit_id": "cls-7b"})
        ),
        ["record 1 (id 's-9', type 'student')", "field 'first_name'", "required", "add it"],
    ),
    "unknown student": (
        lambda: _delta_with(_mark(student_id="s-404")),
        [
            "record 1 (id 'mk-bad', type 'mark')",
            "field 'student_id'",
            "student 's-404'",
            "neither in this file nor already imported",
        ],
    ),
    "unknown group in nested list": (
        lambda: _delta_with(
            change(
                "holiday",
                "h-9",
                {
                    "name": "Карантин",
                    "kind": "quarantine",
                    "start": "2026-12-01",
                    "end": "2026-12-07",
                    "class_unit_ids": ["cls-9z"],
                },
            )
        ),
        ["record 1 (id 'h-9', type 'holiday')", "field 'class_unit_ids'", "class_unit 'cls-9z'"],
    ),
    "impossible date": (
        lambda: _delta_with(_mark(date="2026-02-30")),
        ["record 1 (id 'mk-bad', type 'mark')", "field 'date'", "'2026-02-30'", "day value"],
    ),
    "mark outside its scale": (
        lambda: _delta_with(_mark(raw="6")),
        ["record 1 (id 'mk-bad', type 'mark')", "field 'raw'", "«6» is not on the five-point"],
    ),
    "pass mark on five scale": (
        lambda: _delta_with(_mark(raw="зачёт")),
        ["field 'raw'", "five-point"],
    ),
    "same id twice with different data": (
        lambda: _delta_with(_mark(raw="4"), _mark(raw="3")),
        ["record 2 (id 'mk-bad', type 'mark')", "repeats record 1 with different data"],
    ),
    "end before start": (
        lambda: _delta_with(
            change(
                "period",
                "q9",
                {
                    "academic_year_id": "y-2026",
                    "kind": "quarter",
                    "name": "2 четверть",
                    "start": "2026-12-28",
                    "end": "2026-11-05",
                },
            )
        ),
        ["record 1 (id 'q9', type 'period')", "'end' (2026-11-05) is before 'start'"],
    ),
    "unknown field": (
        lambda: _delta_with(_mark(grade="5")),
        ["field 'grade'", "remove it or check its spelling"],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_record_is_named_and_nothing_applied(
    name: str, imported: dict, tmp_path: Path, rules: MarkRules
) -> None:
    make, expected = CASES[name]
    path = write_json(tmp_path / "bad.json", make())
    message = _import_expecting_error(path, rules, imported)
    for fragment in expected:
        assert fragment in message, f"{name}: {fragment!r} not in {message!r}"


def test_every_problem_is_listed_at_once(imported: dict, tmp_path: Path, rules: MarkRules) -> None:
    document = _delta_with(_mark(raw="6"), change("mark", "mk-2b", {"raw": "5"}))
    message = _import_expecting_error(write_json(tmp_path / "two.json", document), rules, imported)
    assert "record 1 (id 'mk-bad'" in message and "record 2 (id 'mk-2b'" in message


def test_truncated_json_names_the_broken_record(
    imported: dict, tmp_path: Path, rules: MarkRules
) -> None:
    text = json.dumps(_delta_with(_mark(raw="4")), ensure_ascii=False)
    path = tmp_path / "cut.json"
    path.write_text(text[: text.index('"mk-bad"') + 40], encoding="utf-8")
    message = _import_expecting_error(path, rules, imported)
    assert "cut off or malformed" in message
    assert "record 1 (id 'mk-bad')" in message
    assert "copy or download it again" in message


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("format", "dnevnik-export", "not an otmetka exchange file"),
        ("version", 2, "field 'version' is 2; this otmetka reads version 1"),
        ("mode", "partial", "envelope: field 'mode'"),
    ],
)
def test_bad_envelope(
    field: str, value: Any, expected: str, imported: dict, tmp_path: Path, rules: MarkRules
) -> None:
    document = _delta_with()
    document[field] = value
    message = _import_expecting_error(write_json(tmp_path / "env.json", document), rules, imported)
    assert expected in message


def test_cp1251_file_is_refused_with_a_fix(
    imported: dict, tmp_path: Path, rules: MarkRules
) -> None:
    text = json.dumps(_delta_with(_mark(comment="Молодец")), ensure_ascii=False)
    path = tmp_path / "legacy.json"
    path.write_bytes(text.encode("cp1251"))
    message = _import_expecting_error(path, rules, imported)
    assert "not UTF-8" in message and "Windows-1251" in message and "re-save" in message


def test_utf8_bom_is_accepted(imported: dict, tmp_path: Path, rules: MarkRules) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(_delta_with(), ensure_ascii=False).encode())
    import_file(path, rules)
    assert models.Mark.get_by_id("mk-new").raw_text == "5"


def test_decomposed_letters_are_stored_composed(
    imported: dict, tmp_path: Path, rules: MarkRules
) -> None:
    name = unicodedata.normalize("NFD", "Семёнова-Йовович")
    assert len(name) > len("Семёнова-Йовович")
    student = change(
        "student", "s-nfd", {"last_name": name, "first_name": "Алёна", "class_unit_id": "cls-7b"}
    )
    import_file(write_json(tmp_path / "nfd.json", _delta_with(student)), rules)
    assert models.Student.get_by_id("s-nfd").last_name == "Семёнова-Йовович"


def test_jsonl_with_a_broken_line(imported: dict, tmp_path: Path, rules: MarkRules) -> None:
    document = _delta_with(_mark(raw="4"))
    header = {k: v for k, v in document.items() if k != "changes"}
    lines = [json.dumps(header)] + [json.dumps(c, ensure_ascii=False) for c in document["changes"]]
    lines[2] = lines[2][:30]
    path = tmp_path / "cut.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8")
    message = _import_expecting_error(path, rules, imported)
    assert "cut.jsonl: line 3 (record 1): malformed JSON" in message
