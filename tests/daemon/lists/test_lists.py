"""Class lists round-trip: export with drop-downs, corrections checked cell by cell and
applied through the importer (nothing on any error), queued for upstream, kept over
upstream resends, and reported as conflicts when upstream changes the same field."""

from __future__ import annotations

import datetime as dt
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from otmetka.daemon.cli import main
from otmetka.daemon.core.config import Config
from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.exchange import inbox
from otmetka.daemon.exchange.importer import import_document
from otmetka.daemon.lists.corrections import change_day
from otmetka.daemon.lists.export import safe_name, workbook
from otmetka.daemon.lists.layout import find_class, snapshot
from otmetka.daemon.lists.reading import ListError
from otmetka.daemon.lists.recording import ListImportResult, apply_list
from otmetka.daemon.lists.status import status_lines
from otmetka.db import lists as stored
from otmetka.db import models
from tests.support.analytics_factories import analytics_school
from tests.support.factories import change, envelope
from tests.support.sync_support import journal_dump

TODAY = dt.date(2026, 9, 16)
LATER = "2026-09-20T10:00:00+03:00"


def load(document: dict[str, Any] | None = None, origin: str = "school.json") -> None:
    import_document(document or analytics_school(), origin, MarkRules())


def delta(*changes: dict[str, Any], cursor: str = "c2") -> dict[str, Any]:
    return envelope(list(changes), mode="delta", cursor=cursor, school_id="sch-5")


def exported(tmp_path: Path, name: str = "5А.xlsx") -> Path:
    class_row = find_class("5А")
    path = tmp_path / name
    workbook(snapshot(class_row, TODAY), TODAY).save(path)
    return path


def edit(path: Path, cells: dict[tuple[str, str], Any], name: str = "edited.xlsx") -> Path:
    book = load_workbook(path)
    for (sheet, cell), value in cells.items():
        book[sheet][cell] = value
    target = path.with_name(name)
    book.save(target)
    return target


def apply(path: Path) -> ListImportResult:
    return apply_list(path, MarkRules(), today=TODAY, author="test", school_id="sch-5")


def guardian(gid: str) -> models.Guardian:
    return models.Guardian.get_by_id(gid)


def student(sid: str) -> models.Student:
    return models.Student.get_by_id(sid)


def changes(state: str | None = None) -> list[stored.Change]:
    states = (state,) if state else ("pending", "confirmed", "conflict", "superseded", "resolved")
    return stored.changes(states)


def outbox() -> list[dict[str, Any]]:
    rows = models.OutboxItem.select().where(models.OutboxItem.kind == "local_change")
    return [json.loads(row.payload) for row in rows]


@pytest.fixture
def school(memory_db: None) -> None:
    load()


# --- export -------------------------------------------------------------------------------

STUDENTS, GUARDIANS = "Ученики", "Родители"


def test_export_lists_students_guardians_contacts_delivery_and_groups(
    school: None, tmp_path: Path
) -> None:
    book = load_workbook(exported(tmp_path))
    assert book.sheetnames[:2] == [STUDENTS, GUARDIANS]
    assert book["Справочник"].sheet_state == "hidden" and book["otmetka"].sheet_state == "hidden"
    rows = list(book[STUDENTS].iter_rows(values_only=True))
    assert rows[0] == (
        "Код ученика (не менять)",
        "Фамилия",
        "Имя",
        "Отчество",
        "Дата рождения",
        "Английский язык: группа",
    )
    assert [r[:3] for r in rows[1:]] == [  # on roll only, by name: s-d left
        ("s-a", "Алексеев", "Антон"),
        ("s-b", "Борисова", "Белла"),
        ("s-c", "Васильев", "Виктор"),
    ]
    assert [r[5] for r in rows[1:]] == [
        "5А английский, 1 подгруппа",
        "5А английский, 1 подгруппа",
        "5А английский, 2 подгруппа",
    ]
    parents = list(book[GUARDIANS].iter_rows(values_only=True))
    assert parents[0][4:7] == ("Телефон", "Эл. почта", "Доставка журнала")
    assert [(r[0], r[6], r[7]) for r in parents[1:]] == [
        ("g-a", "электронно", "Алексеев Антон (мать)"),
        ("g-b", "на бумаге", "Борисова Белла (мать)"),
        ("g-c", "электронно", "Васильев Виктор (мать)"),
    ]


