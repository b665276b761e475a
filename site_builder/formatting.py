"""How the pages, letters and printouts write things: dates, averages, weights and shares
the Russian way, and the Russian labels of the codes the data uses.

Templates reach these through the filters and globals of `templating.environment()`.
"""

from __future__ import annotations

import datetime as dt
import functools
import re

from babel.dates import format_date

MARK_KINDS = {"debt": "ликвидация задолженности", "not_certified": "не аттестован(а)"}
ATTENDANCE_CATEGORIES = {
    "present": "присутствие",
    "illness": "по болезни",
    "excused": "по уважительной причине",
    "unexcused": "без уважительной причины",
    "late": "опоздания",
    "exempt": "освобождение",
}
GROUP_KINDS = {
    "whole_class": "весь класс",
    "subgroup": "подгруппа",
    "stream": "поток",
    "individual_plan": "индивидуальный учебный план",
}

CONSENT_STATES = {
    "unknown": "не дано",
    "granted": "дано",
    "refused": "отказ",
    "withdrawn": "отозвано",
}
DELIVERIES = {"electronic": "электронно", "paper": "на бумаге"}
PAPER_REASONS = {
    "refused": "отказ от обработки данных",
    "withdrawn": "согласие отозвано",
    "paper delivery": "выбрана бумажная доставка",
}
ROLES = {"guardian": "родитель", "student": "ученик", "teacher": "учитель"}
BREACH_STATES = {"open": "открыто", "overdue": "просрочено", "closed": "закрыто"}

HOLIDAY_KINDS = {
    "vacation": "каникулы",
    "holiday": "праздник",
    "quarantine": "карантин",
    "short_day": "сокращённый день",
}


@functools.lru_cache(maxsize=4096)
def _date(day: dt.date, pattern: str) -> str:
    # Babel is slow per call and the same few hundred dates recur on every page.
    return format_date(day, pattern, locale="ru")


def date_long(day: dt.date) -> str:
    """«28 ноября 2026»."""
    return _date(day, "d MMMM y")


def day_month(day: dt.date) -> str:
    """«28 ноября»."""
    return _date(day, "d MMMM")


def date_short(day: dt.date) -> str:
    """«28 нояб.»."""
    return _date(day, "d MMM")


def weekday(day: dt.date) -> str:
    """«Суббота»."""
    return _date(day, "EEEE").capitalize()


def average(value: float | None, digits: int = 2) -> str:
    """«4,35», the way Russians write decimals; «—» when there is nothing to average."""
    return "—" if value is None else f"{value:.{digits}f}".replace(".", ",")


def number(value: float) -> str:
    """A weight without trailing zeros: 2.0 -> «2», 1.5 -> «1,5»."""
    return f"{value:g}".replace(".", ",")


def percent(share: float | None) -> str:
    """0.955 -> «95,5 %»."""
    return "—" if share is None else f"{share * 100:.1f}".replace(".", ",") + " %"


_DAY_OFF = re.compile(r"\s*\((?:выходной|перенес[её]н[^)]*)\)$", re.IGNORECASE)


def holiday_name(name: str) -> str:
    """One name per holiday: «День Победы, День Победы (выходной)», as merged calendar
    days come, reads «День Победы»; a lone transferred day off stays «Выходной»."""
    parts: list[str] = []
    for part in name.split(","):
        part = _DAY_OFF.sub("", part.strip()) or part.strip()
        if part and part.casefold() not in (p.casefold() for p in parts):
            parts.append(part)
    named = [p for p in parts if not p.casefold().startswith("выходной")]
    return ", ".join(named or parts) or name


def holiday_label(name: str, kind: str) -> str:
    """The name, and its kind in brackets only where the name does not say it already:
    «Осенние каникулы», «День народного единства (праздник)»."""
    clean = holiday_name(name)
    if clean.casefold() == "выходной":
        return "Выходной день"
    word = HOLIDAY_KINDS.get(kind, kind)
    stem = word.split()[0][:6].casefold()
    return clean if stem in clean.casefold() else f"{clean} ({word})"
