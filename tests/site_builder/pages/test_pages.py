"""What the decrypted pages show, who gets one, and what rendering them costs."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.exchange.importer import import_document
from otmetka.db import analytics, row_types
from otmetka.site_builder.formatting import average
from otmetka.site_builder.markdown import render_markdown
from otmetka.site_builder.pages import family
from otmetka.site_builder.pages.audience import PageKey, expand_dirty, people_with_pages
from otmetka.site_builder.pages.render import page_css, render_pages
from tests.support.factories import change
from tests.support.page_factories import (
    TODAY,
    hostile_homework,
    page_school,
    period_final,
    two_class_school,
)


def load(document: dict[str, Any]) -> None:
    import_document(document, "x.json", MarkRules())


@pytest.fixture
def school(memory_db: None) -> None:
    load(page_school())


@pytest.fixture
def pages(school: None) -> dict[PageKey, str]:
    return dict(render_pages(TODAY))


def text_of(html: str) -> str:
    """Visible text with tags removed and whitespace collapsed, for phrase checks."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# --- who has a page -----------------------------------------------------------------------


def test_people_with_pages(school: None) -> None:
    assert people_with_pages(TODAY) == {
        ("student", "s-1"),
        ("student", "s-2"),
        ("student", "s-3"),
        ("guardian", "g-1"),  # g-2 is on paper; g-3's only child left
        ("teacher", "t-1"),  # class teacher of 7Б
        ("teacher", "t-2"),  # deputy head
    }


def test_a_student_who_leaves_later_still_has_a_page(school: None) -> None:
    earlier = TODAY.replace(day=9)
    assert ("student", "s-4") in people_with_pages(earlier)
    assert ("guardian", "g-3") in people_with_pages(earlier)


def test_pages_rendered_are_exactly_the_people_with_pages(pages: dict[PageKey, str]) -> None:
    assert set(pages) == people_with_pages(TODAY)


def test_wanted_pages_without_a_page_are_skipped(school: None) -> None:
    wanted = {("student", "s-4"), ("guardian", "g-2"), ("guardian", "g-3"), ("student", "s-1")}
    assert [key for key, _ in render_pages(TODAY, wanted)] == [("student", "s-1")]


# --- the guardian page --------------------------------------------------------------------


def test_guardian_page_shows_both_children_and_their_marks(pages: dict[PageKey, str]) -> None:
    page = pages[("guardian", "g-1")]
    text = text_of(page)
    assert "Иванова Мария" in text
    assert "Иванова-Крылова Алёна, 7Б" in text and "Иванов Артём, 7Б" in text
    assert "Петров Иван" not in text  # not her child
    assert "<b>5</b>" in page and "<b>4-</b>" in page and "<b>3/5</b>" in page
    assert "данные на 16 сентября 2026" in text
    assert page.count('<section class="child"') == 2


def test_weighted_average(pages: dict[PageKey, str]) -> None:
    # s-1, maths: 5 (weight 1) and 4- (weight 2, minus counts 0): (5 + 2·4) / 3 = 4.333…
    # s-2, maths: 3/5 is two marks of weight 1: (3 + 5) / 2 = 4.
    page = pages[("guardian", "g-1")]
    assert "4,33" in page and "4,00" in page
    # the «зачёт» in Russian is shown but has no average
    assert "<b>зачёт</b>" in page


def test_timetable_marks_substitution_cancellation_and_moves(pages: dict[PageKey, str]) -> None:
    text = text_of(pages[("student", "s-1")])
    assert "замена: по расписанию — Королёва А. П. (болезнь)" in text
    assert "отменён" in text
    assert "перенесён на 18 сентября, 2-й урок" in text
    assert "перенесён с 16 сентября, 1-й урок" in text
    assert "08:30–09:15" in text and "Понедельник, 14 сентября" in text
    assert "Суббота, 19 сентября" in text


def test_homework_is_rendered_from_markdown(pages: dict[PageKey, str]) -> None:
    page = pages[("guardian", "g-1")]
    assert "<strong>№ 12</strong>, 14" in page  # due 14 September: last week
    assert "<em>выучить</em>" in page  # due 18 September: this week


def test_individual_homework_only_for_listed_students(pages: dict[PageKey, str]) -> None:
    assert "Доклад о причастиях" in pages[("student", "s-1")]
    assert "Доклад о причастиях" not in pages[("student", "s-2")]


