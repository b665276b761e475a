"""Tests of the demo school generator: valid exchange v1, deterministic, and realistic."""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from otmetka.daemon.demo import school
from otmetka.daemon.exchange import schema

AS_OF = dt.date(2026, 11, 27)  # a Friday in the 2nd quarter: the 1st quarter is over
TYPE_ORDER = [
    "school", "academic_year", "period", "subject", "work_kind", "attendance_code", "teacher",
    "class_unit", "holiday", "student", "guardian", "guardian_link", "group", "membership",
    "bell_slot", "timetable_entry", "lesson", "work", "mark", "attendance", "homework",
    "recommendation",
]  # fmt: skip

Doc = dict[str, Any]


class Index:
    """A document indexed by type and id, with its position in the change list."""

    def __init__(self, doc: Doc) -> None:
        self.doc = doc
        self.by: dict[str, dict[str, dict[str, Any]]] = collections.defaultdict(dict)
        self.position: dict[tuple[str, str], int] = {}
        for i, change in enumerate(doc["changes"]):
            self.by[change["type"]][change["id"]] = change["data"]
            self.position[(change["type"], change["id"])] = i

    def grade_of_student(self, student_id: str) -> int:
        return int(self.by["class_unit"][self.by["student"][student_id]["class_unit_id"]]["grade"])


@pytest.fixture(scope="module")
def doc() -> Doc:
    return school.generate_school(students=120, seed=7, as_of=AS_OF)


@pytest.fixture(scope="module")
def ix(doc: Doc) -> Index:
    return Index(doc)


@pytest.fixture(scope="module")
def big() -> Index:
    return Index(school.generate_school(students=300, seed=1, as_of=AS_OF))


def _digest(doc: Doc) -> str:
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


# --- determinism and format -----------------------------------------------------------------


def test_same_arguments_give_identical_output(doc: Doc) -> None:
    assert _digest(school.generate_school(students=120, seed=7, as_of=AS_OF)) == _digest(doc)


def test_output_does_not_depend_on_string_hashing() -> None:
    """Two processes with different PYTHONHASHSEED produce the same bytes."""
    code = (
        "import datetime, hashlib, json; from otmetka.daemon.demo import school; "
        "d = school.generate_school(60, 3, datetime.date(2026, 10, 5)); "
        "print(hashlib.sha256(json.dumps(d, ensure_ascii=False).encode()).hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "4242")
    }
    assert len(digests) == 1


def test_another_seed_gives_another_school(doc: Doc) -> None:
    other = school.generate_school(students=120, seed=8, as_of=AS_OF)
    assert _digest(other) != _digest(doc)
    assert [c["data"]["last_name"] for c in other["changes"] if c["type"] == "student"] != [
        c["data"]["last_name"] for c in doc["changes"] if c["type"] == "student"
    ]


def test_envelope(doc: Doc) -> None:
    header = {k: v for k, v in doc.items() if k != "changes"}
    assert header == {
        "format": "otmetka-exchange",
        "version": 1,
        "school_id": "demo-school",
        "tz": "Europe/Moscow",
        "mode": "full",
        "cursor": "demo-7-120",
        "generated_at": "2026-11-27T18:00:00+03:00",
    }
    schema.Envelope.model_validate(doc)


def test_every_change_validates(doc: Doc) -> None:
    for change in doc["changes"]:
        schema.CHANGE_ADAPTER.validate_python(change)
        assert change["op"] == "upsert"
        assert change["updated_at"].endswith("+03:00")
        assert change["updated_at"] <= doc["generated_at"], change["id"]


def test_ids_are_unique_per_type(doc: Doc) -> None:
    seen = collections.Counter((c["type"], c["id"]) for c in doc["changes"])
    assert [key for key, count in seen.items() if count > 1] == []


def test_types_come_in_dependency_order(doc: Doc) -> None:
    types = [c["type"] for c in doc["changes"]]
    order = [t for i, t in enumerate(types) if i == 0 or types[i - 1] != t]
    assert order == TYPE_ORDER


def _references(data: dict[str, Any], dotted: str) -> Iterator[str]:
    value: Any = data
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, list):
        yield from value
    elif value is not None:
        yield value


