"""Analytics reports as PDF (WeasyPrint, the project's fonts): a class's, and the school's.

A class report shows what the class teacher's page shows under «Аналитика» (the same view
models, the same SVG charts, the same wording), the class's acknowledgement and consent
figures, then a block per student: averages against the class, absences, the weekly
trend. The school report opens with every class side by side and the school charts, and
then holds every class report, each rendered as a document of its own (page numbers
restart per class) and merged (`engine.merge_pdfs`).

Reads the database, writes no rows: `otmetka.daemon.paper.reports` records what was written.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from markupsafe import Markup

from otmetka.db import acts as events
from otmetka.db import open_database
from otmetka.db import queries as q
from otmetka.site_builder import static_files
from otmetka.site_builder.pages import audience, lookups, staff_blocks, staff_views
from otmetka.site_builder.pdf import engine, extracts
from otmetka.site_builder.workers import database_url, spawn_pool

CSS_FILE = "print-report.css"


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
        ref = q.reference()
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


def class_report(school: School, class_id: str) -> ClassReport:
    """One class's report as an HTML article: one class bundle, like a page build."""
    lookup = school.lookup
    scope = lookups.ClassScope.build(lookup.classes[class_id], lookup)
    start, end = scope.load_range
    bundle = q.class_bundle(
        class_id, start, end, finals_from=scope.year_start, notes_from=scope.year_start
    )
    index = lookups.ClassIndex(bundle, scope, lookup)
    stats, control = staff_blocks.class_staff(scope, index, school.roster, school.staff.facts)
    prefix = f"r-{staff_blocks.class_anchor(class_id)}"
    pupils = [staff_blocks.pupil_block(p, stats, f"{prefix}-{p.anchor}") for p in stats.pupils]
    html = (
        extracts.environment()
        .get_template("report_class.html.j2")
        .render(
            school_name=school.school_name,
            class_teacher=lookup.teacher_full(scope.class_row.class_teacher_id),
            today=lookup.today,
            stats=stats,
            charts=staff_blocks.class_charts(stats, prefix),
            control=control,
            cls=staff_views.ClassListView(scope.class_row.name, stats.period, []),
            pupil_blocks=pupils,
        )
    )
    summary = staff_views.class_summary(stats, control, scope.class_row, lookup)
    return ClassReport(class_id, scope.class_row.name, html, summary)


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


def to_pdf(articles: Sequence[str], title: str) -> Pdf:
    html = extracts.document_html([Markup(a) for a in articles], title)
    rendered = engine.render_pdf(html, report_css())
    return Pdf(rendered.data, rendered.pages)


def class_pdf(school: School, class_id: str) -> tuple[ClassReport, Pdf]:
    report = class_report(school, class_id)
    return report, to_pdf([report.html], f"Аналитика {report.class_name}")


def school_pdfs(school: School, workers: int = 1) -> Iterator[tuple[ClassReport, Pdf]]:
    """Every class's report, class by class, in school order; by `workers` processes
    (each loads the school once) when there are several classes to do."""
    class_ids = list(school.lookup.classes)
    url = database_url()
    if workers < 2 or len(class_ids) < 2 or url is None:
        yield from (class_pdf(school, class_id) for class_id in class_ids)
        return
    setup = (url, school.lookup.today, school.school_name)
    with spawn_pool(min(workers, len(class_ids)), _start, setup) as pool:
        yield from pool.map(_class_pdf, class_ids)


_school: School | None = None  # a worker's own, loaded once


def _start(url: str, today: dt.date, school_name: str) -> None:
    global _school
    open_database(url)
    _school = School.load(today, school_name)


def _class_pdf(class_id: str) -> tuple[ClassReport, Pdf]:
    assert _school is not None, "the worker was not started"
    return class_pdf(_school, class_id)


def school_pdf(school: School, parts: Sequence[tuple[ClassReport, Pdf]]) -> Pdf:
    """The overview followed by the class reports already rendered."""
    overview = to_pdf([school_overview(school, [r.summary for r, _ in parts])], "Аналитика: школа")
    data, pages = engine.merge_pdfs([overview.data, *(pdf.data for _, pdf in parts)])
    return Pdf(data, pages)