def test_export_has_drop_down_lists_of_the_allowed_values(school: None, tmp_path: Path) -> None:
    book = load_workbook(exported(tmp_path))
    lists_sheet = book["Справочник"]

    def allowed(sheet: str) -> dict[str, list[str]]:
        found = {}
        for rule in book[sheet].data_validations.dataValidation:
            assert rule.type == "list" and rule.showErrorMessage
            target = rule.formula1.split("!")[1].replace("$", "")
            first, last = target.split(":")
            cells = lists_sheet[first:last]
            found[str(rule.sqref)] = [row[0].value for row in cells]
        return found

    assert allowed(GUARDIANS) == {"G2:G4": ["электронно", "на бумаге"]}
    assert allowed(STUDENTS) == {
        "F2:F4": ["5А английский, 1 подгруппа", "5А английский, 2 подгруппа"]
    }


def test_cli_export_writes_an_owner_only_file(
    runner: CliRunner, config_file: Path, tmp_path: Path
) -> None:
    source = tmp_path / "school.json"
    source.write_text(json.dumps(analytics_school(), ensure_ascii=False), encoding="utf-8")
    config = ["--config", str(config_file)]
    assert runner.invoke(main, [*config, "sync", "--file", str(source)]).exit_code == 0
    target = tmp_path / "out" / "5А.xlsx"
    result = runner.invoke(
        main, [*config, "lists", "export", "--class", "5А", "--out", str(target)]
    )
    assert result.exit_code == 0, result.output
    assert "3 students, 3 guardians, 1 split subjects" in result.output
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    wrong = runner.invoke(main, [*config, "lists", "export", "--class", "9Я"])
    assert wrong.exit_code == 1 and "no class named «9Я»; classes: 5А" in wrong.output
    # The teacher's edit comes back through `lists import`.
    edited = edit(target, {(GUARDIANS, "E2"): "+7 912 345-67-89"})
    result = runner.invoke(main, [*config, "lists", "import", str(edited)])
    assert result.exit_code == 0, result.output
    assert "1 corrections recorded (0 students, 1 guardians)" in result.output
    status = runner.invoke(main, [*config, "status"])
    assert "local corrections: 1 waiting for upstream, 0 confirmed, 0 conflicts" in status.output


# --- import: corrections ------------------------------------------------------------------


def test_an_unchanged_list_changes_nothing(school: None, tmp_path: Path) -> None:
    before = journal_dump()
    result = apply(exported(tmp_path))
    assert result.corrections == 0 and "nothing changed" in result.summary()
    assert journal_dump() == before and changes() == [] and outbox() == []