def test_every_reference_points_to_an_earlier_entity(ix: Index) -> None:
    checked = 0
    for source_type, fields in schema.REFERENCES.items():
        for source_id, data in ix.by[source_type].items():
            for dotted, target_type in fields.items():
                for target in _references(data, dotted):
                    where = ix.position.get((target_type, target))
                    assert where is not None, f"{source_type} {source_id}: {dotted}={target}"
                    assert where < ix.position[(source_type, source_id)]
                    checked += 1
    assert checked > 10_000


def test_write_exchange_file_is_compact_utf8(doc: Doc, tmp_path: Path) -> None:
    path = tmp_path / "demo.json"
    school.write_exchange_file(doc, path)
    data = path.read_bytes()
    assert data == json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    assert "Русский язык".encode() in data
    assert [p.name for p in tmp_path.iterdir()] == ["demo.json"]


def test_too_small_a_school_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 11"):
        school.generate_school(students=10, as_of=AS_OF)


@pytest.mark.parametrize("as_of", ["2026-09-01", "2026-10-30", "2027-01-05", "2027-07-15"])
def test_edges_of_the_year_still_validate(as_of: str) -> None:
    day = dt.date.fromisoformat(as_of)
    doc = school.generate_school(students=30, seed=2, as_of=day)
    schema.Envelope.model_validate(doc)
    years = [c["data"]["start"] for c in doc["changes"] if c["type"] == "academic_year"]
    assert years == ["2026-09-01"]  # the year whose September 1 is on or before as_of


# --- calendar --------------------------------------------------------------------------------


def test_periods_and_holidays(ix: Index) -> None:
    quarters = [p for p in ix.by["period"].values() if p["kind"] == "quarter"]
    assert [q["name"] for q in quarters] == [f"{n} четверть" for n in range(1, 5)]
    assert [p["kind"] for p in ix.by["period"].values()].count("year") == 1
    kinds = collections.Counter(h["kind"] for h in ix.by["holiday"].values())
    assert kinds["vacation"] == 4 and kinds["holiday"] >= 5 and kinds["short_day"] == 1
    first_grade = sorted(c for c, v in ix.by["class_unit"].items() if v["grade"] == 1)
    extra = [h for h in ix.by["holiday"].values() if h.get("class_unit_ids")]
    assert len(extra) == 1 and sorted(extra[0]["class_unit_ids"]) == first_grade
    assert extra[0]["start"].startswith("2027-02")
    names = " ".join(h["name"] for h in ix.by["holiday"].values())
    assert "Новогодние каникулы" in names and "День народного единства" in names


def test_lessons_cover_the_term_on_school_days_only(ix: Index) -> None:
    closed: set[str] = set()
    for h in ix.by["holiday"].values():
        if h["kind"] in ("vacation", "holiday") and not h.get("class_unit_ids"):
            day = dt.date.fromisoformat(h["start"])
            while day <= dt.date.fromisoformat(h["end"]):
                closed.add(day.isoformat())
                day += dt.timedelta(days=1)
    dates = sorted({lesson["date"] for lesson in ix.by["lesson"].values()})
    assert dates[0] == "2026-09-01"
    assert dates[-1] <= "2026-12-28" and dates[-1] >= "2026-12-21"  # end of the 2nd quarter
    assert all(dt.date.fromisoformat(d).weekday() < 5 for d in dates)
    assert not closed.intersection(dates)


def test_status_follows_as_of(ix: Index) -> None:
    for lesson in ix.by["lesson"].values():
        if lesson["status"] in ("held", "scheduled"):
            expected = "held" if lesson["date"] <= AS_OF.isoformat() else "scheduled"
            assert lesson["status"] == expected


# --- people ------------------------------------------------------------------------------------


def test_classes_one_to_eleven_with_class_teachers(ix: Index) -> None:
    classes = ix.by["class_unit"].values()
    assert sorted({c["grade"] for c in classes}) == list(range(1, 12))
    teachers = ix.by["teacher"]
    for c in classes:
        assert "class_teacher" in teachers[c["class_teacher_id"]]["roles"]
    assert len({c["class_teacher_id"] for c in classes}) == len(classes)
    roles = collections.Counter(tuple(t["roles"]) for t in teachers.values())
    assert roles[("head",)] == 1 and roles[("teacher", "deputy_head")] == 1
    assert len(teachers) >= 12


def test_parallel_classes_scale_with_size() -> None:
    doc = school.generate_school(students=1000, seed=1, as_of=dt.date(2026, 9, 14))
    classes = [c["data"] for c in doc["changes"] if c["type"] == "class_unit"]
    assert 35 <= len(classes) <= 45
    assert {"1А", "1Б", "5В"} <= {c["name"] for c in classes}


