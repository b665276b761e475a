"""Analytics reports as PDF (WeasyPrint, the project's fonts): a class's, and the school's.

A class report shows what the class teacher's page shows under «Аналитика» (the same view
models, the same SVG charts, the same wording), the class's acknowledgement and consent
figures, then a block per student: averages against the class, absences, the weekly
trend. The school report opens with every class side by side and the school charts, and
then holds every class report, each rendered as a document of its own (page numbers
restart per class) in worker processes and merged (`engine.merge_pdfs`) as it arrives.
The printed HTML leaves out what paper hides and hands the charts over as images, redrawn
in fewer elements (`for_paper`, `paper_charts`); a student's table of averages is drawn as
a picture too (`paper_tables`); and a report, made only of the project's own
markup, is laid out with the engine's plain user-agent stylesheet: the same pages, a
fraction of WeasyPrint's work.

Reads the database, writes no rows: `otmetka.daemon.paper.reports` records what was written.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from markupsafe import Markup

from otmetka.db import acts as events
from otmetka.db import open_database, queries
from otmetka.site_builder import static_files
from otmetka.site_builder.pages import analysis, audience, lookups, staff_blocks, staff_views
from otmetka.site_builder.pdf import engine, extracts, paper_charts, paper_tables
from otmetka.site_builder.workers import database_url, worker_pool

CSS_FILE = "print-report.css"
# A chart's table for screen readers (`charts._table`): hidden on paper, holds no <div>.
_SCREEN_ONLY = re.compile(r'<div class="sr">.*?</div>', re.DOTALL)
_INLINE_SVG = re.compile(r"<svg\b.*?</svg>", re.DOTALL)
# White space between a tag and a block's or a table's tag: it lays out as nothing, yet
# WeasyPrint makes a box of it and collapses it, a few hundred times a class.
_BLOCKS = "article|section|div|p|h[1-6]|table|caption|thead|tbody|tr|th|td|figure|figcaption"
_BLOCK_GAP = re.compile(rf">\s+(?=</?(?:{_BLOCKS})\b)")


@functools.cache
def report_css() -> str:
    return static_files.text(CSS_FILE)


@dataclass
class School:
    """What every class report of one run needs: loaded once."""

    lookup: lookups.Lookup
    roster: audience.Roster
    staff: staff_blocks.StaffData
    school_name: str

    @classmethod
    def load(cls, today: dt.date, school_name: str = "") -> School:
        ref = queries.reference()
        lookup = lookups.Lookup.build(ref, today)
        refusing = {g for g, state in events.consent_states().items() if state in events.ON_PAPER}
        roster = audience.load_roster(today, ref.classes, ref.teachers, refusing)
        name = (ref.school.name if ref.school else "") or school_name
        return cls(lookup, roster, staff_blocks.StaffData.load(lookup, roster), name)


@dataclass(frozen=True)
class ClassReport:
    class_id: str
    class_name: str
    html: str  # the <article>
    summary: staff_views.ClassSummary


@dataclass(frozen=True)
class _ClassFigures:
    scope: lookups.ClassScope
    stats: analysis.AnalyticsView
    control: staff_views.ControlView

    def summary(self, lookup: lookups.Lookup) -> staff_views.ClassSummary:
        return staff_views.class_summary(self.stats, self.control, self.scope.class_row, lookup)


def _class_figures(school: School, class_id: str) -> _ClassFigures:
    """One class bundle analysed, like a page build."""
    lookup = school.lookup
    scope = lookups.ClassScope.build(lookup.classes[class_id], lookup)
    start, end = scope.load_range
    bundle = queries.class_bundle(
        class_id, start, end, finals_from=scope.year_start, notes_from=scope.year_start
    )
    index = lookups.ClassIndex(bundle, scope, lookup)
    stats, control = staff_blocks.class_staff(scope, index, school.roster, school.staff.facts)
    return _ClassFigures(scope, stats, control)


def _pupil_table(pupil: analysis.PupilStat, stats: analysis.AnalyticsView) -> Markup:
    """The page's table of a student's averages against the class's, as a picture."""
    name, *titles = staff_blocks.AVERAGES_COLUMNS
    table = paper_tables.FiguresTable(
        staff_blocks.averages_caption(stats.period),
        (name, titles),
        staff_blocks.averages_rows(pupil),
    )
    return Markup(paper_tables.figures_table(table))


def _pupil_block(pupil: analysis.PupilStat, stats: analysis.AnalyticsView, chart_id: str) -> Markup:
    """A student's block: the page's figures and chart (`staff_blocks.pupil_chart`)."""
    chart = staff_blocks.pupil_chart(pupil, stats, chart_id)
    table = _pupil_table(pupil, stats) if pupil.subjects else None
    template = extracts.environment().get_template("report_pupil.html.j2")
    return Markup(template.render(p=pupil, stats=stats, chart=chart, table=table))


