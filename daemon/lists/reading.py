"""Reading an edited class list back: every cell checked against the class as it is now.

`read_list` names each wrong cell (sheet and coordinate) with what to do about it, and says
which fields the file changes and which it shows unchanged; a file with any wrong cell is
refused whole (`ListError`), so nothing of it is applied.

A list comes from outside, so it is read within caps: every part of the zip an XLSX is
(`capped`), then the sheets as streams, up to MAX_ROWS rows and MAX_COLUMNS columns of cells
no longer than MAX_CELL; a cell past a cap is named, never read around.
"""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from otmetka.daemon.core.errors import OtmetkaError
from otmetka.daemon.exchange import capped
from otmetka.daemon.lists.layout import (
    DELIVERY,
    FIRST_ROW,
    FORMAT,
    SHEET_GUARDIANS,
    SHEET_META,
    SHEET_STUDENTS,
    VERSION,
    Column,
    Snapshot,
    shown,
    snapshot,
)
from otmetka.db import lists as stored
from otmetka.db import queries

if TYPE_CHECKING:
    from openpyxl.workbook.workbook import Workbook
    from openpyxl.worksheet.worksheet import Worksheet

# A class list is one class: 40 students and their guardians fill about 120 rows and
# 5-20 columns. The caps leave ample room and bound what a hostile file can make us read.
MAX_ROWS = 1000
MAX_COLUMNS = 64  # up to column BL: the list's own columns and a teacher's notes
# The longest value a list holds is an e-mail address (254) or the children of a guardian.
MAX_CELL = 1000
# An exported list is tens of KB of XML; a sheet of MAX_ROWS x MAX_COLUMNS cells with its
# formatting stays under 16 MB, and openpyxl then holds it in a few hundred MB at most.
CAPS = capped.Caps(member=16 * capped.MB, total=64 * capped.MB)
_NAME = re.compile(r"^[^\W\d_]+(?:[ '’.-]+[^\W\d_]+)*\.?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_PHONE = re.compile(r"^\+?[\d ()-]+$")
_DATE_RU = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})$")
MAX_NAME = 60


class ListError(OtmetkaError):
    """A list with wrong cells: every problem named by its cell; nothing was applied."""

    def __init__(self, origin: str, problems: list[str]) -> None:
        self.origin, self.problems = origin, problems
        shown_problems = problems[:40]
        more = len(problems) - len(shown_problems)
        lines = [f"{origin}: {p}" for p in shown_problems]
        if more:
            lines.append(f"{origin}: … и ещё {more} ошибок")
        lines.append(
            f"{origin}: ничего из файла не применено; исправьте эти ячейки и загрузите файл снова."
        )
        super().__init__("\n".join(lines))


def _too_large(error: capped.TooLarge) -> str:
    part, caps = error.member, error.caps
    if error.kind == "ratio":
        return (
            f"часть файла {part} сжата больше чем в {caps.ratio} раз (так устроена «zip-бомба»): "
            "файл не похож на список класса; выгрузите список заново"
        )
    limit = capped.size_text(caps.member if error.kind == "member" else caps.total)
    return (
        f"часть файла {part} занимает без сжатия больше {limit} — для списка класса это "
        "слишком много; выгрузите список заново и не добавляйте в него других данных"
    )


def _not_xlsx(error: Exception) -> str:
    return (
        f"не читается как таблица XLSX ({type(error).__name__}); сохраните файл "
        "в формате Excel (.xlsx) и загрузите снова"
    )


def _open(path: Path) -> Workbook:
    """The workbook read as a stream (openpyxl's read-only mode), once every part of the
    file has passed the caps: an XLSX is a zip, and a sheet of repeated cells packs small."""
    from openpyxl import load_workbook

    try:
        with zipfile.ZipFile(path) as archive:
            capped.check_zip(archive, capped.Budget(path.name, CAPS, path.stat().st_size))
        return load_workbook(path, read_only=True, data_only=True)
    except capped.TooLarge as error:
        raise ListError(path.name, [_too_large(error)]) from None
    except Exception as error:  # openpyxl raises many kinds for a file that is not XLSX
        raise ListError(path.name, [_not_xlsx(error)]) from None


def _meta(book: Workbook) -> dict[str, str] | None:
    if SHEET_META not in book.sheetnames:
        return None
    rows = book[SHEET_META].iter_rows(max_row=50, max_col=2, values_only=True)
    facts = {str(row[0]): str(row[1])[:MAX_CELL] for row in rows if row[0]}
    return facts if facts.get("format") == FORMAT else None


