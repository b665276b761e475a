"""Class lists as a spreadsheet, and the teachers' corrections that come back in it.

`otmetka lists export --class 7Б` writes an XLSX: the students (names, birth date, the
group of each split subject) and their guardians (names, phone, e-mail, delivery of the
journal), with drop-down lists for the delivery and the groups. The class teacher edits it
in Excel or LibreOffice; `otmetka lists import FILE` (or the file dropped into inbox/)
checks every cell and, only if all are right, records each changed field as a correction.

How a correction is applied on top of upstream data: through the importer, the only writer
of journal tables, as a batch of source "local" that rewrites the changed rows with the
teacher's values and the row's own upstream `updated_at`. So every page, extract and letter
sees the correction at once, and any later row from upstream (same or newer `updated_at`)
still wins in the table. After every imported batch the importer calls
`settle_after_import`, which compares each pending correction with what upstream now says:

- upstream sends the corrected value with a newer `updated_at`: confirmed, done;
- upstream resent the row, or changed other fields of it, but still has the old value of
  this one: the correction is applied again (in the same transaction as the batch);
- upstream changed this very field to a third value: a conflict. Upstream's value stands,
  the correction is kept, and `otmetka status` reports it until a later list import of the
  class settles it (a new correction, or the cell left at upstream's value).

Every correction is also queued for upstream (`OutboxItem` kind "local_change").

A group change ends the student's membership of the other groups of that subject the day
before the correction (or removes it when it had not started yet) and adds a membership of
the new group from that day; before the school year starts, from the first day of the year.
"""

from __future__ import annotations

import contextvars
import dataclasses
import datetime as dt
import json
import logging
import os
import re
import tempfile
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from otmetka.daemon.core.config import Config
from otmetka.daemon.core.errors import OtmetkaError
from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.exchange import schema as exchange
from otmetka.daemon.exchange.reader import BatchError
from otmetka.db import acts as events
from otmetka.db import lists as stored
from otmetka.db import queries as q
from otmetka.db import write_transaction

if TYPE_CHECKING:
    from openpyxl.workbook.workbook import Workbook
    from openpyxl.worksheet.worksheet import Worksheet

log = logging.getLogger("otmetka.lists")

FORMAT = "otmetka-class-list"
VERSION = 1
SOURCE = "local"
SHEET_STUDENTS, SHEET_GUARDIANS = "Ученики", "Родители"
SHEET_HELP, SHEET_LISTS, SHEET_META = "Как заполнять", "Справочник", "otmetka"
DELIVERY = {"electronic": "электронно", "paper": "на бумаге"}
FIRST_ROW = 2  # row 1 holds the headers
_NAME = re.compile(r"^[^\W\d_]+(?:[ '’.-]+[^\W\d_]+)*\.?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_PHONE = re.compile(r"^\+?[\d ()-]+$")
_DATE_RU = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})$")
MAX_NAME = 60


# --- columns ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    header: str
    field: str  # the field a correction names; "" for a column that is only shown
    kind: str  # id, name, middle, date, phone, email, delivery, group, info
    width: int = 18
    subject_id: str = ""


def student_columns(groups: Sequence[q.GroupRow], subject_names: dict[str, str]) -> list[Column]:
    columns = [
        Column("Код ученика (не менять)", "id", "id", 16),
        Column("Фамилия", "last_name", "name"),
        Column("Имя", "first_name", "name"),
        Column("Отчество", "middle_name", "middle"),
        Column("Дата рождения", "birth_date", "date", 14),
    ]
    for subject_id in sorted({g.subject_id or "" for g in groups}, key=_by_name(subject_names)):
        name = subject_names.get(subject_id, subject_id)
        field_name = stored.GROUP_FIELD + subject_id
        columns.append(Column(f"{name}: группа", field_name, "group", 30, subject_id))
    return columns


def guardian_columns() -> list[Column]:
    return [
        Column("Код (не менять)", "id", "id", 16),
        Column("Фамилия", "last_name", "name"),
        Column("Имя", "first_name", "name"),
        Column("Отчество", "middle_name", "middle"),
        Column("Телефон", "phone", "phone"),
        Column("Эл. почта", "email", "email", 26),
        Column("Доставка журнала", "delivery", "delivery", 16),
        Column("Дети в классе", "", "info", 36),
    ]


