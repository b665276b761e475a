"""Bad input: every problem names the file, the record (index and id) and the field, says
what to do, and leaves the database exactly as it was."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.exchange import schema
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


# --- text fields: length and characters ----------------------------------------------------


def _teacher(**data: Any) -> Document:
    return change("teacher", "t-bad", {"last_name": "Орлова", "first_name": "Ольга", **data})


def _lesson(**data: Any) -> Document:
    base = {"date": "2026-09-21", "slot": 2, "group_id": "g-math", "subject_id": "math"}
    return change("lesson", "l-bad", {**base, "teacher_id": "t-2", **data})


TEXT_CASES: dict[str, tuple[Document, list[str]]] = {
    "a 30,000-character middle name": (
        _teacher(middle_name="Ю" * 30000),
        ["field 'middle_name'", "30000 characters, at most 200 allowed", "shorten it"],
    ),
    "a NUL byte in a name": (
        _teacher(first_name="Оль\x00га"),
        ["field 'first_name'", "character 4 is U+0000", "remove it"],
    ),
    "a line break in a name": (
        _teacher(last_name="Орлова\nИванова"),
        ["field 'last_name'", "character 7 is U+000A", "remove it"],
    ),
    "a direction override in a name": (
        _teacher(last_name="Орлова\u202eавонаВИ"),
        ["field 'last_name'", "is U+202E", "direction overrides"],
    ),
    "an escape character in a phone": (
        _teacher(phone="+7 921\x1b[2J"),
        ["field 'phone'", "character 7 is U+001B", "remove it"],
    ),
    "a phone over 64 characters": (
        _teacher(phone="8 921 700-45-61 " * 5),
        ["field 'phone'", "at most 64 allowed"],
    ),
    "a line break in an e-mail address": (
        _teacher(email="orlova@school.ru\nBcc: all@school.ru"),
        ["field 'email'", "is U+000A", "remove it"],
    ),
    "an e-mail address over 254 characters": (
        _teacher(email="o" * 250 + "@school.ru"),
        ["field 'email'", "at most 254 allowed"],
    ),
    "a long room": (
        _lesson(room="кабинет " * 20),
        ["record 1 (id 'l-bad', type 'lesson')", "field 'room'", "at most 64 allowed"],
    ),
    "a control character in a topic": (
        _lesson(topic="Дроби\x07"),
        ["field 'topic'", "character 6 is U+0007"],
    ),
    "a control character in a mark comment": (
        _mark(comment="моло\x0cдец"),
        ["field 'comment'", "character 5 is U+000C"],
    ),
    "a NUL byte in an id": (
        change("subject", "art\x00", {"name": "ИЗО"}),
        ["record 1 (id 'art\\u0000', type 'subject')", "field 'id'", "is U+0000"],
    ),
}


def _write(path: Path, document: Document) -> Path:
    """`document` as .json or as .jsonl (one line per record)."""
    if path.suffix == ".json":
        return write_json(path, document)
    header = {k: v for k, v in document.items() if k != "changes"}
    lines = [json.dumps(x, ensure_ascii=False) for x in [header, *document["changes"]]]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@pytest.mark.parametrize("suffix", [".json", ".jsonl", "document"])
@pytest.mark.parametrize("name", list(TEXT_CASES))
def test_bad_text_is_refused_by_every_reader(
    name: str, suffix: str, imported: dict, tmp_path: Path, rules: MarkRules
) -> None:
    """Files are validated from each record's JSON text, documents from their values:
    both refuse the same text with the same words."""
    bad, expected = TEXT_CASES[name]
    document = _delta_with(bad)
    if suffix == "document":
        with pytest.raises(BatchError) as caught:
            import_document(document, "pushed.json", rules)
        assert journal.dump_tables() == imported
        message = str(caught.value)
    else:
        message = _import_expecting_error(
            _write(tmp_path / f"bad{suffix}", document), rules, imported
        )
    for fragment in expected:
        assert fragment in message, f"{name}: {fragment!r} not in {message!r}"
    assert "\x00" not in message and "\x1b" not in message and len(message) < 1500


def test_a_lone_surrogate_escape_is_refused(
    imported: dict, tmp_path: Path, rules: MarkRules
) -> None:
    text = json.dumps(_delta_with(_teacher(first_name="Оля")), ensure_ascii=False)
    path = tmp_path / "surrogate.json"
    path.write_text(text.replace("Оля", "Оля\\ud800"), encoding="utf-8")
    message = _import_expecting_error(path, rules, imported)
    assert "record 1 (id 't-bad', type 'teacher')" in message
    assert "field 'first_name'" in message and "unpaired UTF-16 surrogate" in message


def test_markdown_and_free_text_keep_their_line_breaks(
    imported: dict, tmp_path: Path, rules: MarkRules
) -> None:
    homework = change(
        "homework",
        "hw-lines",
        {
            "subject_id": "math",
            "group_id": "g-math",
            "assigned_on": "2026-09-14",
            "due_date": "2026-09-21",
            "text": "§ 43:\n\n- № 1051\n\t- № 1053",
        },
    )
    good = _teacher(
        middle_name="Ю" * 200, email="orlova@school7.example", phone="8 (921) 700-45-61"
    )
    lesson = _lesson(topic="Проценты.\r\nЗадачи на смеси", room="Спортзал № 2")
    import_file(write_json(tmp_path / "ok.json", _delta_with(homework, good, lesson)), rules)
    assert models.Homework.get_by_id("hw-lines").text == "§ 43:\n\n- № 1051\n\t- № 1053"
    teacher = models.Teacher.get_by_id("t-bad")
    assert (teacher.middle_name, teacher.phone) == ("Ю" * 200, "8 (921) 700-45-61")


def _strings(node: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every free-form string of a JSON Schema (not a date, an enum or a constant)."""
    if isinstance(node, dict):
        if node.get("type") == "string" and not {"format", "enum", "const"} & set(node):
            yield where, node
        for key, value in node.items():
            yield from _strings(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, f"{where}/{index}")


def test_the_published_schema_limits_every_string() -> None:
    published = schema.json_schema()
    strings = dict(_strings(published))
    assert len(strings) > 60
    unlimited = [
        where for where, node in strings.items() if not {"maxLength", "pattern"} <= set(node)
    ]
    assert unlimited == [], "every string needs a length limit and a character rule"
    teacher = published["$defs"]["Teacher"]["properties"]
    assert teacher["middle_name"]["maxLength"] == 200 and teacher["phone"]["maxLength"] == 64
    assert published["$defs"]["Lesson"]["properties"]["room"]["maxLength"] == 64
    # Python's re reads the published patterns as the models apply them.
    name, email = teacher["middle_name"]["pattern"], teacher["email"]["pattern"]
    assert re.fullmatch(name, "Петровна") and not re.fullmatch(name, "Пет\x00ровна")
    assert re.fullmatch(email, "Орлова <a.b@school.ru>")
    assert not re.fullmatch(email, "a@b.ru\nBcc: c@d.ru")