def cell_text(value: Any) -> str:
    """A cell as text: numbers without «.0», dates as ISO, spaces collapsed."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return " ".join(str(value).split())


@dataclass
class Reading:
    """What a file says, after checking every cell."""

    problems: list[str] = field(default_factory=list)
    # (entity, id, field) -> the new value as a correction keeps it; only fields it changes
    changed: dict[tuple[str, str, str], str] = field(default_factory=dict)
    # fields the file shows unchanged (settles conflicts the teacher accepted)
    kept: set[tuple[str, str, str]] = field(default_factory=set)


def _where(sheet: str, coordinate: str) -> str:
    return f"лист «{sheet}», ячейка {coordinate}"


def _parse_date(raw: Any, text: str, today: dt.date) -> tuple[str, str | None]:
    """(ISO date or "", problem)."""
    if not text:
        return "", None
    if isinstance(raw, dt.datetime | dt.date):
        day = raw.date() if isinstance(raw, dt.datetime) else raw
    else:
        match = _DATE_RU.match(text)
        try:
            day = (
                dt.date(int(match[3]), int(match[2]), int(match[1]))
                if match
                else dt.date.fromisoformat(text)
            )
        except ValueError:
            return "", f"«{text}» — не дата: впишите дату как ДД.ММ.ГГГГ, например 14.03.2014"
    if not dt.date(1990, 1, 1) <= day <= today:
        return "", f"дата {day:%d.%m.%Y} невозможна для ученика: проверьте год"
    return day.isoformat(), None


def _check_name(text: str, required: bool) -> str | None:
    if not text:
        return "пусто: впишите значение (его нельзя оставить пустым)" if required else None
    if len(text) > MAX_NAME:
        return f"длиннее {MAX_NAME} знаков: сократите"
    if not _NAME.match(text):
        return f"«{text}» — в имени допустимы только буквы, пробел, дефис и апостроф"
    return None


def _check_phone(text: str) -> str | None:
    digits = sum(ch.isdigit() for ch in text)
    if text and (not _PHONE.match(text) or not 10 <= digits <= 15):
        return f"«{text}» — не номер телефона: впишите его как +7 912 345-67-89"
    return None


def _check_email(text: str) -> str | None:
    if text and (len(text) > 254 or not _EMAIL.match(text)):
        return f"«{text}» — не адрес электронной почты: впишите его как name@example.ru"
    return None


def _value(column: Column, raw: Any, snap: Snapshot, today: dt.date) -> tuple[str, str | None]:
    """(the value a correction would keep, problem) for one cell that was changed."""
    text = cell_text(raw)
    if column.kind in ("name", "middle"):
        return text, _check_name(text, column.kind == "name")
    if column.kind == "date":
        return _parse_date(raw, text, today)
    if column.kind == "phone":
        return text, _check_phone(text)
    if column.kind == "email":
        return text, _check_email(text)
    if column.kind == "delivery":
        codes = {label: code for code, label in DELIVERY.items()}
        if text in codes:
            return codes[text], None
        return "", f"«{text}» — выберите из списка: {', '.join(DELIVERY.values())}"
    return _group_value(column, text, snap)


def _group_value(column: Column, text: str, snap: Snapshot) -> tuple[str, str | None]:
    groups = snap.group_names.get(column.subject_id, {})
    if not text:
        return "", None
    for group_id, name in sorted(groups.items()):
        if name == text:
            return group_id, None
    known = "; ".join(f"«{n}»" for n in sorted(groups.values()))
    return "", f"«{text}» — такой группы нет: выберите из списка ({known}) или оставьте пустым"


def _over_caps(sheet: str, number: int, row: tuple[Any, ...]) -> str | None:
    """The problem of the first cell of a row past a cap, if any."""
    from openpyxl.utils import get_column_letter

    for index, value in enumerate(row, start=1):
        text = "" if value is None else str(value)
        if not text.strip():
            continue
        where = _where(sheet, f"{get_column_letter(index)}{number}")
        if len(text) > MAX_CELL:
            return f"{where}: в ячейке {len(text)} знаков, больше {MAX_CELL}: сократите текст"
        if number > MAX_ROWS:
            return (
                f"{where}: в списке больше {MAX_ROWS} строк — так много в списке класса не "
                "бывает; удалите лишние строки или выгрузите список заново"
            )
        if index > MAX_COLUMNS:
            return (
                f"{where}: заполнена ячейка правее столбца {get_column_letter(MAX_COLUMNS)} "
                f"(в списке не больше {MAX_COLUMNS} столбцов); очистите её"
            )
    return None


def _sheet_rows(sheet: Worksheet, name: str, reading: Reading) -> list[tuple[Any, ...]] | None:
    """Rows 1 to MAX_ROWS, each MAX_COLUMNS wide; None (and the problem noted) if a cell
    is past a cap. Rows and columns further out are never read."""
    rows = []
    cells = sheet.iter_rows(max_row=MAX_ROWS + 1, max_col=MAX_COLUMNS + 1, values_only=True)
    for number, row in enumerate(cells, start=1):
        problem = _over_caps(name, number, row)
        if problem:
            reading.problems.append(problem)
            return None
        rows.append(tuple(row) + (None,) * (MAX_COLUMNS + 1 - len(row)))
    return rows or [(None,) * (MAX_COLUMNS + 1)]


def _check_headers(
    header: tuple[Any, ...], columns: list[Column], name: str, reading: Reading
) -> bool:
    from openpyxl.utils import get_column_letter

    for index, column in enumerate(columns, start=1):
        found = cell_text(header[index - 1])
        if found != column.header:
            where = _where(name, f"{get_column_letter(index)}1")
            reading.problems.append(
                f"{where}: заголовок «{found}» вместо «{column.header}»: не переставляйте и не "
                "удаляйте столбцы; выгрузите список заново (otmetka lists export)"
            )
            return False
    return True


def _rows(rows: list[tuple[Any, ...]], width: int) -> Iterator[tuple[int, tuple[Any, ...]]]:
    for number, row in enumerate(rows[FIRST_ROW - 1 :], start=FIRST_ROW):
        if any(cell_text(v) for v in row[:width]):
            yield number, row[:width]


def _read_sheet(
    book: Workbook, entity: str, snap: Snapshot, today: dt.date, reading: Reading
) -> None:
    from openpyxl.utils import get_column_letter

    name = SHEET_STUDENTS if entity == stored.STUDENT else SHEET_GUARDIANS
    if name not in book.sheetnames:
        reading.problems.append(f"нет листа «{name}»: выгрузите список заново и не удаляйте листы")
        return
    columns, current = snap.columns(entity), snap.values(entity)
    rows = _sheet_rows(book[name], name, reading)
    if rows is None or not _check_headers(rows[0], columns, name, reading):
        return
    seen: dict[str, int] = {}
    for number, row in _rows(rows, len(columns)):
        row_id = cell_text(row[0])
        problem = _row_problem(row_id, number, seen, current, snap.class_row.name)
        if problem:
            reading.problems.append(f"{_where(name, f'A{number}')}: {problem}")
            continue
        seen[row_id] = number
        for index, column in enumerate(columns[1:], start=2):
            if not column.field:
                continue
            key = (entity, row_id, column.field)
            now = current[row_id][column.field]
            raw = row[index - 1]
            if cell_text(raw) == cell_text(shown(column, now, snap)):
                reading.kept.add(key)
                continue
            value, problem = _value(column, raw, snap, today)
            if problem:
                reading.problems.append(
                    f"{_where(name, f'{get_column_letter(index)}{number}')}: {problem}"
                )
            elif value != now:
                reading.changed[key] = value
            else:
                reading.kept.add(key)


def _row_problem(
    row_id: str, number: int, seen: dict[str, int], current: dict[str, Any], class_name: str
) -> str | None:
    if not row_id:
        return (
            "в строке нет кода: новых людей в список не добавляйте (их вносит школа в "
            "электронный журнал); удалите строку"
        )
    if row_id in seen:
        return f"код «{row_id}» уже был в строке {seen[row_id]}: оставьте одну строку"
    if row_id not in current:
        return (
            f"кода «{row_id}» нет в классе {class_name}: не меняйте столбец A; если человек "
            "выбыл или перешёл, удалите строку"
        )
    return None


def read_list(path: Path, today: dt.date) -> tuple[Snapshot, Reading]:
    """Check every cell of a list file against the class as it is now."""
    book = _open(path)
    try:
        return _check_book(book, path, today)
    finally:
        book.close()  # read-only mode keeps the file open until told


def _check_book(book: Workbook, path: Path, today: dt.date) -> tuple[Snapshot, Reading]:
    meta = _meta(book)
    if meta is None:
        raise ListError(
            path.name,
            [
                "это не список класса, выгруженный otmetka: выгрузите его командой "
                "otmetka lists export --class 7Б и исправляйте выгруженный файл"
            ],
        )
    if meta.get("version") != str(VERSION):
        raise ListError(path.name, [f"версия списка {meta.get('version')}: выгрузите его заново"])
    class_row = next((c for c in queries.class_units() if c.id == meta.get("class_id")), None)
    if class_row is None:
        raise ListError(path.name, [f"класса «{meta.get('class_name')}» больше нет в журнале"])
    snap = snapshot(class_row, today)
    reading = Reading()
    for entity in (stored.STUDENT, stored.GUARDIAN):
        _read_sheet(book, entity, snap, today, reading)
    if reading.problems:
        raise ListError(path.name, reading.problems)
    return snap, reading