def test_holidays_tests_teachers_groups_and_recommendations(pages: dict[PageKey, str]) -> None:
    text = text_of(pages[("student", "s-1")])
    assert "Осенние каникулы: 26 октября 2026 — 3 ноября 2026" in text  # not «(каникулы)»
    assert "День народного единства (праздник): 4 ноября 2026" in text
    assert "Самостоятельная работа: Причастный оборот" in text  # upcoming test
    assert "Классный руководитель: Королёва Анна Петровна" in text
    assert "7Б, английский язык, 1 подгруппа — подгруппа (Английский язык)" in text
    assert "Больше читать вслух" in text


def test_attendance(pages: dict[PageKey, str]) -> None:
    text = text_of(pages[("student", "s-2")])
    assert "по болезни 1" in text
    assert "Б — болел (по болезни)" in text
    late = text_of(pages[("student", "s-1")])
    assert "ОП — опоздал (опоздания, 5 мин)" in late


def test_hostile_homework_comes_out_inert(memory_db: None) -> None:
    load(page_school(hostile_homework()))
    page = dict(render_pages(TODAY))[("student", "s-1")]
    lowered = page.lower()
    for bad in ("<script", "javascript:", "onerror", "onclick", "onload", "<iframe", "<img"):
        assert bad not in lowered
    assert "<style" not in lowered
    assert "<strong>ok</strong>" in page


def test_period_finals_are_shown_apart_and_not_averaged(memory_db: None) -> None:
    load(page_school(period_final("2")))
    page = dict(render_pages(TODAY))[("student", "s-1")]
    assert "1 четверть: <b>2</b>" in page
    assert "4,33" in page


def test_current_period_falls_back_to_the_latest_started(memory_db: None) -> None:
    load(page_school())
    holiday = TODAY.replace(month=10, day=28)
    text = text_of(dict(render_pages(holiday))[("student", "s-1")])
    assert "Оценки: 1 четверть" in text
    assert "Осенние каникулы: 26 октября 2026 — 3 ноября 2026 · сейчас" in text


# --- staff pages --------------------------------------------------------------------------


def test_class_teacher_page_lists_the_class(pages: dict[PageKey, str]) -> None:
    page = pages[("teacher", "t-1")]
    text = text_of(page)
    assert "Классный руководитель 7Б" in text
    assert re.search(r"Иванова-Крылова Алёна\s*</a></th><td class=\"num\">4,33", page)
    assert "Сидоров" not in text  # left
    assert page.count('<details class="pupil">') == 3
    assert 'class="pupil" open' not in page


def test_deputy_page_lists_classes(pages: dict[PageKey, str]) -> None:
    text = text_of(pages[("teacher", "t-2")])
    assert "Заместитель руководителя" in text
    assert "7Б Королёва Анна Петровна 3" in text


# --- the builder's API --------------------------------------------------------------------


def test_expand_dirty(school: None) -> None:
    assert expand_dirty({("student", "s-1")}) == {
        ("student", "s-1"),
        ("guardian", "g-1"),
        ("teacher", "t-1"),
    }
    # A guardian's act shows in the class teacher's control table.
    assert expand_dirty({("guardian", "g-1")}) == {("guardian", "g-1"), ("teacher", "t-1")}
    assert expand_dirty({("student", "s-3"), ("guardian", "g-1")}) == {
        ("student", "s-3"),
        ("guardian", "g-2"),  # on paper: render_pages skips it
        ("guardian", "g-1"),
        ("teacher", "t-1"),
    }
    assert expand_dirty({("teacher", "t-2")}) is None
    assert expand_dirty({("all", "*"), ("student", "s-1")}) is None
    assert expand_dirty(set()) == set()


def test_rendering_is_deterministic(school: None) -> None:
    first = dict(render_pages(TODAY))
    second = dict(render_pages(TODAY))
    assert first == second
    some = {("guardian", "g-1"), ("teacher", "t-1")}
    assert dict(render_pages(TODAY, some)) == {key: first[key] for key in some}


def test_fragment_has_no_scripts_and_one_header(pages: dict[PageKey, str]) -> None:
    for page in pages.values():
        assert "<script" not in page.lower()
        assert page.startswith('<header class="pg">')
        assert page.count("<h1>") == 1