def test_corrections_are_recorded_applied_and_queued(school: None, tmp_path: Path) -> None:
    path = edit(
        exported(tmp_path),
        {
            (STUDENTS, "D2"): "Петрович",  # s-a's patronymic
            (STUDENTS, "E3"): "14.03.2015",  # s-b's birth date, typed as text
            (GUARDIANS, "E3"): "8 (912) 345-67-89",  # g-b's phone
            (GUARDIANS, "G3"): "электронно",  # g-b leaves paper
            (GUARDIANS, "F4"): "vera@example.ru",
        },
    )
    result = apply(path)
    assert (result.corrections, result.students, result.guardians) == (5, 2, 2)
    assert student("s-a").middle_name == "Петрович"
    assert student("s-b").birth_date == dt.date(2015, 3, 14)
    assert guardian("g-b").phone == "8 (912) 345-67-89"
    assert guardian("g-b").delivery == "electronic"
    assert guardian("g-c").email == "vera@example.ru"
    recorded = {(c.entity, c.entity_id, c.field): (c.old_value, c.new_value) for c in changes()}
    assert recorded == {
        ("student", "s-a", "middle_name"): ("", "Петрович"),
        ("student", "s-b", "birth_date"): ("", "2015-03-14"),
        ("guardian", "g-b", "phone"): ("", "8 (912) 345-67-89"),
        ("guardian", "g-b", "delivery"): ("paper", "electronic"),
        ("guardian", "g-c", "email"): ("", "vera@example.ru"),
    }
    assert {c.state for c in changes()} == {"pending"}
    queued = {(p["entity"], p["id"], p["field"]): p for p in outbox()}
    assert queued[("guardian", "g-b", "delivery")]["value"] == "electronic"
    assert queued[("guardian", "g-b", "delivery")]["previous"] == "paper"
    assert queued[("guardian", "g-b", "delivery")]["school_id"] == "sch-5"
    # The guardian now on electronic delivery has a page; the change is marked for rebuild.
    from otmetka.site_builder.pages.audience import people_with_pages

    assert ("guardian", "g-b") in people_with_pages(TODAY)
    assert models.DirtyPerson.get_or_none(person_kind="guardian", person_id="g-b") is not None


def test_a_group_change_ends_the_old_membership_and_starts_the_new(
    school: None, tmp_path: Path
) -> None:
    path = edit(exported(tmp_path), {(STUDENTS, "F3"): "5А английский, 2 подгруппа"})
    assert apply(path).corrections == 1
    (made,) = changes()
    assert (made.field, made.old_value, made.new_value) == ("group:eng", "g-eng-1", "g-eng-2")
    day = change_day(made, dt.date(2026, 9, 1))
    rows = {
        r.group_id: r
        for r in stored.memberships_of(["s-b"], ["g-eng-1", "g-eng-2"])
        if not r.deleted
    }
    assert rows["g-eng-1"].date_to == day - dt.timedelta(days=1)
    assert rows["g-eng-2"].date_from == day and rows["g-eng-2"].date_to is None
    assert rows["g-eng-2"].id.startswith(stored.LOCAL_ID_PREFIX)
    (payload,) = outbox()
    assert (payload["field"], payload["subject_id"], payload["value"]) == (
        "group",
        "eng",
        "g-eng-2",
    )
    # Exported again on that day, the list shows the new group: nothing left to apply.
    again = tmp_path / "again.xlsx"
    workbook(snapshot(find_class("5А"), day), day).save(again)
    assert load_workbook(again)[STUDENTS]["F3"].value == "5А английский, 2 подгруппа"
    result = apply_list(again, MarkRules(), today=day, author="test", school_id="sch-5")
    assert result.corrections == 0


# --- import: every wrong cell named, nothing applied --------------------------------------


def test_wrong_cells_are_named_and_nothing_is_applied(school: None, tmp_path: Path) -> None:
    path = edit(
        exported(tmp_path),
        {
            (STUDENTS, "B2"): "",  # surname emptied
            (STUDENTS, "D3"): "Петрович",  # a good change: must not be applied either
            (STUDENTS, "E4"): "31.02.2014",
            (STUDENTS, "F2"): "3 подгруппа",
            (GUARDIANS, "E2"): "позвонить маме",
            (GUARDIANS, "F3"): "vera@",
            (GUARDIANS, "G4"): "почтой",
            (STUDENTS, "A5"): "s-x",
            (STUDENTS, "B5"): "Новенький",
        },
    )
    before = journal_dump()
    with pytest.raises(ListError) as raised:
        apply(path)
    message = str(raised.value)
    for where in (
        "лист «Ученики», ячейка B2: пусто",
        "лист «Ученики», ячейка E4: «31.02.2014» — не дата",
        "лист «Ученики», ячейка F2: «3 подгруппа» — такой группы нет",
        "лист «Ученики», ячейка A5: кода «s-x» нет в классе 5А",
        "лист «Родители», ячейка E2: «позвонить маме» — не номер телефона",
        "лист «Родители», ячейка F3: «vera@» — не адрес электронной почты",
        "лист «Родители», ячейка G4: «почтой» — выберите из списка",
    ):
        assert where in message
    assert "ничего из файла не применено" in message
    assert journal_dump() == before and changes() == [] and outbox() == []


