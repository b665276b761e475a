"""The parts of the staff pages (and of the PDF reports, which show the same): the class
journal as one HTML table, the analytics charts, the pupils' blocks, and the school-wide
facts and per-class tables they are made from.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from otmetka.db import acts as events
from otmetka.db import analytics, staff_facts
from otmetka.db import printing as printed
from otmetka.site_builder import attachments, formatting
from otmetka.site_builder.pages import analysis, audience, charts, lookups, staff_views

# Where the page assembly looks for it; the deputy head's class summaries need it too.
class_anchor = staff_views.class_anchor


def data_time(today: dt.date, now: dt.datetime) -> dt.datetime | None:
    """When the staff pages' data is read, for «данные на»: `now`, unless the build is for a
    day that is over in every time zone (a rebuild of a past day, a test): such a page
    names its day only, and comes out the same whenever it is rendered."""
    over = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(12), tzinfo=dt.UTC)
    return now.replace(microsecond=0) if now < over else None


@dataclass
class StaffData:
    """School-wide facts for the staff pages, loaded once per build (a fixed number of
    statements, whatever the number of classes)."""

    facts: staff_views.SchoolFacts
    reports: dict[str, attachments.ReportFile]
    roster: audience.Roster

    @classmethod
    def load(cls, lookup: lookups.Lookup, roster: audience.Roster) -> StaffData:
        today = lookup.today
        scopes = [lookups.ClassScope.build(c, lookup) for c in lookup.classes.values()]
        since = min((s.period_range[0] for s in scopes), default=today)
        since = min(since, lookups.week_of(today)[0])
        read_at = data_time(today, dt.datetime.now(dt.UTC))  # before the first read
        consents = events.consent_states()
        facts = staff_views.SchoolFacts(
            consents=consents,
            acknowledgements=analytics.acknowledgement_rows(since),
            paper=events.paper_list(today),
            no_slips=printed.people_without_slips(needing_logins(roster, consents)),
            phones=staff_facts.guardian_phones(),
            read_at=read_at,
        )
        names = {cid: row.name for cid, row in lookup.classes.items()}
        return cls(facts, attachments.report_files(names), roster)

    def breach_lines(self, lookup: lookups.Lookup) -> list[staff_views.BreachLine]:
        names: dict[tuple[str, str], str] = {
            (audience.TEACHER, tid): lookup.teacher_full(tid) for tid in lookup.teachers
        }
        for sid, student in self.roster.students.items():
            names[(audience.STUDENT, sid)] = lookups.person_name(student)
        for guardians in self.roster.links.values():
            for g in guardians:
                names[(audience.GUARDIAN, g.id)] = lookups.full_name(
                    g.last_name, g.first_name, g.middle_name
                )
        return staff_views.breach_lines(events.breaches(include_closed=True), names, lookup.today)


def class_staff(
    scope: lookups.ClassScope,
    index: lookups.ClassIndex,
    roster: audience.Roster,
    facts: staff_views.SchoolFacts,
) -> tuple[analysis.AnalyticsView, staff_views.ControlView]:
    """The analytics and control tables of a class, from its bundle: no statement."""
    everyone = roster.by_class.get(scope.class_row.id, [])
    start, end = scope.period_range
    figures = analytics.class_analytics(
        index.bundle,
        [s.id for s in everyone],
        start,
        end,
        scope.today,
        period_id=scope.period.id if scope.period else None,
    )
    period = scope.period.name if scope.period else ""
    view = analysis.analytics_view(figures, everyone, scope.class_row, period, index.lookup)
    return view, staff_views.control_view(scope, everyone, roster.links, facts)


def needing_logins(roster: audience.Roster, consents: dict[str, str]) -> set[audience.PageKey]:
    """Who should have been given a login: those with a page, families on paper aside."""
    refusing = {gid for gid, state in consents.items() if state in events.ON_PAPER}
    paper = roster.paper_students
    if refusing and not paper:  # a roster loaded without the consents
        paper = events.students_of_refusing_families(refusing)
    people = {(audience.STUDENT, sid) for sid in roster.students if sid not in paper}
    return people | {(audience.GUARDIAN, gid) for gid in roster.guardians if gid not in refusing}


# --- the journal, charts, blocks ----------------------------------------------------------


def _cell(cell: staff_views.Cell) -> str:
    marks, codes = cell
    if not marks and not codes:
        return "<td></td>"
    parts = [f"<b>{escape(m)}</b>" for m in marks] + [f"<i>{escape(c)}</i>" for c in codes]
    return f"<td>{' '.join(parts)}</td>"


def journal_table(journal: staff_views.SubjectJournal, table_id: str) -> Markup:
    """Students × dates of one subject. Built as one string: a class teacher's page holds
    tens of thousands of cells, and a template loop per cell would dominate the build."""
    heads = "".join(f'<th scope="col">{day.day}.{day.month:02}</th>' for day in journal.dates)
    rows = []
    done: dict[staff_views.Cell, str] = {}  # the same few cells recur across the table
    for line in journal.lines:
        cells = "".join(
            [done.get(cell) or done.setdefault(cell, _cell(cell)) for cell in line.cells]
        )
        finals = escape(", ".join(line.finals)) if line.finals else ""
        rows.append(
            f'<tr><th scope="row">{escape(line.name)}</th>{cells}'
            f'<td class="num">{formatting.average(line.average)}</td><td>{finals}</td></tr>'
        )
    label = f"Журнал: {escape(journal.subject)}"
    return Markup(
        f'<div class="tw" tabindex="0" role="region" aria-label="{label}">'
        f'<table class="jr" id="{table_id}">'
        f'<caption class="sr">{label}</caption>'
        f'<thead><tr><th scope="col">Ученик</th>{heads}<th scope="col">Ср. балл</th>'
        f'<th scope="col">Итог</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
    )


SPREAD_SERIES = ("«5»", "«4»", "«3»", "«2»")


def class_charts(stats: analysis.AnalyticsView, prefix: str) -> dict[str, Markup]:
    """The charts of a class's analytics (the page and the PDF report draw the same)."""
    subjects = [s for s in stats.subjects if s.marks]
    averages = [(s.subject, s.average) for s in subjects]
    reasons = [(formatting.ATTENDANCE_CATEGORIES[c].capitalize(), n) for c, n in stats.absences]
    return {
        "averages": _averages(f"{prefix}-avg", "Средний балл по предметам", "Предмет", averages),
        "spread": charts.stacked_bars(
            f"{prefix}-spread",
            "Оценки по предметам",
            [charts.Stack(s.subject, s.spread) for s in subjects],
            series=SPREAD_SERIES,
            headers=("Предмет", *SPREAD_SERIES, "Всего"),
        ),
        "weeks": charts.bar_chart(
            f"{prefix}-weeks",
            "Посещаемость по неделям",
            [
                charts.Bar(
                    f"{w.start.day}.{w.start.month:02}",
                    w.attendance,
                    formatting.percent(w.attendance),
                )
                for w in stats.weeks
            ],
            maximum=1,
            headers=("Неделя с", "Посещаемость"),
            note="доля уроков, на которых ученики были",
            upright=True,
        ),
        "reasons": _counts(
            f"{prefix}-reasons", "Пропуски и опоздания по причинам", ("Причина", "Уроков"), reasons
        ),
    }


