"""OneRoster 1.1 and 1.2 CSV bundles: the mapping to the journal, header and encoding quirks,
bulk and delta, exports as other systems write them (no homeroom classes, empty grades,
1.2 names) imported with warnings, and errors that name the CSV file, row and column with
nothing applied."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from otmetka.daemon.core.config import Config
from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.exchange import oneroster, oneroster_document
from otmetka.daemon.exchange.inbox import Inbox
from otmetka.daemon.exchange.reader import BatchError
from otmetka.daemon.lists import export as lists_export
from otmetka.db import close_database, migrate, models, open_database
from tests.support.oneroster_bundles import (
    YEAR,
    Rows,
    as_12,
    bundle_11,
    delta_12,
    minimal_11,
    real_11,
    real_12,
    table,
    write_folder,
    write_quirky_zip,
    write_zip,
)
from tests.support.sync_support import journal_dump


def _import(config: Config, path: Path) -> Any:
    return oneroster.import_bundle(
        path, MarkRules(), tz=config.school.tz, school_id=config.school.school_id
    )


def _data(model: Any, ident: str) -> dict[str, Any]:
    row = model.get_by_id(ident)
    return {k: v for k, v in row.__data__.items() if k not in ("updated_at",)}


# --- mapping --------------------------------------------------------------------------------


def test_a_11_bundle_maps_to_the_journal(config: Config, file_db: Path, tmp_path: Path) -> None:
    result = _import(config, write_folder(tmp_path / "roster", bundle_11()))
    assert result.records > 30
    assert models.School.get_by_id("sch-7").name == "МБОУ СОШ № 7"
    assert not models.School.get_or_none(models.School.id == "dist-1")
    assert _data(models.Period, "t1")["kind"] == "quarter"
    assert _data(models.Period, "t2")["kind"] == "half"
    klass = _data(models.ClassUnit, "k-7b")
    assert (klass["grade"], klass["letter"], klass["academic_year_id"]) == (7, "Б", "y2027")
    assert klass["class_teacher_id"] == "u-t1"
    assert json.loads(models.Teacher.get_by_id("u-t1").roles) == ["teacher", "class_teacher"]
    assert models.Student.get_by_id("u-s3").class_unit_id == "k-7a"
    assert models.Student.get_by_id("u-s1").last_name == "Иванова-Крылова"
    groups = {g.id: (g.kind, json.loads(g.class_unit_ids), g.subject_id) for g in models.Group}
    assert groups == {
        "k-7b": ("whole_class", ["k-7b"], None),
        "k-7a": ("whole_class", ["k-7a"], None),
        "sec-7b": ("whole_class", ["k-7b"], "c-alg"),
        "sec-str": ("stream", ["k-7a", "k-7b"], "c-alg"),
    }
    links = {(link.guardian_id, link.student_id, link.relation, link.is_legal_representative)
             for link in models.GuardianLink}  # fmt: skip
    assert links == {("u-g1", "u-s1", "other", True), ("u-g1", "u-s2", "other", True),
                     ("u-g2", "u-s3", "other", False)}  # fmt: skip
    assert models.Guardian.get_by_id("u-g1").email == "maria@example.ru"
    assert str(_data(models.Membership, "e6")["date_from"]) == "2026-09-01"  # the term's start
    assert str(_data(models.Membership, "e5")["date_to"]) == "2026-12-28"
    assert models.Membership.select().count() == 7  # teachers are not members
    assert _data(models.Work, "li-1")["kind"] == "cat-kr"
    assert _data(models.Work, "li-2")["kind"] == oneroster_document.DEFAULT_WORK_KIND
    marks = {m.id: (m.raw_text, m.scale, m.value, m.subject_id, str(m.date)) for m in models.Mark}
    assert marks == {
        "r1": ("5", "five", 5.0, "c-alg", "2026-09-15"),
        "r2": ("4-", "five", 4.0, "c-alg", "2026-09-14"),
        "r3": ("зачёт", "pass_fail", None, "c-alg", "2026-09-20"),
        "r4": ("85", "custom", 85.0, "c-alg", "2026-09-20"),
    }
    assert models.Mark.get_by_id("r1").comment == "Молодец"


def test_a_12_zip_with_quirks_gives_the_same_journal(
    config: Config, file_db: Path, tmp_path: Path
) -> None:
    _import(config, write_folder(tmp_path / "roster", bundle_11()))
    plain = journal_dump()
    close_database()
    (config.database_path() or Path()).unlink()
    open_database(config.database.url)
    migrate()
    bundle = write_quirky_zip(tmp_path / "roster-1.2.zip", as_12(bundle_11()))
    result = _import(config, bundle)
    assert result.origin == "roster-1.2.zip"
    assert journal_dump() == plain


def test_a_delta_updates_deletes_and_keeps_what_it_does_not_carry(
    config: Config, file_db: Path, tmp_path: Path
) -> None:
    _import(config, write_folder(tmp_path / "bulk", bundle_11()))
    later = "2026-09-20T09:00:00Z"
    full = bundle_11()
    users = {row["sourcedId"]: row for row in full["users.csv"]}
    renamed = {**users["u-s2"], "familyName": "Иванов-Петров", "dateLastModified": later}
    parent = {**users["u-g1"], "agentSourcedIds": "u-s1", "dateLastModified": later}
    results = {row["sourcedId"]: row for row in full["results.csv"]}
    delta = {
        "manifest.csv": table("propertyName,value", "oneroster.version,1.1",
                              "file.users,delta", "file.results,delta"),
        "users.csv": [renamed, parent],
        "results.csv": [
            {**results["r1"], "score": "4", "dateLastModified": later},
            {**results["r2"], "status": "tobedeleted", "dateLastModified": later},
        ],
    }  # fmt: skip
    _import(config, write_folder(tmp_path / "delta", delta))
    student = models.Student.get_by_id("u-s2")
    assert (student.last_name, student.class_unit_id) == ("Иванов-Петров", "k-7b")
    assert models.Mark.get_by_id("r1").raw_text == "4"
    assert models.Mark.get_by_id("r2").deleted_at is not None
    live = {link.id for link in models.GuardianLink if link.deleted_at is None}
    assert live == {"u-g1~u-s1", "u-g2~u-s3"}
    log = models.ImportLog.select().order_by(models.ImportLog.id.desc()).first()
    assert log.mode == "delta" and log.source == "oneroster"


def test_an_unchanged_bundle_is_not_applied_twice(
    config: Config, file_db: Path, tmp_path: Path
) -> None:
    folder = write_folder(tmp_path / "roster", bundle_11())
    _import(config, folder)
    assert _import(config, folder).already_imported


# --- errors ---------------------------------------------------------------------------------


def _broken(edit: Any) -> dict[str, Rows]:
    bundle = bundle_11()
    edit(bundle)
    return bundle


def _set(file: str, ident: str, **values: str) -> Any:
    def edit(bundle: dict[str, Rows]) -> None:
        row = next(r for r in bundle[file] if r.get("sourcedId") == ident)
        row.update(values)

    return edit


def _drop_column(file: str, column: str) -> Any:
    def edit(bundle: dict[str, Rows]) -> None:
        for row in bundle[file]:
            row.pop(column)

    return edit


_ERRORS = [
    (_set("results.csv", "r2", score="abc"),
     "results.csv row 3 (sourcedId 'r2'), column 'score': 'abc' is not a mark"),
    (_set("results.csv", "r1", studentSourcedId="u-zz"),
     "results.csv row 2 (sourcedId 'r1'), column 'studentSourcedId': refers to student 'u-zz'"),
    (_set("enrollments.csv", "e5", endDate="2026-08-01"),
     "enrollments.csv row 6 (sourcedId 'e5'): Value error, 'date_to' (2026-08-01) is before"),
    (_set("users.csv", "u-s1", givenName=""),
     "users.csv row 3 (sourcedId 'u-s1'), column 'givenName': "),
    (_set("academicSessions.csv", "t1", startDate="2026-13-45"),
     "academicSessions.csv row 3 (sourcedId 't1'), column 'startDate': '2026-13-45' is not a date"),
    (_set("users.csv", "u-s1", dateLastModified="вчера"),
     "users.csv row 3 (sourcedId 'u-s1'), column 'dateLastModified': 'вчера' is not a date"),
    (_set("users.csv", "u-g2", agentSourcedIds="u-nobody"),
     "users.csv row 7 (sourcedId 'u-g2'), column 'agentSourcedIds': 'u-nobody' is not a student"),
    (_drop_column("users.csv", "familyName"),
     "users.csv row 1: column 'familyName' is missing"),
]  # fmt: skip


@pytest.mark.parametrize(("edit", "words"), _ERRORS)
def test_errors_name_file_row_and_column_and_nothing_is_applied(
    edit: Any, words: str, config: Config, file_db: Path, tmp_path: Path
) -> None:
    before = journal_dump()
    folder = write_folder(tmp_path / "roster", _broken(edit))
    with pytest.raises(BatchError) as error:
        _import(config, folder)
    assert f"roster: {words}" in str(error.value)
    assert "nothing from this file was imported" in str(error.value)
    assert journal_dump() == before and models.ImportLog.select().count() == 0


def test_a_folder_without_oneroster_files_is_refused(
    config: Config, file_db: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "class.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(BatchError, match="no OneRoster files found"):
        _import(config, folder)


def test_bytes_that_are_no_known_encoding_are_refused(
    config: Config, file_db: Path, tmp_path: Path
) -> None:
    folder = write_folder(tmp_path / "roster", bundle_11())
    (folder / "courses.csv").write_bytes(b"sourcedId,title\r\nc-1,\x98\r\n")
    with pytest.raises(BatchError, match=r"courses\.csv: byte 21 is neither UTF-8 nor"):
        _import(config, folder)


# --- exports as other systems write them -------------------------------------------------

NO_CLASS_7 = f"oneroster-no-class-{YEAR}-7"
NO_CLASS_8 = f"oneroster-no-class-{YEAR}-8"
NO_CLASS = f"oneroster-no-class-{YEAR}"


def _fresh_database(config: Config) -> None:
    close_database()
    (config.database_path() or Path()).unlink()
    open_database(config.database.url)
    migrate()


def test_an_export_without_homerooms_or_grades_is_placed_with_a_warning_each(
    config: Config, file_db: Path, tmp_path: Path
) -> None:
    result = _import(config, write_folder(tmp_path / "real", real_11()))
    classes = {c.id: (c.name, c.grade, c.academic_year_id) for c in models.ClassUnit}
    assert classes == {
        NO_CLASS_7: ("7 без класса", 7, YEAR),
        NO_CLASS_8: ("8 без класса", 8, YEAR),
        NO_CLASS: ("без класса", 0, YEAR),  # the club nobody is enrolled in
    }
    homes = {s.id: s.class_unit_id for s in models.Student}
    assert homes == {
        "usr-222-66778900": NO_CLASS_7,  # their own grades
        "usr-222-66778901": NO_CLASS_7,
        "usr-222-66778902": NO_CLASS_8,
        "usr-222-66778903": NO_CLASS_7,  # no grades: the grade of the course they are in
    }
    groups = {g.id: (g.kind, json.loads(g.class_unit_ids)) for g in models.Group}
    assert groups == {
        "cls-222-123478": ("whole_class", [NO_CLASS_7]),
        "cls-222-123479": ("whole_class", [NO_CLASS_8]),
        "cls-222-123480": ("stream", [NO_CLASS_7, NO_CLASS_8]),
        "cls-222-123481": ("whole_class", [NO_CLASS]),
    }
    assert {m.id: m.raw_text for m in models.Mark} == {"res-222-1": "5", "res-222-2": "4"}
    assert result.warnings == [
        *(
            f"real: users.csv row {n} (sourcedId 'usr-222-6677890{n - 3}'), column "
            f"'sourcedId': the student has no homeroom enrollment; placed in «{name}» "
            "(its grade): enrol the student in a homeroom class in the export, or move the "
            "student in the school's system"
            for n, name in ((3, "7 без класса"), (4, "7 без класса"), (5, "8 без класса"),
                            (6, "7 без класса"))
        ),
        "real: classes.csv row 5 (sourcedId 'cls-222-123481'), column 'sourcedId': no student "
        "of this class is in a class; shown under «без класса» until its students are enrolled",
    ]  # fmt: skip
    summary = result.summary()
    assert "real: 5 warnings (imported all the same):" in summary
    assert "real: note: demographics.csv: not a file otmetka reads, ignored" in summary
    assert "users.csv: columns otmetka does not read, ignored: metadata.ext.snils" in summary


def test_the_no_class_groups_are_in_the_class_lists(
    config: Config, file_db: Path, tmp_path: Path
) -> None:
    _import(config, write_folder(tmp_path / "real", real_11()))
    exported = lists_export.export_list(config, class_name="7 без класса", out=None)
    assert exported.students == 3


def test_a_12_export_with_its_header_names_reads_as_the_11_one(
    config: Config, file_db: Path, tmp_path: Path
) -> None:
    _import(config, write_folder(tmp_path / "real-11", real_11()))
    plain = journal_dump()
    _fresh_database(config)
    result = _import(config, write_zip(tmp_path / "real-12.zip", real_12()))
    assert journal_dump() == plain
    assert models.Student.get_by_id("usr-222-66778900").first_name == "Сергей"
    assert len(result.warnings) == 5
    notes = "\n".join(result.notes)
    for ignored in ("demographics.csv", "userProfiles.csv", "metadata.ru.inn", "metadata.ext"):
        assert ignored in notes
    for read in ("userMasterIdentifier", "preferredFirstName", "pronouns", "academicSession"):
        assert read not in notes


def test_a_delta_places_only_its_new_student(config: Config, file_db: Path, tmp_path: Path) -> None:
    _import(config, write_zip(tmp_path / "real-12.zip", real_12()))
    before = {s.id: s.class_unit_id for s in models.Student}
    result = _import(config, write_folder(tmp_path / "delta", delta_12()))
    after = {s.id: s.class_unit_id for s in models.Student}
    assert after == {**before, "usr-222-66778904": NO_CLASS_8}  # by the class it is in
    assert [w.split(": the student")[0] for w in result.warnings] == [
        "delta: users.csv row 2 (sourcedId 'usr-222-66778904'), column 'sourcedId'"
    ]
    club = models.Group.get_by_id("cls-222-123481")
    assert (club.name, json.loads(club.class_unit_ids)) == ("Кружок «Палитра»", [NO_CLASS])
    assert models.Membership.get_by_id("enr-3").deleted_at is not None
    assert models.ImportLog.select().order_by(models.ImportLog.id.desc()).first().mode == "delta"


def test_a_minimal_bundle_places_by_the_only_class_of_the_grade(
    config: Config, file_db: Path, tmp_path: Path
) -> None:
    result = _import(config, write_folder(tmp_path / "min", minimal_11()))
    assert {s.id: s.class_unit_id for s in models.Student} == {"u-1": "cls-5a", "u-2": "cls-5a"}
    assert models.ClassUnit.get_by_id("cls-5a").grade == 5
    assert len(result.warnings) == 1
    assert "'u-2'), column 'sourcedId': the student has no homeroom enrollment; placed in " \
        "'5А' (the only homeroom class of grade 5)" in result.warnings[0]  # fmt: skip


def test_two_classes_of_the_grade_leave_the_student_in_the_grades_no_class_group(
    config: Config, file_db: Path, tmp_path: Path
) -> None:
    bundle = _broken(_set("enrollments.csv", "e3", classSourcedId="sec-7b"))
    result = _import(config, write_folder(tmp_path / "roster", bundle))
    assert models.Student.get_by_id("u-s3").class_unit_id == "oneroster-no-class-y2027-7"
    assert models.ClassUnit.get_by_id("k-7a").grade == 7
    assert ["'u-s3'" in w and "«7 без класса» (its grade)" in w for w in result.warnings] == [True]


_GRADES = [
    ({"title": "Класс коррекции"}, {}, 7, ""),  # the grades of its students
    ({"title": "Класс коррекции", "courseSourcedId": "c-alg"}, {"grades": "06"}, 6, ""),
    ({"title": "Класс 7-А"}, {}, 7, ""),
    ({"title": "Класс коррекции"}, {"u-s3": ""}, 0, "cannot tell the grade"),
]


@pytest.mark.parametrize(("klass", "other", "grade", "warning"), _GRADES)
def test_a_class_with_empty_grades_takes_them_from_course_title_or_students(
    klass: dict[str, str],
    other: dict[str, str],
    grade: int,
    warning: str,
    config: Config,
    file_db: Path,
    tmp_path: Path,
) -> None:
    bundle = _broken(_set("classes.csv", "k-7a", grades="", **klass))
    if "grades" in other:
        _set("courses.csv", "c-alg", grades=other["grades"])(bundle)
    if "u-s3" in other:
        _set("users.csv", "u-s3", grades="")(bundle)
    result = _import(config, write_folder(tmp_path / "roster", bundle))
    assert models.ClassUnit.get_by_id("k-7a").grade == grade
    where = "roster: classes.csv row 3 (sourcedId 'k-7a'), column 'grades': "
    assert [w[: len(where + warning)] for w in result.warnings] == (
        [where + warning] if warning else []
    )


def test_what_a_real_export_still_gets_wrong_is_refused_cell_by_cell(
    config: Config, file_db: Path, tmp_path: Path
) -> None:
    bundle = real_12()
    bundle["results.csv"][0]["textScore"] = "отл"
    with pytest.raises(BatchError) as error:
        _import(config, write_zip(tmp_path / "real-12.zip", bundle))
    assert (
        "real-12.zip: results.csv row 2 (sourcedId 'res-222-1'), column 'textScore': 'отл' "
        "is not a mark" in str(error.value)
    )
    assert models.ImportLog.select().count() == 0 and models.ClassUnit.select().count() == 0


@pytest.mark.parametrize(
    "text",
    ["2026-08-25T10:00:00.000Z", "2026-08-25T10:00:00Z", "2026-08-25T13:00:00+03:00",
     "2026-08-25 10:00:00", "2026-08-25T10:00:00.5z", "25.08.2026 10:00"],
)  # fmt: skip
def test_date_last_modified_is_read_as_exports_write_it(text: str) -> None:
    moment = oneroster_document.parse_moment(text)
    assert moment is not None
    utc = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    assert utc.astimezone(dt.UTC).replace(microsecond=0) == dt.datetime(
        2026, 8, 25, 10, tzinfo=dt.UTC
    )


# --- through the inbox ----------------------------------------------------------------------


def test_bundles_in_the_inbox_go_to_done_or_quarantine(config: Config, file_db: Path) -> None:
    folder = config.paths.inbox_dir
    folder.mkdir()
    write_quirky_zip(folder / "1-roster.zip", as_12(bundle_11()))
    write_folder(folder / "2-fixes", _broken(_set("results.csv", "r1", score="отл")))
    box = Inbox(config, MarkRules())
    box.tick(now=0.0)
    outcomes = box.tick(now=100.0)
    assert [(o.name, o.ok) for o in outcomes] == [("1-roster.zip", True), ("2-fixes", False)]
    assert (folder / "done" / "1-roster.zip").is_file()
    assert (folder / "quarantine" / "2-fixes" / "results.csv").is_file()
    note = (folder / "quarantine" / "2-fixes.error.txt").read_text(encoding="utf-8")
    assert "2-fixes: results.csv row 2 (sourcedId 'r1'), column 'score': 'отл'" in note
    assert models.Mark.select().count() == 4


def test_the_inbox_summary_carries_the_warnings_and_notes(config: Config, file_db: Path) -> None:
    folder = config.paths.inbox_dir
    folder.mkdir()
    write_zip(folder / "real.zip", real_11())
    box = Inbox(config, MarkRules())
    box.tick(now=0.0)
    [outcome] = box.tick(now=100.0)
    assert outcome.ok and (folder / "done" / "real.zip").is_file()
    lines = outcome.message.splitlines()
    assert lines[0].startswith("real.zip: imported ")
    assert lines[1] == "real.zip: 5 warnings (imported all the same):"
    assert "placed in «7 без класса»" in lines[2]
    assert lines[-1].startswith("real.zip: note: users.csv: columns otmetka does not read")