def test_a_moved_column_or_a_foreign_file_is_refused(school: None, tmp_path: Path) -> None:
    moved = edit(exported(tmp_path), {(STUDENTS, "C1"): "Отчество", (STUDENTS, "D1"): "Имя"})
    with pytest.raises(ListError, match="ячейка C1: заголовок «Отчество» вместо «Имя»"):
        apply(moved)
    foreign = tmp_path / "foreign.xlsx"
    from openpyxl import Workbook

    Workbook().save(foreign)
    with pytest.raises(ListError, match="это не список класса, выгруженный otmetka"):
        apply(foreign)
    broken = tmp_path / "broken.xlsx"
    broken.write_text("not a spreadsheet")
    with pytest.raises(ListError, match="не читается как таблица XLSX"):
        apply(broken)


# --- the inbox ----------------------------------------------------------------------------


def _take_all(config: Config) -> list[inbox.InboxOutcome]:
    box = inbox.Inbox(config, MarkRules())
    box.tick(now=0.0)
    return box.tick(now=1000.0)


def test_a_list_dropped_into_the_inbox_is_applied_or_quarantined(
    config: Config, file_db: Path, tmp_path: Path
) -> None:
    load()
    good = edit(exported(tmp_path), {(GUARDIANS, "E2"): "+7 912 345-67-89"})
    bad = edit(exported(tmp_path), {(STUDENTS, "E3"): "вчера"}, name="bad.xlsx")
    folder = config.paths.inbox_dir
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "1-good.xlsx").write_bytes(good.read_bytes())
    (folder / "2-bad.xlsx").write_bytes(bad.read_bytes())
    outcomes = _take_all(config)
    assert [(o.name, o.ok) for o in outcomes] == [("1-good.xlsx", True), ("2-bad.xlsx", False)]
    assert (folder / "done" / "1-good.xlsx").is_file()
    assert guardian("g-a").phone == "+7 912 345-67-89"
    note = (folder / "quarantine" / "2-bad.xlsx.error.txt").read_text(encoding="utf-8")
    assert "лист «Ученики», ячейка E3: «вчера» — не дата" in note
    assert student("s-b").birth_date is None


# --- upstream afterwards ------------------------------------------------------------------


def _corrected_phone(tmp_path: Path) -> None:
    apply(edit(exported(tmp_path), {(GUARDIANS, "E2"): "+7 912 345-67-89"}))


def _g_a(**data: Any) -> dict[str, Any]:
    base = {"last_name": "Алексеева", "first_name": "Алла", "delivery": "electronic", "phone": ""}
    return {**base, **data}


def test_a_resend_of_the_old_row_does_not_undo_the_correction(school: None, tmp_path: Path) -> None:
    _corrected_phone(tmp_path)
    load(analytics_school(cursor="c-again"), origin="again.json")  # the same rows, resent
    assert guardian("g-a").phone == "+7 912 345-67-89"
    assert [c.state for c in changes()] == ["pending"]


def test_upstream_changing_another_field_keeps_both(school: None, tmp_path: Path) -> None:
    _corrected_phone(tmp_path)
    load(delta(change("guardian", "g-a", _g_a(email="alla@example.ru"), updated_at=LATER)))
    row = guardian("g-a")
    assert (row.phone, row.email) == ("+7 912 345-67-89", "alla@example.ru")
    (pending,) = changes("pending")
    assert pending.base_updated_at.startswith("2026-09-20T07:00:00")