def _averages(
    chart_id: str, title: str, header: str, items: Sequence[tuple[str, float | None]]
) -> Markup:
    """Average marks on the scale of marks, up to 5."""
    bars = [charts.Bar(label, value, formatting.average(value)) for label, value in items]
    return charts.bar_chart(chart_id, title, bars, maximum=5, headers=(header, "Средний балл"))


def _counts(
    chart_id: str, title: str, headers: tuple[str, str], items: Sequence[tuple[str, int]]
) -> Markup:
    """Counts, scaled to the largest."""
    bars = [charts.Bar(label, n, str(n)) for label, n in items]
    top = max((n for _label, n in items), default=0) or 1
    return charts.bar_chart(chart_id, title, bars, maximum=top, headers=headers)


def pupil_chart(pupil: analysis.PupilStat, stats: analysis.AnalyticsView, chart_id: str) -> Markup:
    labels = [f"{w.start.day}.{w.start.month:02}" for w in stats.weeks]
    return charts.line_chart(
        chart_id,
        f"Средний балл по неделям: {pupil.name}",
        labels,
        [
            charts.Series("ученик", pupil.weekly),
            charts.Series("класс", tuple(w.average for w in stats.weeks)),
        ],
        minimum=2,
        maximum=5,
        label_header="Неделя с",
    )


