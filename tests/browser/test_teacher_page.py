"""The class teacher's page in Debian's chromium on a 360 px phone: the builder's real site
of the hand-made class (analytics_factories.py), served by the app under waitress. The
teacher unlocks the page and finds the class journal (a wide table that scrolls inside its
own box, not the page), the analytics with charts that screen readers get as a table, and
the control tables filled from real acts registered on paper."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from otmetka.daemon.acts import paper
from otmetka.daemon.core.config import Config, config_from_dict
from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.core.settings import build_options
from otmetka.daemon.endpoint.app import create_app
from otmetka.daemon.exchange.importer import import_document
from otmetka.db import close_database, migrate, open_database
from otmetka.site_builder import build
from tests.support.acts_support import logins_for_everyone
from tests.support.analytics_factories import analytics_school
from tests.support.servers import waitress_server

from .conftest import ARTIFACTS, VIEWPORT, log_in

TODAY = dt.date(2026, 9, 16)
TEACHER = "Дмитриева Дарья Сергеевна"
DEPUTY = "Завучева Зоя"


def _school(folder: Path) -> tuple[Config, dict[str, dict[str, str]]]:
    config = config_from_dict({"site": {"kdf_iterations": 100_000}}, base_dir=folder, env={})
    open_database(config.database.url)
    try:
        migrate()
        import_document(analytics_school(), "school.json", MarkRules())
        logins = logins_for_everyone(config)
        alla = logins["Алексеева Алла"]["login"]
        paper.register_consent(config, login=alla, decision="granted", paper=True)
        paper.register_ack(config, login=alla, paper=True, date="2026-09-15")
        build.build_site(build_options(config, today=TODAY))
    finally:
        close_database()
    return config, logins


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, dict], int]]:
    config, logins = _school(tmp_path_factory.mktemp("school"))
    with waitress_server(create_app(config)) as port:
        yield logins, port


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT, locale="ru-RU")
    context.set_default_timeout(30_000)
    yield context.new_page()
    context.close()


def _log_in(page: Page, port: int, row: dict[str, str]) -> None:
    log_in(page, f"http://127.0.0.1:{port}/", row)


def test_class_teacher_sees_journal_charts_and_control_tables(served: tuple, page: Page) -> None:
    logins, port = served
    _log_in(page, port, logins[TEACHER])
    app = page.locator("#otm-app")
    assert "Класс 5А" in app.inner_text()

    # The journal: read-only, every subject, marks and attendance codes by date.
    maths = page.locator("details", has=page.locator("summary h4", has_text="Математика")).first
    maths.locator("summary").click()
    table = maths.locator("table.jr")
    assert table.is_visible()
    heads = table.locator("thead th").all_inner_texts()
    assert heads == ["Ученик", "1.09", "3.09", "8.09", "10.09", "15.09", "Ср. балл", "Итог"]
    viktor = table.locator("tbody tr", has_text="Васильев Виктор").locator("td")
    assert viktor.all_inner_texts()[:5] == ["2", "2/2", "Б", "Б", "3"]
    assert table.locator("input, select, textarea, button").count() == 0  # read-only
    # Wide: it scrolls inside its own box, the page itself does not scroll sideways.
    box = table.locator("xpath=..")
    assert box.evaluate("el => el.scrollWidth > el.clientWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORT["width"]
    box.evaluate("el => { el.scrollLeft = el.scrollWidth; }")
    assert box.evaluate("el => el.scrollLeft") > 0
    name_cell, frame = table.locator("tbody th").first.bounding_box(), box.bounding_box()
    assert name_cell is not None and frame is not None
    assert abs(name_cell["x"] - frame["x"]) < 2  # scrolled right, the names stay in view

    # A chart: an image named by its title, described by a table with the same figures.
    chart = page.get_by_role("img", name="Средний балл по предметам").first
    chart.scroll_into_view_if_needed()
    assert chart.is_visible() and chart.bounding_box()["width"] <= VIEWPORT["width"]
    described = chart.get_attribute("aria-describedby")
    figures = page.locator(f"[id='{described}']")
    assert figures.evaluate("el => el.tagName") == "TABLE"
    rows = figures.locator("tbody tr").all_inner_texts()
    assert [r.replace("\t", " ") for r in rows] == [
        "Английский язык 5,00",
        "Математика 3,73",  # 41/11
        "Русский язык 3,29",  # 23/7
    ]
    assert "3,73" in chart.inner_html()  # the same figure drawn on the bar

    # Control tables: acknowledgement, consent, paper delivery, missing credentials.
    control = app.locator("section", has_text="Ознакомление и согласие родителей").last
    text = control.inner_text()
    assert "Алексеева Алла" in text and "на бумаге, 15 сент." in text
    alla = control.locator("tr", has_text="Алексеева Алла").inner_text()
    assert "дано" in alla
    boris = control.locator("tr", has_text="Борисов Борис").first.inner_text()
    assert "нет" in boris and "не дано" in boris
    assert "выбрана бумажная доставка" in text  # Борисов is on paper
    risk = page.get_by_role("table", name="Ученики в группе риска и причины").inner_text()
    assert "Васильев Виктор" in risk and "«н/а»: Английский язык" in risk
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "teacher-page-360.png"), full_page=False)


def test_deputy_sees_every_class_and_the_breach_register(served: tuple, page: Page) -> None:
    logins, port = served
    _log_in(page, port, logins[DEPUTY])
    school = page.locator("#otm-school")
    row = school.locator("table").first.locator("tbody tr", has_text="5А").inner_text()
    assert "Дмитриева Дарья Сергеевна" in row and "4,00" in row and "86,2 %" in row
    assert page.get_by_role("img", name="Посещаемость по классам").is_visible()
    assert "Сообщений об утечке логина не было." in page.locator("#otm-breaches").inner_text()
