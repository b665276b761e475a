"""Analytics PDFs: the class report and the school report hold the hand-computed figures
and the same charts as the pages, in the project's fonts, owner-only; after a build the
class teacher's page and the deputy head's page link them, encrypted for each reader."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import re
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pypdf import PdfReader

from otmetka.daemon.cli import main
from otmetka.daemon.core.config import Config
from otmetka.daemon.core.errors import OtmetkaError
from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.core.progress import Reporter
from otmetka.daemon.core.settings import build_options
from otmetka.daemon.demo.school import generate_school
from otmetka.daemon.exchange.importer import import_document
from otmetka.daemon.paper import reports
from otmetka.db import analytics, models
from otmetka.site_builder import attachments, build, crypto
from otmetka.site_builder.pages import staff_blocks
from otmetka.site_builder.pdf import engine, extracts, paper_charts, paper_tables
from otmetka.site_builder.pdf import reports as site_reports
from tests.support.acts_support import logins_for_everyone
from tests.support.analytics_factories import CLASS_ID, analytics_school

TODAY = dt.date(2026, 9, 16)
QUIET = Reporter(quiet=True)


@pytest.fixture
def school(file_db: Path) -> None:
    import_document(analytics_school(), "school.json", MarkRules())


def pdf_text(path: Path | bytes) -> str:
    reader = PdfReader(io.BytesIO(path) if isinstance(path, bytes) else path)
    return re.sub(r"\s+", " ", " ".join(page.extract_text() for page in reader.pages))


def fonts_of(path: Path) -> set[str]:
    found = set()
    for page in PdfReader(path).pages:
        for font in page["/Resources"].get("/Font", {}).values():
            found.add(str(font.get_object()["/BaseFont"]))
    return found


def test_class_report_holds_the_figures_and_the_charts(school: None, config: Config) -> None:
    result = reports.report_class(config, class_name="5А", out=None, today=TODAY)
    (path,) = result.files
    assert path == config.paths.var_dir / "reports" / "2026-09-16" / "5А.pdf"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = pdf_text(path)
    # (41/11 + 23/7 + 5)/3 = 4.004; 25 of 29 lessons; s-b and s-c at risk
    assert "Средний балл класса: 4,00" in text
    assert "Посещаемость: 86,2 % (пропущено 4 из 29 уроков)" in text
    assert "В группе риска: 2 из 3" in text
    assert "«н/а»: Английский язык" in text and "«2» подряд: 3 — Математика" in text
    assert "средний балл 2,33: Русский язык" in text
    # the charts are drawn in the PDF, with their figures as text
    for label in ("Средний балл по предметам", "Оценки по предметам", "Посещаемость по неделям"):
        assert label in text
    assert "63,6 %" in text  # attendance of the week of 7 September: 7 of 11
    assert "Аналитика: Васильев Виктор" in text and "Григорьева" not in text
    # every text, the charts' too, is set in the shipped PT Sans
    assert fonts_of(path) and all(n.endswith(("PT-Sans", "PT-Sans-Bold")) for n in fonts_of(path))
    assert "1 classes" in result.summary()


def test_report_is_recorded_and_marks_the_class_teacher_page(school: None, config: Config) -> None:
    reports.report_class(config, class_name="5А", out=None, today=TODAY)
    latest = analytics.latest_reports()
    assert set(latest) == {CLASS_ID} and latest[CLASS_ID].pages >= 2
    dirty = {(d.person_kind, d.person_id) for d in models.DirtyPerson.select()}
    assert ("teacher", "t-5") in dirty


def test_school_report_compares_classes_and_holds_each_class(
    school: None, config: Config, tmp_path: Path
) -> None:
    ticks: list[int] = []

    def bar(_label: str, total: int):  # type: ignore[no-untyped-def]
        from contextlib import nullcontext

        ticks.append(total)
        return nullcontext(ticks.append)

    out = tmp_path / "school.pdf"
    result = reports.report_school(config, out=out, bar=bar, today=TODAY)
    assert result.files[-1] == out and len(result.files) == 2  # 5А.pdf and the school
    text = pdf_text(out)
    assert "Аналитический отчёт по школе" in text
    assert "5А Дмитриева Дарья Сергеевна 3 4,00 2 86,2 %" in text
    assert "Аналитический отчёт: класс 5А" in text  # the class report follows
    class_pages = len(PdfReader(result.files[0]).pages)
    assert len(PdfReader(out).pages) == result.pages > class_pages
    assert ticks == [1, 1]  # one class: total 1, one step
    assert set(analytics.latest_reports()) == {CLASS_ID, analytics.SCHOOL}


def test_unknown_class_and_bad_out(school: None, config: Config, tmp_path: Path) -> None:
    with pytest.raises(OtmetkaError, match="no class named «9Я»; classes: 5А"):
        reports.report_class(config, class_name="9Я", out=None, today=TODAY)
    with pytest.raises(OtmetkaError, match=r"give a file name ending in \.pdf"):
        reports.report_class(config, class_name="5А", out=tmp_path / "x.txt", today=TODAY)


def test_cli_report_class(runner: CliRunner, config_file: Path, tmp_path: Path) -> None:
    source = tmp_path / "school.json"
    source.write_text(json.dumps(analytics_school(), ensure_ascii=False), encoding="utf-8")
    config = ["--config", str(config_file)]
    assert runner.invoke(main, [*config, "sync", "--file", str(source)]).exit_code == 0
    out = tmp_path / "r.pdf"
    result = runner.invoke(main, [*config, "report", "class", "5А", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "wrote 1 analytics PDFs" in result.output and out.read_bytes().startswith(b"%PDF")
    wrong = runner.invoke(main, [*config, "report", "class", "9Я"])
    assert wrong.exit_code == 1 and "no class named «9Я»" in wrong.output


# --- links on the staff pages --------------------------------------------------------------------


def _fragment(config: Config, row: dict[str, str]) -> tuple[str, bytes]:
    credential = models.Credential.get(models.Credential.login == row["login"])
    key = crypto.derive_key(row["password"], bytes(credential.salt), credential.kdf_iterations)
    html = (config.site.output_dir / "p" / f"{credential.page_id}.html").read_text("utf-8")
    sealed = json.loads(html.split('id="otm-envelope">', 1)[1].split("</script>", 1)[0])
    return crypto.decrypt_page(sealed, key, credential.page_id).decode("utf-8"), key


def _linked(config: Config, fragment: str, key: bytes, label: str) -> bytes:
    match = re.search(
        r'<a href="\.\./r/([0-9a-f]{32})\.bin" data-otm-file="([0-9a-f]{32})"[^>]*>' + label,
        fragment,
    )
    assert match is not None and match.group(1) == match.group(2)
    file_id = match.group(1)
    sealed = json.loads((config.site.output_dir / "r" / f"{file_id}.bin").read_text("ascii"))
    return crypto.decrypt_page(sealed, key, file_id)


def test_staff_pages_link_the_latest_reports_encrypted(school: None, config: Config) -> None:
    logins = logins_for_everyone(config)
    build.build_site(build_options(config, today=TODAY))
    teacher, _key = _fragment(config, logins["Дмитриева Дарья Сергеевна"])
    assert "Аналитический отчёт в PDF появится здесь" in teacher
    result = reports.report_school(config, out=None, today=TODAY)
    build.build_site(build_options(config, today=TODAY))
    teacher, key = _fragment(config, logins["Дмитриева Дарья Сергеевна"])
    class_pdf = _linked(config, teacher, key, "Скачать аналитический отчёт \\(PDF\\)")
    assert class_pdf == result.files[0].read_bytes()
    deputy, deputy_key = _fragment(config, logins["Завучева Зоя"])
    school_pdf = _linked(
        config, deputy, deputy_key, "Скачать аналитический отчёт по школе \\(PDF\\)"
    )
    assert school_pdf == result.files[-1].read_bytes()
    # A newer report replaces the file; the old one is removed.
    old = set((config.site.output_dir / "r").glob("*.bin"))
    reports.report_class(config, class_name="5А", out=None, today=TODAY + dt.timedelta(days=1))
    build.build_site(build_options(config, today=TODAY))
    new = set((config.site.output_dir / "r").glob("*.bin"))
    assert len(new) == 2 and len(old & new) == 1  # the school report's copy stays
    assert attachments.publish(config.site.output_dir, {}) == 0
    assert not list((config.site.output_dir / "r").glob("*.bin"))  # no reader: nothing kept


def test_class_reports_made_by_workers_equal_those_made_here(file_db: Path) -> None:
    day = dt.date(2026, 11, 27)
    import_document(generate_school(students=12, seed=1, as_of=day), "demo", MarkRules())
    school = site_reports.School.load(day)
    here = list(site_reports.school_pdfs(school))
    pooled: list[tuple[site_reports.ClassReport, site_reports.Pdf]] = []
    whole = site_reports.school_pdf(school, 2, lambda report, pdf: pooled.append((report, pdf)))
    assert [report for report, _ in pooled] == [report for report, _ in here]
    assert len(here) == 11  # classes 1-11, in school order
    assert [pdf.pages for _, pdf in pooled] == [pdf.pages for _, pdf in here]
    assert [pdf_text(pdf.data) for _, pdf in pooled] == [pdf_text(pdf.data) for _, pdf in here]
    # the overview (made by a worker too) comes first, then every class in order
    overview = site_reports.overview_pdf(school)
    assert whole.pages == overview.pages + sum(pdf.pages for _, pdf in here)
    merged = PdfReader(io.BytesIO(whole.data))
    first = PdfReader(io.BytesIO(overview.data)).pages[0].extract_text()
    assert merged.pages[0].extract_text() == first
    titles = [item.title for item in merged.outline if not isinstance(item, list)]
    assert titles[0] == "Аналитический отчёт по школе"
    assert titles[1:] == [f"Аналитический отчёт: класс {r.class_name}" for r, _ in here]


# --- the printed HTML and its layout ---------------------------------------------------------


def test_paper_html_has_no_hidden_tables_and_charts_as_images(school: None) -> None:
    report = site_reports.class_report(site_reports.School.load(TODAY), CLASS_ID)
    svgs = re.findall(r"<svg\b.*?</svg>", report.html, flags=re.DOTALL)
    assert svgs and 'class="sr"' in report.html
    paper = site_reports.for_paper(report.html)
    assert "<svg" not in paper and '<div class="sr">' not in paper
    assert ">\n<tr>" in report.html and not re.search(r">\s+</?(?:tr|td|p|section)\b", paper)
    images = re.findall(r'<img alt="" src="data:image/svg\+xml;base64,([^"]+)">', paper)
    drawn = [base64.b64decode(i).decode("utf-8") for i in images]
    assert drawn == [paper_charts.for_paper(svg) for svg in svgs]
    # each chart keeps every figure and label, in order (paper_charts' own tests check the rest)
    for svg, image in zip(svgs, drawn, strict=True):
        assert _texts(image) == _texts(svg) and "text-anchor" not in image
    # nothing else is dropped: every caption and every student's block stays
    for text in re.findall(r"<figcaption>(.*?)</figcaption>", report.html):
        assert f"<figcaption>{text}</figcaption>" in paper
    assert paper.count('class="pstat"') == report.html.count('class="pstat"') == 3


def _texts(svg: str) -> list[str]:
    return re.findall(r"<text\b[^>]*>([^<]*)</text>", svg)


def test_student_blocks_hold_the_figures_of_the_page(school: None) -> None:
    """The paper block draws a student's table as a picture: still the caption, the head,
    every subject and every figure, in the page's order, and the same wording around."""
    school_data = site_reports.School.load(TODAY)
    report = site_reports.class_report(school_data, CLASS_ID)
    figures = site_reports._class_figures(school_data, CLASS_ID)
    for pupil in figures.stats.pupils:
        page = str(staff_blocks.pupil_block(pupil, figures.stats, "x"))
        averages = page.split('<div class="tw"', 1)[1].split("</table>", 1)[0]
        cells = re.findall(r"<t[hd] (?:scope=\"\w+\"|class=\"num\")>([^<]*)</t[hd]>", averages)
        caption = re.findall(r"<caption>([^<]*)</caption>", averages)
        block = report.html.split(f'aria-label="Аналитика: {pupil.name}">', 1)[1]
        block = block.split("</section>", 1)[0]
        table = re.search(r'<div class="tw">(<svg\b.*?</svg>)</div>', block)
        assert table is not None and cells and caption
        assert _texts(table.group(1)) == caption + cells
        for text in re.findall(r"<p>(.*?)</p>", page):
            assert f"<p>{text}</p>" in block