@pytest.mark.parametrize("per_class", [2, 25])
def test_statements_per_build_do_not_grow_with_students(
    memory_db: None, count_statements: Callable[[], int], per_class: int
) -> None:
    load(two_class_school(per_class))
    before = count_statements()
    pages = dict(render_pages(TODAY))
    used = count_statements() - before
    assert len(pages) == 2 * (2 * per_class + 1)  # students, guardians, class teachers
    # reference (10) + roster (2) + latest extracts (1) + staff pages' school-wide facts
    # (consents 1, acknowledgements 1, paper list 4, slips 1, analytics PDFs 1, parents'
    # phones 1) + the guardians' last acknowledgements (1) + 10 per class: the class
    # teacher's analytics come from the class's bundle, at no statement
    assert used == 13 + 9 + 1 + 10 * 2


# --- pieces -------------------------------------------------------------------------------


def test_average_format() -> None:
    assert average(4.345) in ("4,34", "4,35")
    assert average(4.35) == "4,35"
    assert average(5) == "5,00"
    assert average(None) == "—"


def test_weighted_average_counts_both_parts_of_a_double_mark() -> None:
    def mark(value: float | None, value2: float | None, weight: float) -> row_types.MarkRow:
        return row_types.MarkRow(
            "m",
            "s",
            "math",
            TODAY,
            None,
            None,
            "",
            "five",
            value,
            value2,
            None,
            weight,
            "regular",
            "",
        )

    marks = [mark(5, None, 1), mark(3, 5, 2), mark(None, None, 3)]
    assert analytics.weighted_average(marks) == pytest.approx((5 + 6 + 10) / 5)
    assert analytics.weighted_average([mark(None, None, 1)]) is None


@pytest.mark.parametrize(
    "text",
    [
        "<script>alert(1)</script>",
        "[x](javascript:alert(1))",
        "<img src=x onerror=alert(1)>",
        '<a href="java&#x09;script:alert(1)">x</a>',
        "<iframe srcdoc='<script>alert(1)</script>'></iframe>",
        "<style>*{display:none}</style>",
        '<p style="background:url(https://evil.example)" onmouseover="x()">p</p>',
        "[rel](/relative) [data](data:text/html;base64,PHNjcmlwdD4=)",
    ],
)
def test_markdown_is_sanitised(text: str) -> None:
    html = render_markdown(text).lower()
    for bad in ("<script", "javascript", "onerror", "onmouseover", "<iframe", "<img", "<style"):
        assert bad not in html
    assert "style=" not in html and "data:" not in html and "/relative" not in html


def test_markdown_links_and_headings() -> None:
    html = render_markdown("# Тема\n[сайт](https://example.ru) a@b.ru\nстрока")
    assert '<a href="https://example.ru" rel="noopener noreferrer nofollow">сайт</a>' in html
    assert "<h4>Тема</h4>" in html  # never an h1 inside the page
    assert "<br>" in html


def test_page_css_is_small_and_local() -> None:
    css = page_css()
    assert len(css.encode("utf-8")) < 6 * 1024
    assert "url(" not in css and "@import" not in css and "@font-face" not in css
    assert "@media print" in css


def test_a_family_across_two_classes_gets_one_page(memory_db: None) -> None:
    document = two_class_school(2)
    link = {"guardian_id": "g-c5a-0", "student_id": "s-c5b-1", "relation": "father"}
    document["changes"].append(change("guardian_link", "gl-cross", link))
    load(document)
    wanted = {("guardian", "g-c5a-0"), ("teacher", "t-c5b")}
    pages = dict(render_pages(TODAY, wanted))
    assert set(pages) == wanted
    guardian = pages[("guardian", "g-c5a-0")]
    assert "Ученик000 Имя, C5A" in guardian and "Ученик001 Имя, C5B" in guardian
    everything = dict(render_pages(TODAY))
    assert everything[("guardian", "g-c5a-0")] == guardian
    assert everything[("teacher", "t-c5b")] == pages[("teacher", "t-c5b")]


def test_work_label_does_not_repeat_the_kind() -> None:
    def work(kind: str, title: str, control: bool = False) -> family.WorkView:
        return family.WorkView(TODAY, "Алгебра", kind, title, control)

    assert work("Тест", "Shopping").label == "Тест: Shopping"
    assert work("Тест", "").label == "Тест"
    assert work("Контрольная работа", "Контрольная работа по теме «Дроби»", True).label == (
        "Контрольная работа по теме «Дроби»"
    )
    assert not work("Контрольная работа", "", True).control_badge
    assert work("Тест", "Дроби", True).control_badge
