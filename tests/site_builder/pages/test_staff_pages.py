"""The class teacher's and the deputy head's pages as rendered: the read-only journal, the
control tables filled from real acts, the classes side by side, the breach register in
school time, and when a deputy's page is redone."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from otmetka.daemon.acts.paper import register_ack, register_breach, register_consent
from otmetka.daemon.core.config import Config
from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.exchange.importer import import_document
from otmetka.db import build_state, models, write_transaction
from otmetka.site_builder import templating
from otmetka.site_builder.pages import analysis, audience, render, staff_blocks, staff_views
from tests.support.acts_support import logins_for_everyone
from tests.support.analytics_factories import CLASS_ID, analytics_school

TODAY = dt.date(2026, 9, 16)
TEACHER, DEPUTY = ("teacher", "t-5"), ("teacher", "t-dep")


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


PHONE = "+7 (912) 345-67-89"


@pytest.fixture
def school(file_db: Path) -> None:
    document = analytics_school()
    for row in document["changes"]:
        if row["type"] == "guardian" and row["id"] == "g-a":
            row["data"]["phone"] = PHONE
    import_document(document, "school.json", MarkRules())


def logins(config: Config) -> dict[str, str]:
    return {name: row["login"] for name, row in logins_for_everyone(config).items()}


def pages(*keys: tuple[str, str]) -> dict[tuple[str, str], str]:
    return dict(render.render_pages(TODAY, set(keys)))


def test_journal_shows_marks_and_codes_by_date_and_nothing_to_edit(school: None) -> None:
    page = pages(TEACHER)[TEACHER]
    maths = page.split("<h4>Математика</h4>", 1)[1].split("</table>", 1)[0]
    heads = re.findall(r'<th scope="col">([^<]+)</th>', maths)
    assert heads == ["Ученик", "1.09", "3.09", "8.09", "10.09", "15.09", "Ср. балл", "Итог"]
    viktor = maths.split("Васильев Виктор</th>", 1)[1].split("</tr>", 1)[0]
    assert viktor.startswith(
        "<td><b>2</b></td><td><b>2/2</b></td><td><i>Б</i></td><td><i>Б</i></td><td><b>3</b></td>"
    )
    assert '<td class="num">2,25</td>' in viktor
    english = page.split("<h4>Английский язык</h4>", 1)[1].split("</table>", 1)[0]
    assert "<b>н/а</b>" not in english  # a final, not a lesson's mark…
    assert "Григорьева" not in page  # left before
    inputs = re.findall(r"<input[^>]*>", page.split('<section class="acts"', 1)[0])
    assert inputs == ['<input type="checkbox" id="k9da5e1de5d-only" class="otm-only">']  # a filter


def test_control_tables_follow_the_acts(school: None, config: Config) -> None:
    login = logins(config)
    register_consent(config, login=login["Алексеева Алла"], decision="granted", paper=True)
    register_ack(config, login=login["Алексеева Алла"], paper=True, date="2026-09-15")
    register_consent(config, login=login["Васильева Вера"], decision="refused", paper=True)
    page = text_of(pages(TEACHER)[TEACHER])
    assert f"Алексеева Алла Алексеев Антон {PHONE} на бумаге, 15 сент. дано электронно" in page
    assert "Васильева Вера Васильев Виктор — нет отказ электронно" in page
    assert "Борисов Борис Борисова Белла — нет не дано на бумаге" in page
    paper = page.split("Бумажная доставка", 1)[1].split("Не выданы", 1)[0]
    assert "Борисов Борис Борисова Белла выбрана бумажная доставка" in paper
    assert "Васильева Вера Васильев Виктор отказ от обработки данных" in paper
    assert "Ознакомились 1 из 3, согласие дали 1" in page
    # issuing printed everyone's slip; Вера refused, so her login went and none is needed
    assert "Не выданы логины и пароли Всем выданы." in page


def test_people_without_slips_are_listed(school: None) -> None:
    page = text_of(pages(TEACHER)[TEACHER])
    missing = page.split("Не выданы логины и пароли", 1)[1].split("Листки с логинами", 1)[0]
    for name in ("Алексеев Антон (ученик)", "Алексеева Алла (родитель)", "Васильева Вера"):
        assert name in missing
    assert "Борисов Борис" not in missing  # on paper: no page, no login needed


def test_deputy_page_compares_classes_and_lists_breaches(school: None, config: Config) -> None:
    login = logins(config)
    register_breach(config, login=login["Алексеев Антон"], received_at="2026-09-11T14:30")
    page = pages(DEPUTY)[DEPUTY]
    text = text_of(page)
    # 5А: 3 students, (41/11 + 23/7 + 5)/3, 2 at risk, 25 of 29, nobody acknowledged yet
    assert "5А Дмитриева Дарья Сергеевна 3 4,00 2 86,2 % 0 из 3 (0,0 %) 0 из 3 (0,0 %)" in text
    assert 'aria-labelledby="otm-school-avg-t"' in page and "Посещаемость по классам" in page
    register = text.split("Реестр нарушений конфиденциальности", 1)[1]
    # received 14:30 Moscow time on Friday 11 September: the deadline is Monday's end
    assert "1 11 сент. 14:30 14 сент. просрочено" in register  # open, and today is the 16th
    assert "ученик: Алексеев Антон" in register


def test_breach_state_is_overdue_after_the_deadline_day(school: None, config: Config) -> None:
    login = logins(config)
    register_breach(config, login=login["Алексеев Антон"], received_at="2026-09-11T14:30")
    (report,) = models.BreachReport.select()
    names = {("student", "s-a"): "Алексеев Антон"}
    (line,) = staff_views.breach_lines([report], names, dt.date(2026, 9, 14))
    assert (line.received, line.deadline.date(), line.state) == (
        dt.datetime(2026, 9, 11, 14, 30),
        dt.date(2026, 9, 14),
        "open",
    )
    (late,) = staff_views.breach_lines([report], names, dt.date(2026, 9, 15))
    assert late.state == "overdue"


@pytest.mark.parametrize(
    ("zone_hours", "day"), [(3, 14), (10, 14), (-5, 14), (0, 14), (14, 14), (12, 14)]
)
def test_school_offset_is_read_off_a_deadline(zone_hours: int, day: int) -> None:
    # UTC-12 (no school there) reads as UTC+12 (Kamchatka): the day is the same.
    local_end = dt.datetime(2026, 9, day, 23, 59, 59, 999999)
    stored = local_end - dt.timedelta(hours=zone_hours)  # naive UTC, as the table keeps it
    assert staff_views.school_offset(stored) == dt.timedelta(hours=zone_hours)


def test_a_deputy_page_is_redone_after_a_mark_at_most_once_in_a_while(school: None) -> None:
    now = dt.datetime.now(dt.UTC)
    with write_transaction():
        build_state.record_pages([("page-dep", DEPUTY, "h1")], now - dt.timedelta(hours=21))
        build_state.record_pages([("page-t5", TEACHER, "h2")], now - dt.timedelta(hours=21))
    assert audience.expand_dirty({("student", "s-a")}) == {
        ("student", "s-a"),
        ("guardian", "g-a"),
        TEACHER,
        DEPUTY,  # built 21 hours ago: redone
    }
    assert audience.expand_dirty({("guardian", "g-a")}) == {("guardian", "g-a"), TEACHER}
    with write_transaction():
        build_state.record_pages([("page-dep", DEPUTY, "h3")], now)
    assert DEPUTY not in (audience.expand_dirty({("student", "s-a")}) or set())


def test_an_act_on_paper_marks_the_class_teachers_page_for_the_next_build(
    school: None, config: Config
) -> None:
    login = logins(config)
    with write_transaction():
        build_state.clear_dirty(build_state.dirty_rows())
    register_ack(config, login=login["Алексеева Алла"], paper=True, date="2026-09-15")
    assert TEACHER in (audience.expand_dirty(build_state.dirty_rows()) or set())


def test_the_class_teacher_sees_each_student_without_the_class_wide_parts(school: None) -> None:
    rendered = pages(TEACHER, ("student", "s-a"))
    teacher, student = rendered[TEACHER], rendered[("student", "s-a")]
    for part in ("<h3>Расписание", "<h3>Домашние задания", "<h3>Учителя", "<h3>Каникулы"):
        assert part in student and part not in teacher
    own = student.split('<section class="child"', 1)[1].split("<details open><summary><h3>Расп", 1)[
        0
    ]
    assert own in teacher  # the student's grades as the student sees them
    assert "<h3>Посещаемость" in teacher and "<h3>Группы" in teacher
    grades = student.split("<h3>Оценки", 1)[1].split("</details>", 1)[0]
    assert grades in teacher  # the grades table, as the student's own page has it


def test_the_parents_table_filters_who_has_not_acknowledged_and_gives_phones(
    school: None, config: Config
) -> None:
    login = logins(config)
    register_consent(config, login=login["Алексеева Алла"], decision="granted", paper=True)
    register_ack(config, login=login["Алексеева Алла"], paper=True, date="2026-09-15")
    page = pages(TEACHER)[TEACHER]
    table = page.split('<table class="ctl">', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr( class=\"otm-ack\")?><th scope=\"row\">([^<]+)</th>", table)
    assert rows == [
        (' class="otm-ack"', "Алексеева Алла"),
        ("", "Борисов Борис"),
        ("", "Васильева Вера"),
    ]
    assert "Только не ознакомленные (2 из 3)" in page
    assert f'<a href="tel:+79123456789">{PHONE}</a>' in table
    assert '<th scope="col">С</th>' not in page and "С какого дня" in page


def test_staff_pages_say_when_their_data_was_read(school: None) -> None:
    now = dt.datetime.now(dt.UTC)
    today = now.date()
    fresh = dict(render.render_pages(today, {TEACHER, DEPUTY}))
    for page in fresh.values():
        stamp = re.search(r'Данные на <time datetime="([0-9T:Z-]+)" data-otm-local>', page)
        assert stamp is not None
        read = dt.datetime.strptime(stamp.group(1), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
        assert now - dt.timedelta(seconds=1) <= read <= dt.datetime.now(dt.UTC)
    # a page of a day that is over names the day only, the same whenever it is rendered
    assert staff_blocks.data_time(TODAY, now) is None
    assert '<p class="otm-asof">Данные на 16 сентября 2026</p>' in pages(TEACHER)[TEACHER]


def test_staff_pages_never_ask_for_a_shell_command(school: None) -> None:
    rendered = pages(TEACHER, DEPUTY)
    for page in rendered.values():
        assert "otmetka " not in text_of(page) and "<code>otmetka" not in page
    assert "появится здесь, когда администратор школы его сформирует" in rendered[DEPUTY]


def test_the_deputy_s_class_names_lead_to_the_class(school: None) -> None:
    page = pages(DEPUTY)[DEPUTY]
    anchor = staff_blocks.class_anchor(CLASS_ID)
    assert f'<th scope="row"><a href="#{anchor}-s">5А</a></th>' in page
    details = page.split(f'<details class="cls" id="{anchor}-s">', 1)[1].split("</details>", 1)[0]
    assert "Математика" in details and "В группе риска" in details


def test_every_scrolling_table_can_be_reached_by_keyboard(school: None) -> None:
    for page in pages(TEACHER, DEPUTY).values():
        staff_part = page.split('<details class="pupil">', 1)[0]  # the pupils' own sections aside
        boxes = re.findall(r'<div class="tw"[^>]*>', staff_part)
        assert boxes and all('tabindex="0" role="region" aria-label="' in box for box in boxes)


def test_each_risk_reads_the_same_in_a_pupil_block_and_in_a_template() -> None:
    risks = (
        analysis.RiskView("not_certified", "Физика <углублённая>", 0.0),
        analysis.RiskView("low_average", "Алгебра", 2.4),
        analysis.RiskView("twos_in_row", "Химия", 3.0),
        analysis.RiskView("missed", "", 0.3333),
        analysis.RiskView("new_kind", "", 0.0),
    )
    expected = (
        "«н/а»: Физика &lt;углублённая&gt;; средний балл 2,40: Алгебра; «2» подряд: 3 — Химия; "
        "пропущено 33,3 % уроков; new_kind"
    )
    pupil = analysis.PupilStat("p1", "Иванов & сын", None, 10, 0, None, (), (), (), risks)
    view = analysis.AnalyticsView(
        CLASS_ID, "5А", "", TODAY, TODAY, None, None, 10, 0, (), (pupil,), (), ()
    )
    block = str(staff_blocks.pupil_block(pupil, view, "c-p1"))
    assert f'<strong class="note">В группе риска:</strong> {expected}</p>' in block
    assert 'aria-label="Аналитика: Иванов &amp; сын"' in block
    # As the templates (the analytics, the deputy's page, the PDF report) write them.
    template = templating.environment().from_string(
        "{% for r in risks %}{% if not loop.first %}; {% endif %}{{ r.text }}{% endfor %}"
    )
    assert template.render(risks=risks) == expected