def _outer_boxes(page: Any, css_class: str) -> dict[int, Any]:
    """The outermost box of each element of `css_class` on the page, by element."""
    found: dict[int, Any] = {}
    for box in page._page_box.descendants():
        if box.element is not None and css_class in (box.element.get("class") or "").split():
            found.setdefault(id(box.element), box)
    return found


def _geometry(document: Any) -> list[list[tuple[Any, ...]]]:
    return [
        [
            (box.element_tag, box.position_x, box.position_y, box.width, box.height)
            for box in page._page_box.descendants()
        ]
        for page in document.pages
    ]


def test_plain_stylesheet_lays_out_the_same_boxes(school: None) -> None:
    """A report is laid out with the engine's plain user-agent stylesheet: not one box
    moves, list items keep their markers."""
    report = site_reports.class_report(site_reports.School.load(TODAY), CLASS_ID)
    listed = "<ul><li>первый</li></ul><ol><li>второй</li></ol>"
    html = extracts.document_html([site_reports.for_paper(report.html), listed], "t")
    css = site_reports.report_css()
    plain = engine.render_document(html, css, plain=True)
    assert _geometry(plain) == _geometry(engine.render_document(html, css))
    text = pdf_text(plain.write_pdf())
    assert "первый второй" in text and "• 1." in text