def test_names_are_russian_and_gendered(big: Index) -> None:
    people = [p for t in ("student", "guardian", "teacher") for p in big.by[t].values()]
    text = " ".join(f"{p['last_name']} {p['first_name']} {p['middle_name']}" for p in people)
    assert "ё" in text
    doubles = [p["last_name"] for p in people if "-" in p["last_name"]]
    assert doubles and all(re.fullmatch(r"[А-ЯЁ][а-яё]+-[А-ЯЁ][а-яё]+", d) for d in doubles)
    for p in people:
        female = p["middle_name"].endswith("на")
        assert p["middle_name"].endswith(("вна", "чна") if female else ("вич", "ич")), p
        if p["last_name"].endswith(("ов", "ев", "ёв", "ин", "ский")):
            assert not female, p
        if p["last_name"].endswith(("ова", "ева", "ёва", "ина", "ская")):
            assert female, p


def test_birth_dates_match_grades(ix: Index) -> None:
    for sid, student in ix.by["student"].items():
        grade = ix.grade_of_student(sid)
        age = (dt.date(2026, 9, 1) - dt.date.fromisoformat(student["birth_date"])).days / 365.25
        assert grade + 5.4 <= age <= grade + 7.6, (sid, grade, age)


def test_families_and_contacts(big: Index) -> None:
    guardians_of: dict[str, set[str]] = collections.defaultdict(set)
    for link in big.by["guardian_link"].values():
        guardians_of[link["student_id"]].add(link["guardian_id"])
    assert set(guardians_of) == set(big.by["student"])
    families = collections.Counter(frozenset(g) for g in guardians_of.values())
    share = sum(1 for n in families.values() if n >= 2) / len(families)
    assert 0.08 <= share <= 0.25
    guardians = list(big.by["guardian"].values())
    assert 0.05 <= sum(1 for g in guardians if not g["email"]) / len(guardians) <= 0.15
    assert 0.02 <= sum(1 for g in guardians if g["delivery"] == "paper") / len(guardians) <= 0.10
    for g in guardians + list(big.by["teacher"].values()):
        assert g["email"] == "" or re.fullmatch(r"[a-z0-9.-]+@example\.(ru|com)", g["email"])
        assert g["phone"] == "" or re.fullmatch(r"\+7 900 \d{3}-\d{2}-\d{2}", g["phone"])
    emails = [g["email"] for g in guardians if g["email"]]
    assert len(emails) == len(set(emails))


def test_siblings_share_surname(big: Index) -> None:
    children: dict[frozenset[str], list[str]] = collections.defaultdict(list)
    links: dict[str, set[str]] = collections.defaultdict(set)
    for link in big.by["guardian_link"].values():
        links[link["student_id"]].add(link["guardian_id"])
    for sid, guardians in links.items():
        children[frozenset(guardians)].append(sid)
    for sids in children.values():
        stems = {_masculine(big.by["student"][s]["last_name"]) for s in sids}
        assert len(stems) == 1, [big.by["student"][s] for s in sids]


def _masculine(surname: str) -> str:
    parts = []
    for part in surname.split("-"):
        if part.endswith(("ова", "ева", "ёва", "ина", "ына")):
            part = part[:-1]
        elif part.endswith(("ская", "цкая")):
            part = part[:-2] + "ий"
        elif part.endswith("ая"):
            part = part[:-2] + "ой"
        parts.append(part)
    return "-".join(parts)


def test_students_who_left(ix: Index) -> None:
    left = {s: v["left_at"] for s, v in ix.by["student"].items() if v.get("left_at")}
    assert 1 <= len(left) <= 2
    assert all(day < AS_OF.isoformat() for day in left.values())
    for kind in ("mark", "attendance"):
        for record in ix.by[kind].values():
            sid = record["student_id"]
            if sid in left and record.get("lesson_id"):
                assert ix.by["lesson"][record["lesson_id"]]["date"] <= left[sid]


# --- groups and timetable ----------------------------------------------------------------------