def _by_name(names: dict[str, str]) -> Any:
    return lambda subject_id: (names.get(subject_id, subject_id), subject_id)


RELATIONS = {
    "mother": "мать",
    "father": "отец",
    "grandmother": "бабушка",
    "grandfather": "дедушка",
    "guardian": "опекун",
    "other": "другое",
}


# --- the list as it is now ----------------------------------------------------------------


@dataclass
class Snapshot:
    """A class list now, with every editable value as the text a correction keeps."""

    data: stored.ClassList
    subject_names: dict[str, str]
    day: dt.date  # the day group membership is read on
    students: dict[str, dict[str, str]] = field(default_factory=dict)
    guardians: dict[str, dict[str, str]] = field(default_factory=dict)
    group_names: dict[str, dict[str, str]] = field(default_factory=dict)  # subject: id->name

    @property
    def class_row(self) -> q.ClassRow:
        return self.data.class_row

    def columns(self, entity: str) -> list[Column]:
        if entity == stored.STUDENT:
            return student_columns(self.data.groups, self.subject_names)
        return guardian_columns()

    def values(self, entity: str) -> dict[str, dict[str, str]]:
        return self.students if entity == stored.STUDENT else self.guardians


def membership_day(today: dt.date, year_start: dt.date | None) -> dt.date:
    """Groups are read (and changed) as of today, or the first day of a year not started."""
    return max(today, year_start) if year_start else today


def snapshot(class_row: q.ClassRow, today: dt.date) -> Snapshot:
    data = stored.class_list(class_row, today)
    names = {s.id: s.name for s in q.subjects()}
    snap = Snapshot(data, names, membership_day(today, data.year_start))
    for group in data.groups:
        snap.group_names.setdefault(group.subject_id or "", {})[group.id] = group.name
    memberships: dict[str, list[q.MembershipRow]] = defaultdict(list)
    for row in data.memberships:
        memberships[row.student_id].append(row)
    for student in data.students:
        values = {f: stored.text(getattr(student, f)) for f in stored.STUDENT_FIELDS}
        mine = memberships[student.id]
        for subject_id, groups in snap.group_names.items():
            values[stored.GROUP_FIELD + subject_id] = stored.group_ids_on(mine, groups, snap.day)
        snap.students[student.id] = values
    for guardian in data.guardians:
        snap.guardians[guardian.id] = {
            f: stored.text(getattr(guardian, f)) for f in stored.GUARDIAN_FIELDS
        }
    return snap


def find_class(class_name: str) -> q.ClassRow:
    classes = q.class_units()
    for row in classes:
        if row.name == class_name:
            return row
    known = ", ".join(c.name for c in classes) or "none yet (import the journal first)"
    raise OtmetkaError(f"no class named «{class_name}»; classes: {known}")


# --- export -------------------------------------------------------------------------------


def shown(column: Column, value: str, snap: Snapshot) -> Any:
    """What a cell shows for a stored value (dates as dates, groups and delivery by name)."""
    if column.kind == "date":
        return dt.date.fromisoformat(value) if value else None
    if column.kind == "delivery":
        return DELIVERY.get(value, value)
    if column.kind == "group":
        ids = [i for i in value.split(",") if i]
        return snap.group_names.get(column.subject_id, {}).get(ids[0], ids[0]) if ids else ""
    return value


def _children_text(guardian: stored.ListGuardian, students: dict[str, str]) -> str:
    return "; ".join(
        f"{students.get(sid, sid)} ({RELATIONS.get(relation, relation)})"
        for sid, relation in guardian.children
    )


def _header(sheet: Worksheet, columns: Sequence[Column]) -> None:
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    for index, column in enumerate(columns, start=1):
        cell = sheet.cell(row=1, column=index, value=column.header)
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
    sheet["A1"] = "Доставка журнала"
    for row, label in enumerate(DELIVERY.values(), start=2):
        sheet.cell(row=row, column=1, value=label)
    ranges = {"delivery": _list_range("A", len(DELIVERY))}
    for offset, (subject_id, groups) in enumerate(sorted(snap.group_names.items()), start=2):
        letter = get_column_letter(offset)
        sheet.cell(row=1, column=offset, value=snap.subject_names.get(subject_id, subject_id))
        for row, name in enumerate(sorted(groups.values()), start=2):
            sheet.cell(row=row, column=offset, value=name)
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
            cell = sheet.cell(row=number, column=index, value=value)
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
        sheet.cell(row=row, column=1, value=key)
        sheet.cell(row=row, column=2, value=value)


