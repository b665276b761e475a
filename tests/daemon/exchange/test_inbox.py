"""The inbox: complete files only, every accepted packing, done/ and quarantine/ with a
message that says what was wrong, nothing half-applied, and the watchdog wake-up."""

from __future__ import annotations

import gzip
import json
import threading
import zipfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from otmetka.daemon.cli import main
from otmetka.daemon.core.config import Config
from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.exchange import importer, inbox
from otmetka.daemon.exchange.inbox import Inbox, InboxWatcher, Settler
from otmetka.db import close_database, models
from tests.support.factories import change, small_school, write_json
from tests.support.sync_support import clean_import, journal_dump


def _jsonl(document: dict[str, Any]) -> str:
    header = {k: v for k, v in document.items() if k != "changes"}
    lines = [header, *document["changes"]]
    return "\n".join(json.dumps(line, ensure_ascii=False) for line in lines) + "\n"


def _split(document: dict[str, Any], at: int) -> tuple[dict[str, Any], dict[str, Any]]:
    first = {**document, "changes": document["changes"][:at], "cursor": "part-1"}
    second = {**document, "changes": document["changes"][at:], "cursor": "part-2"}
    return first, second


def _drop(config: Config, name: str, data: bytes | str) -> Path:
    folder = config.paths.inbox_dir
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def _zip(entries: dict[str, bytes | str]) -> bytes:
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _take_all(config: Config) -> list[inbox.InboxOutcome]:
    box = Inbox(config, MarkRules())
    box.tick(now=0.0)
    return box.tick(now=1000.0)


def _school_bytes() -> str:
    return json.dumps(small_school(), ensure_ascii=False)


# --- completeness ----------------------------------------------------------------------------