def test_group_kinds(ix: Index) -> None:
    groups = ix.by["group"]
    kinds = collections.Counter(g["kind"] for g in groups.values())
    assert kinds["whole_class"] > 100 and kinds["subgroup"] >= 20
    assert kinds["stream"] == 1 and kinds["individual_plan"] == 2
    stream = next(g for g in groups.values() if g["kind"] == "stream")
    assert len(stream["class_unit_ids"]) == 2
    members: dict[str, list[str]] = collections.defaultdict(list)
    for m in ix.by["membership"].values():
        members[m["group_id"]].append(m["student_id"])
    for gid, group in groups.items():
        if group["kind"] == "individual_plan":
            assert len(members[gid]) == 1
    pairs = collections.Counter(
        (tuple(g["class_unit_ids"]), g["subject_id"])
        for g in groups.values()
        if g["kind"] == "subgroup"
    )
    assert set(pairs.values()) == {2}
    assert {s for _, s in pairs} == {"sub-eng", "sub-inf"}


def test_no_class_or_teacher_has_two_lessons_at_once(ix: Index) -> None:
    groups = ix.by["group"]
    per_class: dict[tuple[str, str, int], list[str]] = collections.defaultdict(list)
    per_teacher: collections.Counter[tuple[str, str, int]] = collections.Counter()
    for lesson in ix.by["lesson"].values():
        for cls in groups[lesson["group_id"]]["class_unit_ids"]:
            per_class[(cls, lesson["date"], lesson["slot"])].append(lesson["group_id"])
        if lesson["status"] in ("held", "scheduled"):
            per_teacher[(lesson["teacher_id"], lesson["date"], lesson["slot"])] += 1
    for key, group_ids in per_class.items():
        if len(group_ids) > 1:  # only the subgroups of one subject share a slot
            assert all(groups[g]["kind"] == "subgroup" for g in group_ids), key
            assert len({groups[g]["subject_id"] for g in group_ids}) == 1, key
    assert max(per_teacher.values()) == 1


def test_timetable_matches_lessons(ix: Index) -> None:
    template = {(t["group_id"], t["weekday"], t["slot"]) for t in ix.by["timetable_entry"].values()}
    slots = {(b["number"], b["start"], b["end"]) for b in ix.by["bell_slot"].values()}
    assert len(slots) == 8 and (1, "08:30", "09:15") in slots
    for lesson in ix.by["lesson"].values():
        if lesson.get("moved_from"):
            continue
        weekday = dt.date.fromisoformat(lesson["date"]).isoweekday()
        assert (lesson["group_id"], weekday, lesson["slot"]) in template


def test_substitutions_moves_and_cancellations(ix: Index) -> None:
    lessons = ix.by["lesson"]
    subs = [v for v in lessons.values() if v.get("substitution")]
    assert 0.015 <= len(subs) / len(lessons) <= 0.05
    for lesson in subs:
        assert lesson["substitution"]["original_teacher_id"] != lesson["teacher_id"]
        assert lesson["substitution"]["reason"]
    statuses = collections.Counter(v["status"] for v in lessons.values())
    assert statuses["moved"] > 0 and statuses["cancelled"] > 0
    by_place = {(v["group_id"], v["date"], v["slot"]): v for v in lessons.values()}
    for lesson in lessons.values():
        if lesson["status"] == "moved":
            target = by_place[(lesson["group_id"], lesson["moved_to"]["date"],
                               lesson["moved_to"]["slot"])]  # fmt: skip
            assert target["moved_from"] == {"date": lesson["date"], "slot": lesson["slot"]}


# --- marks, attendance, homework ---------------------------------------------------------------


def test_no_marks_in_the_first_grade(ix: Index) -> None:
    assert all(ix.grade_of_student(m["student_id"]) > 1 for m in ix.by["mark"].values())
    first = [s for s in ix.by["student"] if ix.grade_of_student(s) == 1]
    attended = {a["student_id"] for a in ix.by["attendance"].values()}
    assert attended.intersection(first)


def test_marks_look_like_a_real_journal(ix: Index) -> None:
    marks = list(ix.by["mark"].values())
    raws = collections.Counter(m["raw"] for m in marks)
    assert {"5", "4", "3", "2", "4-", "5+", "3-", "зачёт", "н/а"} <= set(raws)
    assert any("/" in raw for raw in raws)
    kinds = collections.Counter(m["kind"] for m in marks)
    assert kinds["debt"] >= 1 and kinds["not_certified"] >= 1 and kinds["period_final"] > 100
    assert all(m["scale"] == "pass_fail" for m in marks if m["raw"] in ("зачёт", "незачёт"))
    works = ix.by["work"]
    for m in marks:
        expected = works[m["work_id"]]["weight"] if m.get("work_id") else 1.0
        assert m["weight"] == expected
    averages = _averages(marks)
    assert 2.5 <= min(averages) <= 3.3 and 4.6 <= max(averages) <= 5.0
    middle = sum(1 for a in averages if 3.5 <= a <= 4.5) / len(averages)
    assert middle >= 0.5


