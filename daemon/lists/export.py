"""Writing a class list as XLSX for its class teacher.

`otmetka lists export --class 7Б` writes the students and their guardians, with drop-down
lists for the delivery and the groups, a sheet on how to fill it in, and a hidden sheet that
tells `reading` which class and columns the file was made for. The teacher edits it in Excel
or LibreOffice and brings it back (`recording`).
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from otmetka.daemon.core.config import Config
from otmetka.daemon.core.errors import OtmetkaError
from otmetka.daemon.core.settings import today_in
from otmetka.daemon.lists.layout import (
    DELIVERY,
    FIRST_ROW,
    FORMAT,
    RELATIONS,
    SHEET_GUARDIANS,
    SHEET_HELP,
    SHEET_LISTS,
    SHEET_META,
    SHEET_STUDENTS,
    VERSION,
    Column,
    Snapshot,
    find_class,
    shown,
    snapshot,
)
from otmetka.db import lists as stored
from otmetka.site_builder.atomic import write_atomic

if TYPE_CHECKING:
    from openpyxl.cell.cell import Cell
    from openpyxl.workbook.workbook import Workbook
    from openpyxl.worksheet.worksheet import Worksheet


# A cell typed in starting with one of these is a formula (or a DDE call) to Excel or
# LibreOffice: «=HYPERLINK(…)», «=cmd|' /C calc'!A0». Names and contacts come from the journal
# and from corrections, so none of them may reach a cell as a formula.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _put(sheet: Worksheet, row: int, column: int, value: Any) -> Cell:
    """Write one cell; text stays text. openpyxl turns a string starting with «=» into a
    formula: its type is set back to a string, and text that a spreadsheet would read as a
    formula once retyped is marked (quotePrefix) to stay text there too."""
    cell = sheet.cell(row=row, column=column, value=value)
    if isinstance(value, str):
        cell.data_type = "s"
        if value.startswith(FORMULA_START):
            cell.quotePrefix = True
    return cell


def _children_text(guardian: stored.ListGuardian, students: dict[str, str]) -> str:
    return "; ".join(
        f"{students.get(sid, sid)} ({RELATIONS.get(relation, relation)})"
        for sid, relation in guardian.children
    )


def _header(sheet: Worksheet, columns: Sequence[Column]) -> None:
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    for index, column in enumerate(columns, start=1):
        cell = _put(sheet, 1, index, column.header)
        cell.font = Font(bold=True)
        sheet.column_dimensions[get_column_letter(index)].width = column.width
    sheet.freeze_panes = "B2"


def _list_range(sheet_column: str, count: int) -> str:
    return f"'{SHEET_LISTS}'!${sheet_column}$2:${sheet_column}${max(2, count + 1)}"


def _lists_sheet(book: Workbook, snap: Snapshot) -> dict[str, str]:
    """The hidden sheet the drop-downs read; returns column kind/subject -> range."""
    from openpyxl.utils import get_column_letter

    sheet = book.create_sheet(SHEET_LISTS)
    sheet.sheet_state = "hidden"
    _put(sheet, 1, 1, "Доставка журнала")
    for row, label in enumerate(DELIVERY.values(), start=2):
        _put(sheet, row, 1, label)
    ranges = {"delivery": _list_range("A", len(DELIVERY))}
    for offset, (subject_id, groups) in enumerate(sorted(snap.group_names.items()), start=2):
        letter = get_column_letter(offset)
        _put(sheet, 1, offset, snap.subject_names.get(subject_id, subject_id))
        for row, name in enumerate(sorted(groups.values()), start=2):
            _put(sheet, row, offset, name)
        ranges[subject_id] = _list_range(letter, len(groups))
    return ranges


def _validation(sheet: Worksheet, formula: str, cells: str, what: str) -> None:
    from openpyxl.worksheet.datavalidation import DataValidation

    rule = DataValidation(type="list", formula1=f"={formula}", allow_blank=True)
    rule.showErrorMessage = True
    rule.errorTitle = "Значение не из списка"
    rule.error = f"Выберите {what} из списка."
    rule.add(cells)
    sheet.add_data_validation(rule)


def _fill(
    sheet: Worksheet,
    columns: list[Column],
    rows: list[tuple[str, dict[str, str], str]],
    snap: Snapshot,
) -> None:
    from openpyxl.styles import Alignment

    for number, (row_id, values, info) in enumerate(rows, start=FIRST_ROW):
        for index, column in enumerate(columns, start=1):
            if column.kind == "id":
                value: Any = row_id
            elif column.kind == "info":
                value = info
            else:
                value = shown(column, values[column.field], snap)
            cell = _put(sheet, number, index, value)
            if column.kind == "date":
                cell.number_format = "DD.MM.YYYY"
            if column.kind in ("phone", "id"):
                cell.number_format = "@"  # text: Excel must not turn a phone into a number
            if column.kind == "info":
                cell.alignment = Alignment(wrap_text=True)


def _validations(
    sheet: Worksheet, columns: list[Column], count: int, ranges: dict[str, str]
) -> None:
    from openpyxl.utils import get_column_letter

    last = FIRST_ROW + max(count, 1) - 1
    for index, column in enumerate(columns, start=1):
        letter = get_column_letter(index)
        cells = f"{letter}{FIRST_ROW}:{letter}{last}"
        if column.kind == "delivery":
            _validation(sheet, ranges["delivery"], cells, "способ доставки")
        elif column.kind == "group" and column.subject_id in ranges:
            _validation(sheet, ranges[column.subject_id], cells, "группу")


HELP_LINES = (
    "Список класса {cls} для сверки и исправлений, выгружен {day}.",
    "",
    "Исправляйте значения прямо в ячейках листов «Ученики» и «Родители».",
    "Доставку журнала и группы выбирайте из выпадающего списка.",
    "Дату рождения пишите как ДД.ММ.ГГГГ, например 14.03.2014.",
    "Не меняйте столбец с кодом, не переставляйте и не удаляйте столбцы.",
    "Новых учеников и родителей в этот файл не добавляйте: их вносит школа в электронный журнал.",
    "",
    "Сохраните файл в формате .xlsx и передайте его администратору:",
    "otmetka lists import ФАЙЛ или положите файл в папку inbox.",
    "Если в файле есть ошибка, ничего не применяется, а сообщение называет ячейку.",
)


def _meta_sheet(book: Workbook, snap: Snapshot, today: dt.date) -> None:
    sheet = book.create_sheet(SHEET_META)
    sheet.sheet_state = "hidden"
    facts = {
        "format": FORMAT,
        "version": VERSION,
        "class_id": snap.class_row.id,
        "class_name": snap.class_row.name,
        "exported_on": today.isoformat(),
        "students": json.dumps([c.field for c in snap.columns(stored.STUDENT)]),
        "guardians": json.dumps([c.field for c in snap.columns(stored.GUARDIAN)]),
    }
    for row, (key, value) in enumerate(facts.items(), start=1):
        _put(sheet, row, 1, key)
        _put(sheet, row, 2, value)


def workbook(snap: Snapshot, today: dt.date) -> Workbook:
    from openpyxl import Workbook

    book = Workbook()
    students = book.active
    assert students is not None
    students.title = SHEET_STUDENTS
    guardians = book.create_sheet(SHEET_GUARDIANS)
    helper = book.create_sheet(SHEET_HELP)
    for row, line in enumerate(HELP_LINES, start=1):
        _put(helper, row, 1, line.format(cls=snap.class_row.name, day=f"{today:%d.%m.%Y}"))
    helper.column_dimensions["A"].width = 100
    ranges = _lists_sheet(book, snap)
    _meta_sheet(book, snap, today)
    names = {s.id: f"{s.last_name} {s.first_name}" for s in snap.data.students}
    sheets = (
        (students, stored.STUDENT, [(s.id, snap.students[s.id], "") for s in snap.data.students]),
        (
            guardians,
            stored.GUARDIAN,
            [(g.id, snap.guardians[g.id], _children_text(g, names)) for g in snap.data.guardians],
        ),
    )
    for sheet, entity, rows in sheets:
        columns = snap.columns(entity)
        _header(sheet, columns)
        _fill(sheet, columns, rows, snap)
        _validations(sheet, columns, len(rows), ranges)
    return book


def _private_write(path: Path, book: Workbook) -> None:
    """Write owner-only (a list holds personal data), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    book.save(buffer)
    write_atomic(path, buffer.getvalue(), mode=0o600)


@dataclass
class ExportResult:
    path: Path
    students: int
    guardians: int
    split_subjects: int

    def summary(self) -> str:
        return (
            f"wrote {self.path}: {self.students} students, {self.guardians} guardians, "
            f"{self.split_subjects} split subjects (owner-only: it holds personal data)"
        )


def safe_name(class_name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in class_name)


def export_list(config: Config, *, class_name: str | None, out: Path | None) -> ExportResult:
    """Write the class's list as XLSX (default var/lists/<class>-<date>.xlsx)."""
    if not class_name:
        raise OtmetkaError("say which class: --class 7Б")
    today = today_in(config)
    snap = snapshot(find_class(class_name), today)
    target = out or config.paths.var_dir / "lists" / f"{safe_name(class_name)}-{today}.xlsx"
    if target.suffix.lower() != ".xlsx":
        raise OtmetkaError(f"--out {target}: give a file name ending in .xlsx")
    book = workbook(snap, today)
    _private_write(target, book)
    return ExportResult(target, len(snap.students), len(snap.guardians), len(snap.group_names))