def test_a_file_is_taken_only_after_it_stopped_changing(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text("{", encoding="utf-8")
    settler = Settler(settle_s=2.0)
    assert settler.ready([path], now=0.0) == []
    assert settler.ready([path], now=1.5) == []
    path.write_text("{ still copying", encoding="utf-8")
    assert settler.ready([path], now=2.5) == []  # changed: the clock starts again
    assert settler.pending
    assert settler.ready([path], now=4.0) == []
    assert settler.ready([path], now=4.6) == [path]


def test_a_folder_settles_when_none_of_its_files_change(tmp_path: Path) -> None:
    folder = tmp_path / "roster"
    folder.mkdir()
    (folder / "users.csv").write_text("x", encoding="utf-8")
    settler = Settler(settle_s=1.0)
    settler.ready([folder], now=0.0)
    (folder / "orgs.csv").write_text("y", encoding="utf-8")
    assert settler.ready([folder], now=1.5) == []
    assert settler.ready([folder], now=2.6) == [folder]


@pytest.mark.parametrize(
    "name",
    [".hidden.json", "~$roster.zip", "a.json.part", "a.json.tmp", "b.zip.crdownload",
     "c.json.partial", "d.json~", "x.json.error.txt", "done", "quarantine"],
)  # fmt: skip
def test_temporary_names_are_not_candidates(name: str, tmp_path: Path) -> None:
    assert not inbox.is_candidate(tmp_path / name)
    assert inbox.is_candidate(tmp_path / "2026-11-28.json")


# --- every packing ------------------------------------------------------------------------


def _packings() -> dict[str, bytes | str]:
    document = small_school()
    gz = gzip.compress(_school_bytes().encode())
    first, second = _split(document, 20)
    return {
        "school.json": _school_bytes(),
        "school.jsonl": _jsonl(document),
        "school.json.gz": gz,
        "school.jsonl.gz": gzip.compress(_jsonl(document).encode()),
        "school.zip": _zip({"b.json": json.dumps(second), "a/1.json": json.dumps(first)}),
    }


@pytest.mark.parametrize("name", list(_packings()))
def test_each_packing_is_imported_and_moved_to_done(
    name: str, config: Config, file_db: Path, tmp_path: Path
) -> None:
    _drop(config, name, _packings()[name])
    outcomes = _take_all(config)
    assert [(o.name, o.ok) for o in outcomes] == [(name, True)]
    assert outcomes[0].records == 33
    assert (config.paths.inbox_dir / "done" / name).is_file()
    assert not (config.paths.inbox_dir / name).exists()
    imported = journal_dump()
    close_database()
    assert imported == clean_import(small_school(), tmp_path / "clean.sqlite3")


def test_files_are_taken_in_name_order(config: Config, file_db: Path) -> None:
    first, second = _split(small_school(), 20)
    _drop(config, "02-rest.json", json.dumps(second))  # refers to people in 01
    _drop(config, "01-people.json", json.dumps(first))
    outcomes = _take_all(config)
    assert [(o.name, o.ok) for o in outcomes] == [("01-people.json", True), ("02-rest.json", True)]


def test_a_same_name_in_done_gets_a_new_name(config: Config, file_db: Path) -> None:
    _drop(config, "school.json", _school_bytes())
    _take_all(config)
    _drop(config, "school.json", _school_bytes())
    outcomes = _take_all(config)
    assert "already imported" in outcomes[0].message
    done = sorted(p.name for p in (config.paths.inbox_dir / "done").iterdir())
    assert len(done) == 2 and done[-1] == "school.json"
    assert done[0].startswith("school-") and done[0].endswith(".json")


def test_a_file_imported_before_a_crash_is_moved_on_the_next_pass(
    config: Config, file_db: Path
) -> None:
    path = _drop(config, "school.json", _school_bytes())
    importer.import_file(path, MarkRules(), source="inbox")  # the crash came before the move
    outcomes = _take_all(config)
    assert outcomes[0].ok and outcomes[0].records == 0
    assert "already imported" in outcomes[0].message
    assert models.ImportLog.select().count() == 1


# --- rejects --------------------------------------------------------------------------------


def _error_text(config: Config, name: str) -> str:
    note = config.paths.inbox_dir / "quarantine" / f"{name}.error.txt"
    return note.read_text(encoding="utf-8")


def _bad_mark_document() -> dict[str, Any]:
    document = small_school()
    document["changes"][-1] = change(
        "mark",
        "mk-9",
        {"student_id": "s-1", "subject_id": "math", "date": "2026-09-20", "raw": "6"},
    )
    return document


_GZ = gzip.compress(_school_bytes().encode())
_MIXED = _zip({"a.json": _school_bytes(), "notes.pdf": b"%PDF"})
_REJECTS = [
    (
        "bad.json",
        json.dumps(_bad_mark_document()),
        "record 32 (id 'mk-9', type 'mark'): field 'raw'",
    ),
    ("cut.json", _school_bytes()[:900], "the JSON is cut off or malformed"),
    ("cp1251.json", _school_bytes().encode("cp1251"), "looks like Windows-1251"),
    ("cut.json.gz", _GZ[:200], "cut.json.gz: not a complete gzip file"),
    ("broken.zip", b"PK\x03\x04 not really", "broken.zip: not a readable zip archive"),
    ("mixed.zip", _MIXED, "member 'notes.pdf' is not an exchange file"),
    ("empty.zip", _zip({}), "empty.zip: the archive is empty"),
    ("list.txt", "Иванов", "list.txt: not a file otmetka reads"),
]


@pytest.mark.parametrize(("name", "data", "words"), _REJECTS)
def test_a_bad_file_goes_to_quarantine_with_the_reason_and_nothing_applied(
    name: str, data: bytes | str, words: str, config: Config, file_db: Path
) -> None:
    before = journal_dump()
    _drop(config, name, data)
    outcomes = _take_all(config)
    assert [(o.name, o.ok) for o in outcomes] == [(name, False)]
    assert (config.paths.inbox_dir / "quarantine" / name).is_file()
    note = _error_text(config, name)
    assert words in note and "drop it into the inbox folder again" in note
    assert journal_dump() == before
    assert models.ImportLog.select().count() == 0


def test_a_bad_member_stops_the_archive_and_says_what_was_imported(
    config: Config, file_db: Path
) -> None:
    first, second = _split(_bad_mark_document(), 20)
    _drop(config, "two.zip", _zip({"1.json": json.dumps(first), "2.json": json.dumps(second)}))
    outcomes = _take_all(config)
    assert not outcomes[0].ok
    note = _error_text(config, "two.zip")
    assert "the members before it were imported and stay imported (1.json)" in note
    assert "2.json: record 12 (id 'mk-9', type 'mark'): field 'raw'" in note
    assert [row.origin for row in models.ImportLog.select()] == ["1.json"]
    assert models.Mark.select().count() == 0


def test_an_unexpected_error_leaves_the_file_and_does_not_spin(
    config: Config, file_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _drop(config, "school.json", _school_bytes())
    box = Inbox(config, MarkRules())
    box.tick(now=0.0)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk trouble")

    monkeypatch.setattr(inbox, "import_path", broken)
    with pytest.raises(RuntimeError):
        box.tick(now=100.0)
    assert path.exists()
    assert box.tick(now=200.0) == []  # not retried until the file changes
    monkeypatch.undo()
    path.write_text(_school_bytes() + " ", encoding="utf-8")
    box.tick(now=300.0)
    assert [o.ok for o in box.tick(now=400.0)] == [True]


# --- the watcher and the CLI ------------------------------------------------------------------


def test_the_watcher_wakes_the_daemon_on_a_new_file(config: Config) -> None:
    wake = threading.Event()
    watcher = InboxWatcher(config.paths.inbox_dir, wake)
    watcher.start()
    try:
        (config.paths.inbox_dir / "done").mkdir()
        assert not wake.wait(0.3)  # done/ and quarantine/ are ours: no wake-up
        _drop(config, "school.json", _school_bytes())
        assert wake.wait(10)
        assert watcher.take_poke() and not watcher.take_poke()
    finally:
        watcher.stop()


def test_cli_sync_inbox(runner: CliRunner, config_file: Path) -> None:
    config_file.write_text(
        "site:\n  kdf_iterations: 100000\nsource:\n  inbox_settle_s: 0\n", encoding="utf-8"
    )
    folder = config_file.parent / "inbox"
    folder.mkdir()
    write_json(folder / "school.json", small_school())
    args = ["--config", str(config_file), "sync", "--inbox"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "school.json: imported 33 records" in result.output and "done" in result.output
    close_database()
    write_json(folder / "bad.json", _bad_mark_document())
    rejected = runner.invoke(main, args)
    assert rejected.exit_code == 1
    assert "bad.json: record 32 (id 'mk-9', type 'mark'): field 'raw'" in rejected.output
    assert "1 file(s) rejected" in rejected.output and "Traceback" not in rejected.output
    close_database()
    assert "nothing to import" in runner.invoke(main, args).output
    close_database()