def _averages(marks: list[dict[str, Any]]) -> list[float]:
    values: dict[str, list[int]] = collections.defaultdict(list)
    for m in marks:
        if m["scale"] == "five" and m["kind"] == "regular":
            values[m["student_id"]] += [int(part[0]) for part in m["raw"].split("/")]
    return [sum(v) / len(v) for v in values.values()]


def test_every_student_gets_a_mark_for_each_past_work(ix: Index) -> None:
    members: dict[str, list[str]] = collections.defaultdict(list)
    for m in ix.by["membership"].values():
        if m.get("to") is None:
            members[m["group_id"]].append(m["student_id"])
    got = {(m["work_id"], m["student_id"]) for m in ix.by["mark"].values() if m.get("work_id")}
    due = [(w, s) for w, work in ix.by["work"].items() if work["date"] < "2026-11-20"
           for s in members[work["group_id"]]]  # fmt: skip
    assert due and sum(1 for pair in due if pair in got) / len(due) >= 0.97
    future = {w for w, work in ix.by["work"].items() if work["date"] > AS_OF.isoformat()}
    assert future and not {w for w, _ in got} & future


def test_lesson_mark_rate(ix: Index) -> None:
    """About 25–35 % of a student's lessons of a subject bring a mark (absences aside)."""
    core = {"sub-rus", "sub-math", "sub-alg", "sub-hist", "sub-bio", "sub-eng"}
    groups = {
        g for g, v in ix.by["group"].items()
        if v["subject_id"] in core and ix.by["class_unit"][v["class_unit_ids"][0]]["grade"] > 1
    }  # fmt: skip
    marks = sum(
        1 for m in ix.by["mark"].values()
        if m.get("lesson_id") and not m.get("work_id")
        and ix.by["lesson"][m["lesson_id"]]["group_id"] in groups
    )  # fmt: skip
    members = collections.Counter(m["group_id"] for m in ix.by["membership"].values())
    seats = sum(
        members[v["group_id"]] for v in ix.by["lesson"].values()
        if v["status"] == "held" and v["group_id"] in groups
    )  # fmt: skip
    assert 0.2 <= marks / seats <= 0.33


def test_attendance(ix: Index) -> None:
    codes = {c: v for c, v in ix.by["attendance_code"].items()}
    assert set(codes) == {"Н", "Б", "У", "УП", "НП", "ОП", "ОСВ"}
    assert codes["ОП"]["category"] == "late" and codes["Б"]["category"] == "illness"
    records = list(ix.by["attendance"].values())
    assert all(r["category"] == codes[r["code"]]["category"] for r in records)
    assert all(r.get("minutes_late", 0) > 0 for r in records if r["code"] == "ОП")
    assert all(ix.by["lesson"][r["lesson_id"]]["status"] == "held" for r in records)
    members = collections.Counter(m["group_id"] for m in ix.by["membership"].values())
    seats = sum(members[v["group_id"]] for v in ix.by["lesson"].values() if v["status"] == "held")
    absent = sum(1 for r in records if r["category"] in ("illness", "excused", "unexcused"))
    assert 0.04 <= absent / seats <= 0.09
    illness = collections.Counter(r["student_id"] for r in records if r["code"] == "Б")
    assert max(illness.values()) >= 20  # whole days of illness, not scattered lessons


def test_homework_and_recommendations(ix: Index) -> None:
    homework = list(ix.by["homework"].values())
    texts = "\n".join(h["text"] for h in homework)
    assert "**" in texts and "\n- " in texts and "](https://resh.edu.ru/" in texts
    assert any(h.get("student_ids") for h in homework)
    assert any(h["assigned_on"] > AS_OF.isoformat() for h in homework)
    grades = {ix.by["group"][h["group_id"]]["class_unit_ids"][0] for h in homework}
    assert "cls-1a" not in grades
    notes = ix.by["recommendation"].values()
    students = {r["student_id"] for r in notes}
    assert 0.15 <= len(students) / len(ix.by["student"]) <= 0.25
    assert all(r["text"] and r["date"] <= AS_OF.isoformat() for r in notes)