def test_upstream_taking_the_correction_confirms_it(school: None, tmp_path: Path) -> None:
    _corrected_phone(tmp_path)
    load(delta(change("guardian", "g-a", _g_a(phone="+7 912 345-67-89"), updated_at=LATER)))
    assert [c.state for c in changes()] == ["confirmed"]
    # Later changes upstream are upstream's business: no conflict.
    newer = "2026-09-25T10:00:00+03:00"
    load(delta(change("guardian", "g-a", _g_a(phone="+7 900"), updated_at=newer), cursor="c3"))
    assert [c.state for c in changes()] == ["confirmed"] and guardian("g-a").phone == "+7 900"


def test_upstream_changing_the_same_field_is_a_conflict_in_status(
    school: None, config: Config, tmp_path: Path
) -> None:
    _corrected_phone(tmp_path)
    load(delta(change("guardian", "g-a", _g_a(phone="+7 495 000-00-00"), updated_at=LATER)))
    assert guardian("g-a").phone == "+7 495 000-00-00"  # upstream's value stands
    (conflict,) = changes("conflict")
    assert conflict.new_value == "+7 912 345-67-89"  # the correction is kept, not lost
    lines = status_lines()
    assert lines[0] == "local corrections: 0 waiting for upstream, 0 confirmed, 1 conflicts"
    assert (
        "conflict: guardian Алексеева Алла (g-a), phone: corrected to «+7 912 345-67-89»"
        in (lines[1])
    )
    assert "upstream has since changed it to «+7 495 000-00-00»" in lines[1]
    # The teacher exports again and leaves upstream's value: the conflict is settled.
    result = apply(exported(tmp_path, "again.xlsx"))
    assert result.settled == 1 and [c.state for c in changes()] == ["resolved"]
    assert status_lines() == ["local corrections: 0 waiting for upstream, 0 confirmed, 0 conflicts"]


def test_a_correction_made_again_replaces_the_earlier_one(school: None, tmp_path: Path) -> None:
    _corrected_phone(tmp_path)
    apply(edit(exported(tmp_path, "second.xlsx"), {(GUARDIANS, "E2"): "+7 913 000-00-01"}))
    states = [(c.state, c.old_value, c.new_value) for c in changes()]
    assert states == [
        ("superseded", "", "+7 912 345-67-89"),
        ("pending", "", "+7 913 000-00-01"),  # still against upstream's value
    ]
    assert guardian("g-a").phone == "+7 913 000-00-01"


def test_a_group_correction_survives_an_upstream_resend(school: None, tmp_path: Path) -> None:
    apply(edit(exported(tmp_path), {(STUDENTS, "F3"): "5А английский, 2 подгруппа"}))
    load(analytics_school(cursor="c-again"), origin="again.json")  # resends m-g-eng-1-s-b
    (made,) = changes()
    assert made.state == "pending"
    day = change_day(made, dt.date(2026, 9, 1))
    live = [r for r in stored.memberships_of(["s-b"], ["g-eng-1", "g-eng-2"]) if not r.deleted]
    on_day = {
        r.group_id for r in live if r.date_from <= day and (r.date_to is None or day <= r.date_to)
    }
    assert on_day == {"g-eng-2"}


def test_file_names_of_a_class() -> None:
    assert safe_name("7Б/2") == "7Б_2"


def test_a_correction_that_cannot_hold_becomes_a_conflict_and_the_batch_goes_in(
    school: None, tmp_path: Path
) -> None:
    apply(edit(exported(tmp_path), {(STUDENTS, "F3"): "5А английский, 2 подгруппа"}))
    # Upstream removes the second subgroup and resends s-b's first membership as it was.
    membership = {"group_id": "g-eng-1", "student_id": "s-b", "from": "2026-09-01"}
    load(
        delta(
            change("group", "g-eng-2", op="delete", updated_at=LATER),
            change("membership", "m-g-eng-1-s-b", membership),
        )
    )
    assert models.Group.get_by_id("g-eng-2").deleted_at is not None  # the batch went in
    assert [c.state for c in changes()] == ["conflict"]
    live = [r for r in stored.memberships_of(["s-b"], ["g-eng-1"]) if not r.deleted]
    assert [(r.group_id, r.date_to) for r in live] == [("g-eng-1", None)]  # upstream's stands
