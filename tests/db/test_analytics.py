"""Class analytics against figures worked out by hand on the class of analytics_factories.py
(its docstring lists every lesson, mark and absence)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.exchange.importer import import_document
from otmetka.db import analytics, queries
from tests.support.analytics_factories import CLASS_ID, analytics_school
from tests.support.factories import change

TODAY = dt.date(2026, 9, 16)
START, END = dt.date(2026, 9, 1), dt.date(2026, 10, 24)
MONDAYS = (dt.date(2026, 8, 31), dt.date(2026, 9, 7), dt.date(2026, 9, 14))


def load(*extra: dict[str, Any]) -> None:
    document = analytics_school()
    document["changes"] += list(extra)
    import_document(document, "analytics.json", MarkRules())


def figures(today: dt.date = TODAY) -> analytics.ClassAnalytics:
    return analytics.load_class_analytics(CLASS_ID, START, END, today, period_id="q1")[1]


@pytest.fixture
def result(memory_db: None) -> analytics.ClassAnalytics:
    load()
    return figures()


# --- per subject --------------------------------------------------------------------------


def test_weighted_average_per_subject(result: analytics.ClassAnalytics) -> None:
    by_subject = {s.subject_id: s for s in result.subjects}
    assert sorted(by_subject) == ["eng", "math", "rus"]
    # maths: s-a 5·1 + 4·2 + 5·1 = 18 over 4; s-b 4·1 + 5·2 = 14 over 3; s-c 2+2+2+3 = 9
    # over 4 (the double mark 2/2 counts twice); s-d left: 41 / 11
    assert by_subject["math"].average == pytest.approx(41 / 11)
    # Russian: s-a 4 + 3 + 5, s-b 2 + 3 + 2, s-c 4: 23 / 7
    assert by_subject["rus"].average == pytest.approx(23 / 7)
    # English: only s-b's 5 (a «зачёт» and an «н/а» have no number)
    assert by_subject["eng"].average == pytest.approx(5.0)
    assert result.average == pytest.approx((41 / 11 + 23 / 7 + 5) / 3)


def test_spread_of_marks(result: analytics.ClassAnalytics) -> None:
    by_subject = {s.subject_id: s for s in result.subjects}
    # maths: 5, 4, 5 (s-a; «5-» is a 5) · 4, 5 (s-b) · 2, 2, 2, 3 (s-c)
    assert by_subject["math"].spread == (3, 2, 1, 3)
    assert by_subject["math"].marks == 9
    # Russian: 4, 3, 5 · 2, 3, 2 · 4
    assert by_subject["rus"].spread == (1, 2, 2, 2)
    assert by_subject["eng"].spread == (1, 0, 0, 0)


# --- students -----------------------------------------------------------------------------


def test_students_on_roll_only_in_the_given_order(result: analytics.ClassAnalytics) -> None:
    assert [s.student_id for s in result.students] == ["s-a", "s-b", "s-c"]


def test_student_averages_against_the_class(result: analytics.ClassAnalytics) -> None:
    a, b, c = result.students
    assert a.averages == pytest.approx({"math": 4.5, "rus": 4.0})  # 18/4; (4+3+5)/3
    assert a.overall == pytest.approx(4.25)
    assert b.averages == pytest.approx({"math": 14 / 3, "rus": 7 / 3, "eng": 5.0})
    assert b.overall == pytest.approx(4.0)
    assert c.averages == pytest.approx({"math": 2.25, "rus": 4.0})
    assert c.overall == pytest.approx(3.125)
    assert result.subject_average == pytest.approx({"math": 41 / 11, "rus": 23 / 7, "eng": 5.0})


def test_weekly_trend(result: analytics.ClassAnalytics) -> None:
    assert [w.start for w in result.weeks] == list(MONDAYS)
    a, b, c = result.students
    # s-a: (5 + 4)/2; (4·2 + 3 + 5)/4; 5
    assert a.weekly == pytest.approx((4.5, 4.0, 5.0))
    # s-b: (4 + 2 + 5)/3; (5·2 + 3)/3; 2
    assert b.weekly == pytest.approx((11 / 3, 13 / 3, 2.0))
    # s-c: (2 + 2 + 2)/3; ill all week: no figure; (3 + 4)/2
    assert c.weekly[0] == pytest.approx(2.0) and c.weekly[1] is None
    assert c.weekly[2] == pytest.approx(3.5)
    # the class: 26/8; 29/7; 14/4
    assert [w.average for w in result.weeks] == pytest.approx([3.25, 29 / 7, 3.5])


def test_absences_per_student(result: analytics.ClassAnalytics) -> None:
    a, b, c = result.students
    assert (a.lessons, a.missed) == (10, 1)
    assert (b.lessons, b.missed) == (10, 0)  # late is not missed
    assert (c.lessons, c.missed) == (9, 3)
    assert c.missed_share == pytest.approx(1 / 3)
    assert c.absences == {"illness": 2, "excused": 0, "unexcused": 1, "late": 0, "exempt": 0}
    assert b.absences["late"] == 1


# --- the class ----------------------------------------------------------------------------


def test_attendance_by_week(result: analytics.ClassAnalytics) -> None:
    weeks = [(w.start, w.lessons, w.missed, w.late) for w in result.weeks]
    assert weeks == [
        (MONDAYS[0], 12, 0, 0),  # maths ×2 ×3, Russian ×3, English 2 + 1
        (MONDAYS[1], 11, 4, 0),  # maths ×2 ×3, Russian ×3, English subgroup 1 ×2
        (MONDAYS[2], 6, 0, 1),  # maths 15 Sep ×3 (14 Sep cancelled), Russian ×3
    ]
    assert result.weeks[1].attendance == pytest.approx(7 / 11)
    assert (result.lessons, result.missed) == (29, 4)
    assert result.attendance == pytest.approx(25 / 29)


def test_absences_by_reason(result: analytics.ClassAnalytics) -> None:
    assert result.absences == {"illness": 2, "excused": 1, "unexcused": 1, "late": 1, "exempt": 0}


def test_students_at_risk_and_why(result: analytics.ClassAnalytics) -> None:
    assert [s.student_id for s in result.at_risk] == ["s-b", "s-c"]
    b, c = result.at_risk
    assert [(r.kind, r.subject_id) for r in b.risks] == [("low_average", "rus")]
    assert b.risks[0].value == pytest.approx(7 / 3)
    assert [(r.kind, r.subject_id, r.value) for r in c.risks] == [
        ("not_certified", "eng", 1),  # «н/а» in English
        ("low_average", "math", pytest.approx(2.25)),
        ("twos_in_row", "math", 3),  # 2, then 2/2: three «2» in a row
        ("missed", None, pytest.approx(1 / 3)),  # 3 of 9 lessons
    ]


def test_thresholds_are_inclusive_where_the_rules_say_so(memory_db: None) -> None:
    # s-a misses 2 more lessons: 3 of 10 is exactly 30 %: at risk.
    load(
        change("attendance", "a-x1", _absent("s-a", "l-m1")),
        change("attendance", "a-x2", _absent("s-a", "l-r1")),
    )
    a = figures().students[0]
    assert a.missed_share == pytest.approx(0.3)
    assert [r.kind for r in a.risks] == ["missed"]


def _absent(student: str, lesson: str) -> dict[str, Any]:
    return {"student_id": student, "lesson_id": lesson, "code": "Н", "category": "unexcused"}


def test_before_any_lesson_there_is_nothing_to_count(memory_db: None) -> None:
    load()
    early = figures(dt.date(2026, 8, 25))
    assert early.lessons == 0 and early.attendance is None
    assert early.weeks == ()


def test_pieces() -> None:
    assert analytics.grade_of(4.75) == 5 and analytics.grade_of(4.25) == 4
    assert analytics.grade_of(1) == 2  # a «1» counts with the «2»
    assert analytics.weeks_between(dt.date(2026, 9, 1), dt.date(2026, 9, 14)) == list(MONDAYS)
    assert analytics.weeks_between(dt.date(2026, 9, 14), dt.date(2026, 9, 1)) == []


# --- cost ---------------------------------------------------------------------------------


def test_a_class_costs_one_bundle_and_the_analysis_none(
    memory_db: None, count_statements: Callable[[], int]
) -> None:
    load()
    before = count_statements()
    bundle, _ = analytics.load_class_analytics(CLASS_ID, START, END, TODAY)
    assert count_statements() - before == 10  # the bundle's statements
    before = count_statements()
    students = [s.id for s in queries.class_students(CLASS_ID)][:3]
    count_after_list = count_statements()
    analytics.class_analytics(bundle, students, START, END, TODAY)
    assert count_statements() == count_after_list and count_after_list - before == 1
