"""A child's section and week at a glance as HTML: the parts of the pages a build writes most.

Every student's page, guardian's page and class teacher's page shows the section, and the
family's pages the glance, thousands of times a build, so they are written here in Python
rather than as Jinja templates: the templates spent a third of their time escaping values
and wrapping them as Markup. The output is what the templates gave, byte for byte
(tests/site_builder/test_same_pages.py).

Values from the journal are escaped as Jinja's autoescape does (`text`); dates and numbers
come from `formatting` and hold no markup. The lessons of the week, the marks of the grades
table, the homework and the tests are rendered once per distinct item (`ChildItems`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Hashable, Iterable
from typing import NamedTuple, TypeVar

from markupsafe import Markup

from otmetka.site_builder.formatting import (
    ATTENDANCE_CATEGORIES,
    GROUP_KINDS,
    MARK_KINDS,
    average,
    date_long,
    date_short,
    day_month,
    number,
    percent,
    weekday,
)
from otmetka.site_builder.markdown import render_markdown
from otmetka.site_builder.pages import family, week


def text(value: str) -> str:
    """`value` escaped as markupsafe (Jinja's autoescape) escapes it."""
    return (
        value.replace("&", "&amp;")
        .replace(">", "&gt;")
        .replace("<", "&lt;")
        .replace("'", "&#39;")
        .replace('"', "&#34;")
    )


# --- the items a section repeats: each distinct one rendered once per class ---------------


def lesson_li(x: family.LessonView) -> str:
    """A lesson of the child's week, with the child's marks, absence and homework in it."""
    changed = x.original_teacher or x.moved_from
    cls = " off" if x.cancelled or x.moved_away else " chg" if changed else ""
    out = [
        f'<li class="ls{cls}"><p class="ls-h"><span class="n">{x.slot}</span> '
        f'<span class="tm">{text(x.time)}</span> <b class="subj">{text(x.subject)}</b>'
    ]
    if x.teacher or x.room:
        room = f", каб. {text(x.room)}" if x.room else ""
        out.append(f" <small>{text(x.teacher)}{room}</small>")
    if x.topic:
        out.append(f" <small>· {text(x.topic)}</small>")
    out.append(_lesson_notes(x))
    out.append("</p>")
    out.extend(map(_lesson_mark, x.marks))
    if x.absence:
        code, kind = _absence_code(x.absence), _absence_kind(x.absence)
        out.append(f'<p class="ls-x">Отметка: {code} <small>({kind})</small></p>')
    for hw in x.homework:
        alone = " (индивидуально)" if hw.individual else ""
        out.append(
            f'<div class="ls-hw"><small>Задано{alone}:</small>'
            f'<div class="md">{render_markdown(hw.text)}</div></div>'
        )
    out.append("</li>\n")
    return "".join(out)


def _lesson_notes(x: family.LessonView) -> str:
    notes = []
    if x.cancelled:
        notes.append(' <strong class="note">отменён</strong>')
    elif x.moved_away:
        notes.append(f' <strong class="note">перенесён{_moved(" на ", x.moved_to)}</strong>')
    if x.moved_from:
        notes.append(f' <strong class="note">перенесён{_moved(" с ", x.moved_from)}</strong>')
    if x.original_teacher:
        why = f" ({text(x.substitution_reason)})" if x.substitution_reason else ""
        by = text(x.original_teacher)
        notes.append(f' <strong class="note">замена: по расписанию — {by}{why}</strong>')
    return "".join(notes)


def _moved(word: str, where: tuple[dt.date, int | None] | None) -> str:
    if not where:
        return ""
    slot = f", {where[1]}-й урок" if where[1] is not None else ""
    return f"{word}{day_month(where[0])}{slot}"


def _lesson_mark(m: family.MarkView) -> str:
    weight = f" <small>×{number(m.weight)}</small>" if m.weight != 1 else ""
    title = f" <small>· {text(m.title)}</small>" if m.title else ""
    return f'<p class="ls-x">Оценка: {_raw(m)}{weight}{title}</p>'


def _raw(m: family.MarkView) -> str:
    if m.low:
        return f'<b class="low">{text(m.raw)}</b> <span class="low-w">(неудовлетворительно)</span>'
    return f"<b>{text(m.raw)}</b>"


def _absence_code(a: family.AbsenceView) -> str:
    title = f" — {text(a.code_title)}" if a.code_title else ""
    return f"<b>{text(a.code)}</b>{title}"


def _absence_kind(a: family.AbsenceView) -> str:
    late = f", {a.minutes_late} мин" if a.minutes_late else ""
    return f"{text(ATTENDANCE_CATEGORIES[a.category])}{late}"


def mark_li(m: family.MarkView) -> str:
    """A mark in the grades table."""
    parts = [f"<li>{_raw(m)} <small>{date_short(m.date)}"]
    if m.weight != 1:
        parts.append(f" · ×{number(m.weight)}")
    if m.kind in MARK_KINDS:
        parts.append(f" · {text(MARK_KINDS[m.kind])}")
    if m.title:
        parts.append(f" · {text(m.title)}")
    if m.comment:
        parts.append(f" · «{text(m.comment)}»")
    parts.append("</small></li>")
    return "".join(parts)


def homework_li(hw: family.HomeworkView) -> str:
    """A homework of the list for the next week or the past one."""
    alone = " · <em>индивидуальное задание</em>" if hw.individual else ""
    due = f"{day_month(hw.due_date)}, {weekday(hw.due_date).lower()}"
    return (
        f'<li><p class="it-h"><b>{text(hw.subject)}</b> — к {due}{alone}</p>\n'
        f'<div class="md">{render_markdown(hw.text)}</div></li>\n'
    )


def work_tr(x: family.WorkView) -> str:
    """A test or check work of the tables of works to come and done."""
    badge = ' <strong class="note">контрольная</strong>' if x.control_badge else ""
    return (
        f"<tr><td>{date_short(x.date)}</td><td>{text(x.subject)}</td>"
        f"<td>{text(x.label)}{badge}</td></tr>\n"
    )


Item = TypeVar("Item", bound=Hashable)


def _memoised(render: Callable[[Item], str]) -> Callable[[Iterable[Item]], str]:
    memo: dict[Item, str] = {}

    def joined(items: Iterable[Item]) -> str:
        out = []
        for item in items:
            html = memo.get(item)
            if html is None:
                html = memo[item] = render(item)
            out.append(html)
        return "".join(out)

    return joined


class ChildItems:
    """The items a child's section repeats most, each distinct one rendered once: most read
    the same for many children of a class. One per class, so the memo stays bounded."""

    def __init__(self) -> None:
        self.lessons = _memoised(lesson_li)
        self.marks = _memoised(mark_li)
        self.homework = _memoised(homework_li)
        self.works = _memoised(work_tr)


# --- the section ------------------------------------------------------------------------------


class Section(NamedTuple):
    """A student's section as the family sees it, and as the class teacher's page shows it:
    without the timetable, homework, teachers and holidays, the same for the whole class (a
    page of thirty copies would be three times the size)."""

    whole: Markup
    brief: Markup


def section(
    c: family.ChildView, weeks: list[week.WeekView], today: dt.date, items: ChildItems
) -> Section:
    """One student's section, rendered once for every page that shows the student."""
    anchor = text(c.anchor)
    head = [
        f'<section class="child" id="{anchor}" aria-labelledby="{anchor}-h">\n'
        f'<h2 id="{anchor}-h">{text(c.name)}, {text(c.class_name)}</h2>'
    ]
    timetable = [part for w in weeks for part in _week(w, today, items)]
    # Each block is (shown to the class teacher too, its parts).
    blocks = [
        (True, head),
        (False, timetable),
        (True, _grades(c.grades, items)),
        (False, _homework(c.homework, items)),
        (True, _attendance(c.attendance)),
        (True, _tests(c.tests, items)),
        (False, _teachers(c.teachers)),
        (True, _groups(c.groups)),
        (False, _holidays(c.holidays)),
        (True, _recommendations(c.recommendations)),
        (True, ["</section>"]),
    ]
    whole = "".join([part for _, parts in blocks for part in parts])
    brief = "".join([part for shared, parts in blocks if shared for part in parts])
    return Section(Markup(whole), Markup(brief))


def _week(w: week.WeekView, today: dt.date, items: ChildItems) -> list[str]:
    t = w.timetable
    opened = " open" if w.current else ""
    out = [
        f"<details{opened}><summary><h3>Расписание: {text(w.label.lower())}, "
        f"{day_month(t.week_start)} — {day_month(t.week_end)}</h3></summary>\n"
    ]
    for day in t.days:
        is_today = day.date == today
        mark = " today" if is_today else ""
        said = " (сегодня)" if is_today else ""
        holiday = f" — {text(day.holiday)}" if day.holiday else ""
        name = f"{weekday(day.date)}, {day_month(day.date)}"
        out.append(f'<h4 class="day{mark}">{name}{said}{holiday}</h4>\n')
        if day.lessons:
            out.append(f'<ol class="lessons">\n{items.lessons(day.lessons)}</ol>\n')
        else:
            out.append('<p class="noday">уроков нет</p>\n')
    out.append("</details>\n")
    return out


def _period(period: str) -> str:
    return f": {text(period)}" if period else ""


def _grades(g: family.GradesView, items: ChildItems) -> list[str]:
    out: list[str] = []
    out.append(f"<details open><summary><h3>Оценки{_period(g.period)}</h3></summary>\n")
    if g.without_marks:
        out.append(
            "<p>В 1 классе учат без отметок: оценки не ставят, успехи ребёнка обсуждают "
            "с учителем.</p>\n"
        )
    elif g.subjects:
        out.append(
            '<div class="tw"><table class="grades cards">\n'
            f'<caption class="sr">Оценки по предметам{_period(g.period)}</caption>\n'
            '<thead><tr><th scope="col">Предмет</th><th scope="col">Оценки</th>'
            '<th scope="col">Средний балл</th><th scope="col">Итог</th></tr></thead>\n'
            "<tbody>\n"
        )
        out.extend(_subject_tr(s, items) for s in g.subjects)
        out.append(
            "</tbody>\n</table></div>\n"
            f"<p>Средний балл по всем предметам: <b>{average(g.average)}</b>. {_AVERAGE_NOTE}</p>\n"
        )
    else:
        out.append("<p>Оценок пока нет.</p>\n")
    out.append("</details>\n")
    return out


_AVERAGE_NOTE = (
    "Средний балл по предмету учитывает вес оценки («×2» — оценка считается дважды); "
    "зачёты и «н/а» в нём не считаются. «2» и средний балл ниже 3 выделены и подписаны."
)


def _subject_tr(s: family.SubjectGrades, items: ChildItems) -> str:
    marks = f'<ul class="mk">{items.marks(s.marks)}</ul>' if s.marks else "нет оценок"
    low, said = (" low", ' <span class="low-w">ниже 3</span>') if s.low else ("", "")
    finals = "; ".join(f"{text(f.period)}: <b>{text(f.raw)}</b>" for f in s.finals) or "—"
    return (
        f'<tr><th scope="row">{text(s.subject)}</th><td>{marks}</td>'
        f'<td data-l="Средний балл" class="num{low}">{average(s.average)}{said}</td>'
        f'<td data-l="Итог">{finals}</td></tr>\n'
    )


def _homework(h: family.HomeworkListView, items: ChildItems) -> list[str]:
    return [
        "<details><summary><h3>Домашние задания</h3></summary>\n",
        "<h4>На ближайшую неделю</h4>\n",
        _items_or(items.homework(h.upcoming), "Заданий нет."),
        "<h4>За прошедшую неделю</h4>\n",
        _items_or(items.homework(h.recent), "Заданий не было."),
        "</details>\n",
    ]


def _items_or(html: str, none: str) -> str:
    return f'<ul class="items">\n{html}</ul>\n' if html else f"<p>{none}</p>\n"


def _attendance(a: family.AttendanceView) -> list[str]:
    out: list[str] = []
    period = _period(a.period)
    out.append(f"<details><summary><h3>Посещаемость{period}</h3></summary>\n")
    share = a.present_share
    if share is not None:
        unexcused = f", без уважительной причины — {a.unexcused}" if a.unexcused else ""
        out.append(
            f"<p>Посещено <b>{percent(share)}</b> уроков: пропущено {a.missed} из {a.lessons}"
            f"{unexcused}.</p>\n"
        )
    out.append(
        f'<div class="tw"><table>\n<caption>Пропуски и опоздания{period}</caption>\n'
        '<thead><tr><th scope="col">Причина</th><th scope="col">Уроков</th></tr></thead>\n'
        "<tbody>\n"
    )
    for category, count in a.counts:
        out.append(
            f'<tr><th scope="row">{text(ATTENDANCE_CATEGORIES[category])}</th>'
            f'<td class="num">{count}</td></tr>\n'
        )
    out.append("</tbody>\n</table></div>\n")
    if a.absences:
        out.append(
            '<div class="tw"><table class="cards">\n<caption>Пропуски по урокам</caption>\n'
            '<thead><tr><th scope="col">Дата</th><th scope="col">Урок</th>'
            '<th scope="col">Отметка</th></tr></thead>\n<tbody>\n'
        )
        out.extend(
            f"<tr><td>{date_short(x.date)}</td><td>{x.slot}-й урок, {text(x.subject)}</td>"
            f"<td>{_absence_code(x)} ({_absence_kind(x)})</td></tr>\n"
            for x in a.absences
        )
        out.append("</tbody>\n</table></div>\n")
    else:
        out.append("<p>Пропусков нет.</p>\n")
    out.append("</details>\n")
    return out


def _tests(w: family.TestsView, items: ChildItems) -> list[str]:
    out: list[str] = []
    out.append(
        f"<details><summary><h3>Контрольные и проверочные работы{_period(w.period)}</h3>"
        "</summary>\n"
    )
    for title, works in (("Предстоящие", w.upcoming), ("Прошедшие", w.past)):
        if works:
            out.append(
                f'<div class="tw"><table class="cards">\n<caption>{title}</caption>\n'
                '<thead><tr><th scope="col">Дата</th><th scope="col">Предмет</th>'
                '<th scope="col">Работа</th></tr></thead>\n'
                f"<tbody>\n{items.works(works)}</tbody>\n</table></div>\n"
            )
        else:
            out.append(f"<p>{title}: работ нет.</p>\n")
    out.append("</details>\n")
    return out


def _teachers(tv: family.TeachersView) -> list[str]:
    out: list[str] = []
    head = text(tv.class_teacher) if tv.class_teacher else "не назначен"
    out.append(
        "<details><summary><h3>Учителя</h3></summary>\n"
        f"<p>Классный руководитель: <b>{head}</b></p>\n"
    )
    if tv.lines:
        out.append(
            '<div class="tw"><table>\n<caption class="sr">Учителя по предметам</caption>\n'
            '<thead><tr><th scope="col">Предмет</th><th scope="col">Учитель</th></tr></thead>\n'
            "<tbody>\n"
        )
        out.extend(
            f'<tr><th scope="row">{text(line.subject)}</th>'
            f"<td>{', '.join(map(text, line.names)) or '—'}</td></tr>\n"
            for line in tv.lines
        )
        out.append("</tbody>\n</table></div>\n")
    out.append("</details>\n")
    return out


def _folded(title: str, ul: str, items: list[str], none: str) -> list[str]:
    """A folded part of the section: its items in a list, or a line saying there are none."""
    body = [f"{ul}\n", *items, "</ul>\n"] if items else [f"<p>{none}</p>\n"]
    return [f"<details><summary><h3>{title}</h3></summary>\n", *body, "</details>\n"]


def _groups(groups: list[family.GroupView]) -> list[str]:
    return _folded(
        "Группы", "<ul>", [_group_li(x) for x in groups], "Все уроки — в составе класса."
    )


def _group_li(x: family.GroupView) -> str:
    subject = f" ({text(x.subject)})" if x.subject else ""
    kind = GROUP_KINDS.get(x.kind, x.kind)
    return f"<li>{text(x.name)} — {text(kind)}{subject}</li>\n"


def _holidays(holidays: list[family.HolidayView]) -> list[str]:
    none = "До конца учебного года каникул и праздников больше нет."
    return _folded("Каникулы и праздники", "<ul>", [_holiday_li(x) for x in holidays], none)


def _holiday_li(x: family.HolidayView) -> str:
    when = date_long(x.start)
    if x.start != x.end:
        when = f"{when} — {date_long(x.end)}"
    now = " · <strong>сейчас</strong>" if x.current else ""
    return f"<li><b>{text(x.label)}:</b> {when}{now}</li>\n"


def _recommendations(recommendations: list[family.RecommendationView]) -> list[str]:
    items = [_recommendation_li(x) for x in recommendations]
    return _folded("Рекомендации учителей", '<ul class="items">', items, "Рекомендаций нет.")


def _recommendation_li(x: family.RecommendationView) -> str:
    subject = f" · {text(x.subject)}" if x.subject else ""
    return (
        f'<li><p class="it-h">{date_long(x.date)} · {text(x.teacher)}{subject}</p>\n'
        f'<div class="md">{render_markdown(x.text)}</div></li>\n'
    )


# --- the week at a glance ---------------------------------------------------------------------


def glance(c: family.ChildView, g: week.GlanceView) -> Markup:
    """The child's week at a glance, at the top of the family's page. Items carry
    data-otm-day: static/page.js marks those newer than the last visit."""
    anchor = text(c.anchor)
    out = [
        f'<section class="glance" aria-labelledby="{anchor}-g">\n'
        f'<h2 id="{anchor}-g">{text(c.name)}: главное за неделю</h2>\n'
        '<p class="otm-new" data-otm-new hidden></p>\n'
    ]
    if g.empty:
        out.append(
            f"<p>С {day_month(g.since)} новых оценок и пропусков нет, заданий на ближайшие дни "
            "нет, расписание без изменений.</p>\n"
        )
    else:
        out.append('<ul class="gl">\n')
        out.extend(
            f'<li data-otm-day="{x.date.isoformat()}">{date_short(x.date)} · {text(x.subject)}: '
            f"оценка {_raw(x.mark)}</li>\n"
            for x in g.marks
        )
        out.extend(
            f'<li data-otm-day="{x.date.isoformat()}">{date_short(x.date)} · {text(x.subject)}: '
            f"<b>{text(x.code)}</b> {_absence_kind(x)}</li>\n"
            for x in g.absences
        )
        out.extend(
            f"<li>Задание к {day_month(x.due_date)}, {weekday(x.due_date).lower()} · "
            f"{text(x.subject)}</li>\n"
            for x in g.homework
        )
        out.extend(_change_li(x) for x in g.changes)
        out.append("</ul>\n")
    out.append(f'<p><a href="#{anchor}">Неделя по урокам и все разделы</a></p>\n</section>')
    return Markup("".join(out))


def _change_li(x: week.GlanceChange) -> str:
    lesson = x.lesson
    if lesson.cancelled:
        what = " отменён"
    elif lesson.moved_away:
        what = f" перенесён{_moved(' на ', lesson.moved_to)}"
    elif lesson.moved_from:
        what = f" перенесён{_moved(' с ', lesson.moved_from)}"
    elif lesson.original_teacher:
        what = f" замена, ведёт {text(lesson.teacher)}"
    else:
        what = ""
    head = f"{date_short(x.date)}, {lesson.slot}-й урок · {text(lesson.subject)}"
    return f"<li>{head}:{what}</li>\n"