def test_class_tables_are_laid_out_at_fixed_widths_that_hold_their_figures(
    school: None,
) -> None:
    report = site_reports.class_report(site_reports.School.load(TODAY), CLASS_ID)
    # the widest missed-lessons figure a term can give, in the first student's row
    widest = re.sub(
        r'<td class="num">\d+ из \d+ \([\d,]+ %\)</td>',
        '<td class="num">226 из 226 (100,0 %)</td>',
        site_reports.for_paper(report.html),
        count=1,
    )
    assert "226 из 226" in widest
    html = extracts.document_html([widest], "t")
    document = engine.render_document(html, site_reports.report_css(), plain=True)
    tables = [
        box
        for page in document.pages
        for box in page._page_box.descendants()
        if box.element_tag == "table" and box.style["table_layout"] == "fixed"
    ]
    assert {len(t.column_widths) for t in tables} == {7, 2, 5}  # subjects, at risk, students
    for table in tables:
        for cell in (b for b in table.descendants() if b.element_tag in ("td", "th")):
            right = cell.content_box_x() + cell.width
            assert all(b.position_x + b.width <= right + 0.01 for b in cell.descendants())


def test_student_blocks_are_whole_and_hold_table_and_chart_side_by_side(school: None) -> None:
    report = site_reports.class_report(site_reports.School.load(TODAY), CLASS_ID)
    html = extracts.document_html([site_reports.for_paper(report.html)], "t")
    document = engine.render_document(html, site_reports.report_css(), plain=True)
    pages = [_outer_boxes(page, "pstat") for page in document.pages]
    # break-inside: avoid holds: each block is on one page, never split
    elements = [element for page in pages for element in page]
    assert len(elements) == len(set(elements)) == 3
    for block in (box for page in pages for box in page.values()):
        table, chart = (b for b in block.descendants() if b.element_tag == "img")
        # the table's picture is drawn at its own size: not scaled, its lines stay 8 pt
        assert table.width == pytest.approx(paper_tables.TABLE_WIDTH, abs=0.01)
        assert chart.position_x > table.position_x + table.width  # to its right
        assert abs(chart.position_y - table.position_y) < 20  # on the same line, at the top
        assert chart.width == pytest.approx(block.width * 0.42, rel=0.02)