def pupil_block(pupil: analysis.PupilStat, stats: analysis.AnalyticsView, chart_id: str) -> Markup:
    """A pupil's figures on the class teacher's page: why at risk, what was missed, the
    averages against the class's, the weeks' chart. Written here, not by a template: a
    class page has one per pupil, and Jinja spent most of their time escaping."""
    name = escape(pupil.name)
    parts = [
        f'<section class="pstat" aria-label="Аналитика: {name}">\n<h3>Аналитика: {name}</h3>\n'
    ]
    if pupil.risks:
        risks = "; ".join(escape(risk.text) for risk in pupil.risks)
        parts.append(f'<p><strong class="note">В группе риска:</strong> {risks}</p>')
    parts.append(_missed_line(pupil))
    if pupil.subjects:
        parts.append(_averages_table(pupil, stats.period))
    parts.append(f"{pupil_chart(pupil, stats, chart_id)}\n</section>")
    return Markup("".join(parts))


def _missed_line(pupil: analysis.PupilStat) -> str:
    share = "" if pupil.missed_share is None else f" ({formatting.percent(pupil.missed_share)})"
    categories = formatting.ATTENDANCE_CATEGORIES
    counts = [f"{escape(categories[c])} — {n}" for c, n in pupil.absences if n]
    listed = ": " + ", ".join(counts) if counts else ""
    return f"<p>Пропущено {pupil.missed} из {pupil.lessons} уроков{share}{listed}.</p>\n"


AVERAGES_COLUMNS = ("Предмет", "Ученик", "Класс", "Разница")


def averages_caption(period: str) -> str:
    """The caption of a pupil's averages table (not escaped)."""
    return f"Средний балл ученика и класса{f': {period}' if period else ''}"


def averages_rows(pupil: analysis.PupilStat) -> list[tuple[str, tuple[str, str, str]]]:
    """A subject and its three figures (the pupil's, the class's, the difference) a row."""
    return [
        (
            subject,
            (formatting.average(own), formatting.average(of_class), _difference(own, of_class)),
        )
        for subject, own, of_class in pupil.subjects
    ]


def _averages_table(pupil: analysis.PupilStat, period: str) -> str:
    rows = "".join(
        f'<tr><th scope="row">{escape(subject)}</th><td class="num">{own}'
        f'</td><td class="num">{of_class}</td>'
        f'<td class="num">{difference}</td></tr>\n'
        for subject, (own, of_class, difference) in averages_rows(pupil)
    )
    caption = averages_caption(str(escape(period)) if period else "")
    return (
        f'<div class="tw" tabindex="0" role="region" aria-label="Средний балл: '
        f'{escape(pupil.name)}"><table>\n<caption>{caption}</caption>\n{_AVERAGES_HEAD}'
        f"<tbody>\n{rows}</tbody>\n</table></div>\n"
    )


_AVERAGES_HEAD = (
    "<thead><tr>"
    + "".join(f'<th scope="col">{title}</th>' for title in AVERAGES_COLUMNS)
    + "</tr></thead>\n"
)


def _difference(own: float | None, of_class: float | None) -> str:
    if own is None or of_class is None:
        return "—"
    return f"{own - of_class:+.2f}".replace(".", ",")


def school_charts(summaries: Sequence[staff_views.ClassSummary], prefix: str) -> dict[str, Markup]:
    averages = [(s.name, s.average) for s in summaries]
    at_risk = [(s.name, s.at_risk) for s in summaries]
    return {
        "averages": _averages(f"{prefix}-avg", "Средний балл по классам", "Класс", averages),
        "attendance": charts.bar_chart(
            f"{prefix}-att",
            "Посещаемость по классам",
            [charts.Bar(s.name, s.attendance, formatting.percent(s.attendance)) for s in summaries],
            maximum=1,
            headers=("Класс", "Посещаемость"),
        ),
        "risk": _counts(f"{prefix}-risk", "Ученики в группе риска", ("Класс", "Учеников"), at_risk),
    }