def workbook(snap: Snapshot, today: dt.date) -> Workbook:
    from openpyxl import Workbook

    book = Workbook()
    students = book.active
    assert students is not None
    students.title = SHEET_STUDENTS
    guardians = book.create_sheet(SHEET_GUARDIANS)
    helper = book.create_sheet(SHEET_HELP)
    for row, line in enumerate(HELP_LINES, start=1):
        helper.cell(
            row=row, column=1, value=line.format(cls=snap.class_row.name, day=f"{today:%d.%m.%Y}")
        )
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


def _private_write(path: Path, save: Any) -> None:
    """Write owner-only (a list holds personal data), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    os.close(handle)
    try:
        os.chmod(temp, 0o600)
        save(temp)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


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
    from otmetka.daemon.runtime import open_project, today_in

    if not class_name:
        raise OtmetkaError("say which class: --class 7Б")
    open_project(config)
    today = today_in(config)
    snap = snapshot(find_class(class_name), today)
    target = out or config.paths.var_dir / "lists" / f"{safe_name(class_name)}-{today}.xlsx"
    if target.suffix.lower() != ".xlsx":
        raise OtmetkaError(f"--out {target}: give a file name ending in .xlsx")
    book = workbook(snap, today)
    _private_write(target, book.save)
    return ExportResult(target, len(snap.students), len(snap.guardians), len(snap.group_names))


# --- reading a list back ------------------------------------------------------------------


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


def _open(path: Path) -> Workbook:
    from openpyxl import load_workbook

    try:
        return load_workbook(path, data_only=True)
    except Exception as error:  # openpyxl raises many kinds for a file that is not XLSX
        raise ListError(
            path.name,
            [
                f"не читается как таблица XLSX ({type(error).__name__}); сохраните файл "
                "в формате Excel (.xlsx) и загрузите снова"
            ],
        ) from None


def _meta(book: Workbook) -> dict[str, str] | None:
    if SHEET_META not in book.sheetnames:
        return None
    sheet = book[SHEET_META]
    facts = {str(row[0]): str(row[1]) for row in sheet.iter_rows(values_only=True) if row[0]}
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


def _check_headers(sheet: Worksheet, columns: list[Column], name: str, reading: Reading) -> bool:
    from openpyxl.utils import get_column_letter

    for index, column in enumerate(columns, start=1):
        found = cell_text(sheet.cell(row=1, column=index).value)
        if found != column.header:
            where = _where(name, f"{get_column_letter(index)}1")
            reading.problems.append(
                f"{where}: заголовок «{found}» вместо «{column.header}»: не переставляйте и не "
                "удаляйте столбцы; выгрузите список заново (otmetka lists export)"
            )
            return False
    return True


def _rows(sheet: Worksheet, width: int) -> Iterator[tuple[int, tuple[Any, ...]]]:
    for number, row in enumerate(
        sheet.iter_rows(min_row=FIRST_ROW, max_col=width, values_only=True), start=FIRST_ROW
    ):
        if any(cell_text(v) for v in row):
            yield number, tuple(row) + (None,) * (width - len(row))


def _read_sheet(
    book: Workbook, entity: str, snap: Snapshot, today: dt.date, reading: Reading
) -> None:
    from openpyxl.utils import get_column_letter

    name = SHEET_STUDENTS if entity == stored.STUDENT else SHEET_GUARDIANS
    if name not in book.sheetnames:
        reading.problems.append(f"нет листа «{name}»: выгрузите список заново и не удаляйте листы")
        return
    sheet, columns, current = book[name], snap.columns(entity), snap.values(entity)
    if not _check_headers(sheet, columns, name, reading):
        return
    seen: dict[str, int] = {}
    for number, row in _rows(sheet, len(columns)):
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
    class_row = next((c for c in q.class_units() if c.id == meta.get("class_id")), None)
    if class_row is None:
        raise ListError(path.name, [f"класса «{meta.get('class_name')}» больше нет в журнале"])
    snap = snapshot(class_row, today)
    reading = Reading()
    for entity in (stored.STUDENT, stored.GUARDIAN):
        _read_sheet(book, entity, snap, today, reading)
    if reading.problems:
        raise ListError(path.name, reading.problems)
    return snap, reading


# --- applying corrections -----------------------------------------------------------------


def _exchange_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date) else value


def exchange_data(entity: str, row: dict[str, Any]) -> dict[str, Any]:
    """A journal row as the `data` of an exchange change of `entity`."""
    model = exchange.ENTITY_MODELS[entity]
    return {
        (info.alias or name): _exchange_value(row[name])
        for name, info in model.model_fields.items()
    }


def _stored_value(field_name: str, value: str) -> Any:
    if field_name == "birth_date":
        return dt.date.fromisoformat(value) if value else None
    return value


def _person_changes(pending: Sequence[stored.Change]) -> list[dict[str, Any]]:
    """Upserts of student and guardian rows with every pending correction laid over them,
    under the row's own `updated_at` (a later upstream row still wins)."""
    fields: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    for change in pending:
        if change.subject_id is None:
            fields[(change.entity, change.entity_id)][change.field] = change.new_value
    out = []
    for entity in (stored.STUDENT, stored.GUARDIAN):
        ids = [pid for kind, pid in fields if kind == entity]
        for pid, row in sorted(stored.rows(entity, ids).items()):
            if row["deleted_at"]:
                continue  # upstream deleted it: settle_after_import reports the conflict
            merged = dict(row)
            for name, value in fields[(entity, pid)].items():
                merged[name] = _stored_value(name, value)
            data = exchange_data(entity, merged)
            out.append(_upsert(entity, pid, row["updated_at"], data))
    return out