def class_report(school: School, class_id: str) -> ClassReport:
    """One class's report as an HTML article."""
    lookup = school.lookup
    figures = _class_figures(school, class_id)
    scope, stats = figures.scope, figures.stats
    prefix = f"r-{staff_blocks.class_anchor(class_id)}"
    pupils = [_pupil_block(p, stats, f"{prefix}-{p.anchor}") for p in stats.pupils]
    html = (
        extracts.environment()
        .get_template("report_class.html.j2")
        .render(
            school_name=school.school_name,
            class_teacher=lookup.teacher_full(scope.class_row.class_teacher_id),
            today=lookup.today,
            stats=stats,
            charts=staff_blocks.class_charts(stats, prefix),
            control=figures.control,
            cls=staff_views.ClassListView(scope.class_row.name, stats.period, []),
            pupil_blocks=pupils,
        )
    )
    return ClassReport(class_id, scope.class_row.name, html, figures.summary(lookup))


def school_overview(school: School, summaries: Sequence[staff_views.ClassSummary]) -> str:
    template = extracts.environment().get_template("report_school.html.j2")
    return template.render(
        school_name=school.school_name,
        today=school.lookup.today,
        summaries=summaries,
        school_charts=staff_blocks.school_charts(summaries, "r-school"),
    )


@dataclass(frozen=True)
class Pdf:
    data: bytes
    pages: int


def _svg_image(match: re.Match[str]) -> str:
    svg = paper_charts.for_paper(match.group(0))
    data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return f'<img alt="" src="data:image/svg+xml;base64,{data}">'


def for_paper(article: str) -> str:
    """The article as WeasyPrint lays it out fastest, looking the same: without the charts'
    hidden tables, each chart's SVG as an image, and no white space between blocks. WeasyPrint
    runs every node of an inline SVG through the page's style cascade and then parses the
    SVG again; as an image it is parsed once. Together that is about a fifth of a report's
    time."""
    article = _INLINE_SVG.sub(_svg_image, _SCREEN_ONLY.sub("", article))
    return _BLOCK_GAP.sub(">", article)


def to_pdf(articles: Sequence[str], title: str) -> Pdf:
    html = extracts.document_html([Markup(for_paper(a)) for a in articles], title)
    rendered = engine.render_pdf(html, report_css(), plain=True)  # only our own markup
    return Pdf(rendered.data, rendered.pages)


def class_pdf(school: School, class_id: str) -> tuple[ClassReport, Pdf]:
    report = class_report(school, class_id)
    return report, to_pdf([report.html], f"Аналитика {report.class_name}")


def overview_pdf(school: School) -> Pdf:
    """The school report's first pages: every class side by side, and the school charts."""
    lookup = school.lookup
    summaries = [_class_figures(school, c).summary(lookup) for c in lookup.classes]
    return to_pdf([school_overview(school, summaries)], "Аналитика: школа")


def _rendered(
    school: School, workers: int, overview: bool
) -> Iterator[tuple[ClassReport | None, Pdf]]:
    """The overview first (report None) if asked, then every class in school order; by
    `workers` processes (each loads the school once) when there are several classes."""
    class_ids = list(school.lookup.classes)
    url = database_url()
    if workers < 2 or len(class_ids) < 2 or url is None:
        if overview:
            yield None, overview_pdf(school)
        yield from (class_pdf(school, class_id) for class_id in class_ids)
        return
    setup = (url, school.lookup.today, school.school_name)
    with worker_pool(min(workers, len(class_ids)), _start, setup) as pool:
        first = pool.submit(_overview_pdf) if overview else None  # first in the queue
        classes = pool.map(_class_pdf, class_ids)
        if first is not None:
            yield None, first.result()
        yield from classes


def school_pdfs(school: School, workers: int = 1) -> Iterator[tuple[ClassReport, Pdf]]:
    """Every class's report, class by class, in school order."""
    for report, pdf in _rendered(school, workers, overview=False):
        assert report is not None, "no overview was asked for"
        yield report, pdf


def school_pdf(school: School, workers: int, on_class: Callable[[ClassReport, Pdf], None]) -> Pdf:
    """The school's PDF: the overview, then every class's report. Each class is handed to
    `on_class` and merged as it arrives, so the merge runs while the workers still render
    instead of after them."""

    def parts() -> Iterator[bytes]:
        for report, pdf in _rendered(school, workers, overview=True):
            if report is not None:
                on_class(report, pdf)
            yield pdf.data

    data, pages = engine.merge_pdfs(parts())
    return Pdf(data, pages)


_school: School | None = None  # a worker's own, loaded once


def _start(url: str, today: dt.date, school_name: str) -> None:
    global _school
    open_database(url)
    _school = School.load(today, school_name)


def _class_pdf(class_id: str) -> tuple[ClassReport, Pdf]:
    assert _school is not None, "the worker was not started"
    return class_pdf(_school, class_id)


def _overview_pdf() -> Pdf:
    assert _school is not None, "the worker was not started"
    return overview_pdf(_school)