def _upsert(entity: str, record_id: str, updated_at: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": entity, "id": record_id, "op": "upsert", "updated_at": updated_at, "data": data}


def change_day(change: stored.Change, year_start: dt.date | None) -> dt.date:
    """The day a group change takes effect: the day it was made, or the year's first day."""
    return membership_day(change.created_at.date(), year_start)


def _membership_changes(change: stored.Change) -> list[dict[str, Any]]:
    """End the student's memberships of the subject's other groups, and join the new one."""
    subject_id = change.subject_id or ""
    student_id = change.entity_id
    class_id = stored.class_of_students([student_id]).get(student_id, "")
    groups = stored.groups_of_subjects([subject_id], class_id).get(subject_id, [])
    day = change_day(change, stored.year_start_of_class(class_id))
    rows = [r for r in stored.memberships_of([student_id], groups) if not r.deleted]
    out: list[dict[str, Any]] = []
    holds_new = False
    for row in rows:
        current = row.date_from <= day and (row.date_to is None or day <= row.date_to)
        if row.group_id == change.new_value:
            holds_new = holds_new or current
        elif current or row.date_from > day:
            out.append(_leave(row, day))
    if change.new_value and not holds_new:
        record_id = f"{stored.LOCAL_ID_PREFIX}{uuid.uuid5(uuid.NAMESPACE_URL, f'{change.id}')}"
        data = {"group_id": change.new_value, "student_id": student_id, "from": day.isoformat()}
        out.append(_upsert("membership", record_id, _stamp(change), data))
    return out


def _leave(row: stored.MembershipFull, day: dt.date) -> dict[str, Any]:
    if row.date_from >= day:  # had not started: it goes
        return {"type": "membership", "id": row.id, "op": "delete", "updated_at": row.updated_at}
    data = {
        "group_id": row.group_id,
        "student_id": row.student_id,
        "from": row.date_from.isoformat(),
        "to": (day - dt.timedelta(days=1)).isoformat(),
    }
    return _upsert("membership", row.id, row.updated_at, data)


def _stamp(change: stored.Change) -> str:
    return change.base_updated_at or change.created_at.replace(tzinfo=dt.UTC).isoformat()


def write_through(pending: Sequence[stored.Change], rules: MarkRules, origin: str) -> int:
    """Apply corrections to the journal tables through the importer (source "local")."""
    from otmetka.daemon.exchange import importer
    from otmetka.db import journal

    records = _person_changes(pending)
    for change in pending:
        if change.subject_id is not None:
            records += _membership_changes(change)
    if not records:
        return 0
    schools = sorted(journal.school_ids_seen())
    now = dt.datetime.now(dt.UTC)
    document = {
        "format": exchange.FORMAT_NAME,
        "version": exchange.FORMAT_VERSION,
        "school_id": schools[0] if schools else "local",
        "tz": "UTC",
        "mode": "delta",
        "cursor": f"local-{now:%Y%m%dT%H%M%S.%f}",
        "generated_at": now.isoformat(),
        "changes": records,
    }
    return importer.import_document(document, origin, rules, source=SOURCE).records


# --- recording an import ------------------------------------------------------------------


def _base(entity: str, entity_id: str, field_name: str, snap: Snapshot) -> str:
    """The upstream `updated_at` a correction is made against."""
    if field_name.startswith(stored.GROUP_FIELD):
        subject_id = field_name.removeprefix(stored.GROUP_FIELD)
        groups = list(snap.group_names.get(subject_id, {}))
        return _upstream_stamp(stored.memberships_of([entity_id], groups))
    row = stored.rows(entity, [entity_id]).get(entity_id)
    return str(row["updated_at"]) if row else ""


def _upstream_stamp(rows: Iterable[stored.MembershipFull]) -> str:
    stamps = [r.updated_at for r in rows if not r.id.startswith(stored.LOCAL_ID_PREFIX)]
    return max(stamps, default="")


def _outbox_payload(change: stored.Change, school_id: str, class_id: str) -> dict[str, Any]:
    payload = {
        "change_id": change.id,
        "school_id": school_id,
        "class_id": class_id,
        "entity": change.entity,
        "id": change.entity_id,
        "field": change.field,
        "value": change.new_value,
        "previous": change.old_value,
        "changed_at": change.created_at.replace(tzinfo=dt.UTC).isoformat(),
        "author": change.author,
    }
    if change.subject_id is not None:
        payload.update(field="group", subject_id=change.subject_id)
    return payload


@dataclass
class ListImportResult:
    origin: str
    class_name: str
    corrections: int = 0
    students: int = 0
    guardians: int = 0
    settled: int = 0  # conflicts settled by this file

    def summary(self) -> str:
        if not self.corrections and not self.settled:
            return f"{self.origin}: list of {self.class_name} checked, nothing changed"
        return (
            f"{self.origin}: list of {self.class_name}: {self.corrections} corrections recorded "
            f"({self.students} students, {self.guardians} guardians), applied here and queued "
            f"for upstream; {self.settled} conflicts settled"
        )


def _record(
    snap: Snapshot, reading: Reading, author: str, school_id: str
) -> tuple[list[stored.Change], int]:
    """New corrections (replacing open ones of the same fields) and their outbox items."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    open_ones = stored.open_changes_of([*reading.changed, *reading.kept])
    settled = [c.id for k, c in open_ones.items() if k in reading.kept and c.state == "conflict"]
    stored.set_state(settled, stored.RESOLVED)
    made = []
    for key, value in sorted(reading.changed.items()):
        entity, entity_id, field_name = key
        earlier = open_ones.get(key)
        upstream_value = snap.values(entity)[entity_id][field_name]
        base = _base(entity, entity_id, field_name, snap)
        if earlier is not None:
            stored.set_state(
                [earlier.id], stored.SUPERSEDED if earlier.state == "pending" else stored.RESOLVED
            )
            if earlier.state == "pending":  # the table holds our value; upstream's is older
                upstream_value, base = earlier.old_value, earlier.base_updated_at
        change = stored.add_change(
            entity=entity,
            entity_id=entity_id,
            field=field_name,
            old_value=upstream_value,
            new_value=value,
            base_updated_at=base,
            author=author,
            at=now,
        )
        payload = _outbox_payload(change, school_id, snap.class_row.id)
        events.queue_outbox("local_change", f"local-change-{uuid.uuid4().hex}", payload, now)
        made.append(change)
    return made, len(settled)


def apply_list(
    path: Path, rules: MarkRules, *, today: dt.date, author: str, school_id: str
) -> ListImportResult:
    """Check the file and, if every cell is right, record, apply and queue its corrections,
    all in one transaction. Raises ListError (naming each wrong cell) with nothing applied."""
    snap, reading = read_list(path, today)
    result = ListImportResult(path.name, snap.class_row.name)
    with write_transaction():
        made, result.settled = _record(snap, reading, author, school_id)
        touched = {(c.entity, c.entity_id) for c in made}
        pending = [c for c in stored.changes() if (c.entity, c.entity_id) in touched]
        write_through(pending, rules, path.name)
    result.corrections = len(made)
    result.students = len({c.entity_id for c in made if c.entity == stored.STUDENT})
    result.guardians = len({c.entity_id for c in made if c.entity == stored.GUARDIAN})
    log.info("%s", result.summary())
    return result


def _author(origin: str) -> str:
    from otmetka.daemon.acts.rules import staff_actor

    return f"{staff_actor()} ({origin})"


def import_list(config: Config, path: Path) -> ListImportResult:
    """`otmetka lists import FILE`."""
    from otmetka.daemon.runtime import mark_rules, open_project, today_in

    if not path.is_file():
        raise OtmetkaError(f"{path}: no such file; give the path of the edited list (.xlsx)")
    open_project(config)
    return apply_list(
        path,
        mark_rules(config),
        today=today_in(config),
        author=_author(path.name),
        school_id=config.school.school_id,
    )


def import_for_inbox(config: Config, path: Path, rules: MarkRules) -> tuple[int, list[str]]:
    """A list dropped into inbox/: (records changed, summary lines) for the inbox watcher."""
    from otmetka.daemon.runtime import today_in

    result = apply_list(
        path,
        rules,
        today=today_in(config),
        author=f"inbox ({path.name})",
        school_id=config.school.school_id,
    )
    return result.corrections + result.settled, [result.summary()]


# --- after every upstream batch -----------------------------------------------------------


@dataclass(frozen=True)
class Now:
    """What the journal holds now for a corrected field."""

    value: str
    updated_at: str
    alive: bool


def _now_of_people(pending: Sequence[stored.Change]) -> dict[tuple[str, str, str], Now]:
    found = {}
    for entity in (stored.STUDENT, stored.GUARDIAN):
        wanted = [c for c in pending if c.entity == entity and c.subject_id is None]
        rows = stored.rows(entity, {c.entity_id for c in wanted})
        for change in wanted:
            row = rows.get(change.entity_id)
            if row is None:
                found[change.key] = Now("", "", False)
            else:
                value = stored.text(row[change.field])
                found[change.key] = Now(value, str(row["updated_at"]), not row["deleted_at"])
    return found


def _now_of_group(change: stored.Change) -> Now:
    subject_id = change.subject_id or ""
    class_id = stored.class_of_students([change.entity_id]).get(change.entity_id)
    if class_id is None:
        return Now("", "", False)
    groups = stored.groups_of_subjects([subject_id], class_id).get(subject_id, [])
    rows = stored.memberships_of([change.entity_id], groups)
    day = change_day(change, stored.year_start_of_class(class_id))
    live = [
        q.MembershipRow(r.group_id, r.student_id, r.date_from, r.date_to)
        for r in rows
        if not r.deleted
    ]
    return Now(stored.group_ids_on(live, groups, day), _upstream_stamp(rows), True)


def _verdict(change: stored.Change, now: Now) -> str:
    """confirmed / keep / reapply / conflict (see the module's docstring)."""
    if not now.alive:
        return "conflict"
    newer = now.updated_at > change.base_updated_at
    if now.value == change.new_value:
        return "confirmed" if newer else "keep"
    if not newer or now.value == change.old_value:
        return "reapply"
    return "conflict"


_SETTLING: contextvars.ContextVar[bool] = contextvars.ContextVar("settling", default=False)


def settle_after_import(rules: MarkRules) -> None:
    """Called by the importer inside each batch's transaction, after the batch is applied:
    settle every pending correction against what upstream now says. Not for the batch it
    writes itself to apply corrections again (that would recurse)."""
    if _SETTLING.get():
        return
    token = _SETTLING.set(True)
    try:
        _settle(rules)
    finally:
        _SETTLING.reset(token)


def _now_of(change: stored.Change, people: dict[tuple[str, str, str], Now]) -> Now:
    return people[change.key] if change.subject_id is None else _now_of_group(change)


def _settle(rules: MarkRules) -> None:
    pending = stored.changes()
    if not pending:
        return
    people = _now_of_people(pending)
    verdicts: dict[str, list[stored.Change]] = defaultdict(list)
    for change in pending:
        state = _now_of(change, people)
        verdict = _verdict(change, state)
        if verdict == "reapply" and state.updated_at > change.base_updated_at:
            stored.set_base(change.id, state.updated_at)
            change = dataclasses.replace(change, base_updated_at=state.updated_at)
        verdicts[verdict].append(change)
    stored.set_state([c.id for c in verdicts["confirmed"]], stored.CONFIRMED)
    stored.set_state([c.id for c in verdicts["conflict"]], stored.CONFLICT)
    if verdicts["reapply"]:
        _apply_again(verdicts["reapply"], rules)


def _apply_again(changes: list[stored.Change], rules: MarkRules) -> None:
    """Re-apply over the rows the batch just wrote, in the same transaction, so no build
    ever sees the correction undone. A correction that cannot hold any more (its row or
    group is gone upstream) becomes a conflict, and the batch is imported all the same."""
    keys = {(c.entity, c.entity_id) for c in changes}
    still = [c for c in stored.changes() if (c.entity, c.entity_id) in keys]
    try:
        write_through(still, rules, "local corrections (applied again)")
    except BatchError as error:
        log.warning("local corrections could not be applied again: %s", error)
        stored.set_state([c.id for c in changes], stored.CONFLICT)
        return
    people = _now_of_people(changes)
    lost = [c.id for c in changes if _now_of(c, people).value != c.new_value]
    stored.set_state(lost, stored.CONFLICT)


# --- status -------------------------------------------------------------------------------


FIELD_NAMES = {
    "last_name": "surname",
    "first_name": "first name",
    "middle_name": "patronymic",
    "birth_date": "birth date",
    "phone": "phone",
    "email": "e-mail",
    "delivery": "delivery",
}


def _field_name(change: stored.Change, subjects: dict[str, str]) -> str:
    if change.subject_id is not None:
        return f"group in {subjects.get(change.subject_id, change.subject_id)}"
    return FIELD_NAMES.get(change.field, change.field)


def _conflict_line(
    change: stored.Change, now: str, names: dict[str, str], subjects: dict[str, str]
) -> str:
    who = f"{change.entity} {names.get(change.entity_id, change.entity_id)} ({change.entity_id})"
    return (
        f"conflict: {who}, {_field_name(change, subjects)}: corrected to «{change.new_value}» on "
        f"{change.created_at:%Y-%m-%d}, but upstream has since changed it to «{now}»; upstream's "
        "value stands. Export the class list again (otmetka lists export --class …): leave the "
        "cell to accept it, or correct it again and import the list"
    )


def conflict_lines() -> list[str]:
    conflicts = stored.changes((stored.CONFLICT,))
    if not conflicts:
        return []
    now = _now_of_people(conflicts)
    subjects = {s.id: s.name for s in q.subjects()}
    names: dict[str, str] = {}
    for entity in (stored.STUDENT, stored.GUARDIAN):
        names |= stored.person_names(entity, [c.entity_id for c in conflicts if c.entity == entity])
    lines = []
    for change in conflicts:
        state = now.get(change.key) if change.subject_id is None else _now_of_group(change)
        value = state.value if state and state.alive else "(deleted)"
        lines.append(_conflict_line(change, value, names, subjects))
    return lines


def status_lines() -> list[str]:
    """For `otmetka status`: corrections waiting for upstream, and every conflict."""
    counts = stored.state_counts()
    if not counts:
        return ["local corrections: none"]
    head = (
        f"local corrections: {counts.get(stored.PENDING, 0)} waiting for upstream, "
        f"{counts.get(stored.CONFIRMED, 0)} confirmed, {counts.get(stored.CONFLICT, 0)} conflicts"
    )
    return [head, *conflict_lines()]
