"""What the class register holds: the plan of absences, lesson, work and quarter marks, and
the attendance rows.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from otmetka.daemon.demo import texts
from otmetka.daemon.demo.common import DJ, SUBJECT_IDS, Json, change, is_pass_fail, iso, timestamp
from otmetka.daemon.demo.model import Group, Lesson, Pupil, School

SINGLE_ABSENCES = (("Н", 35), ("У", 20), ("УП", 20), ("НП", 25))
SINGLE_CODES = tuple(code for code, _ in SINGLE_ABSENCES)
SINGLE_CUM = list(itertools.accumulate(weight for _, weight in SINGLE_ABSENCES))
CATEGORY_OF_CODE = {code: category for code, _, category in texts.ATTENDANCE_CODES}
FLU_SEASON = {9: 0.6, 10: 1.0, 11: 1.2, 12: 1.2, 1: 1.3, 2: 1.4, 3: 1.0, 4: 0.7, 5: 0.5}
# Share of "-" and "+" per mark; the rest are plain digits.
MODIFIERS: dict[int, tuple[tuple[str, float], ...]] = {
    5: (("5-", 0.10), ("5+", 0.02)),
    4: (("4-", 0.09), ("4+", 0.05)),
    3: (("3-", 0.07), ("3+", 0.04)),
    2: (),
}
DIGITS = {v: str(v) for v in range(1, 6)}


def _poisson(rng: random.Random, lam: float) -> int:
    limit, k, product = math.exp(-lam), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


def absence_plan(school: School, rng: random.Random) -> None:
    """Illness stretches of 3–7 school days, more in winter; a few truants; PE exemptions."""
    cal = school.cal
    held = [day for day in cal.days if day <= cal.as_of]
    cum = list(itertools.accumulate(FLU_SEASON[day.month] for day in held))
    for _pupil in school.pupils:
        sick: set[dt.date] = set()
        lam = 0.0095 * len(held) * rng.lognormvariate(0, 0.6) / 1.2  # mean factor 1
        for _ in range(_poisson(rng, lam) if held else 0):
            start = rng.choices(range(len(held)), cum_weights=cum)[0]
            sick.update(held[start : start + rng.randint(3, 7)])
        school.ill.append(frozenset(sick))
        school.truant.append(rng.random() < 0.04)
    _long_illness(school, rng, held)
    exempt = rng.sample(range(len(school.pupils)), max(1, round(0.015 * len(school.pupils))))
    for pi in sorted(exempt):
        if held:
            start = rng.randrange(len(held))
            school.exempt[pi] = (held[start], held[min(len(held) - 1, start + rng.randint(9, 20))])


def _long_illness(school: School, rng: random.Random, held: list[dt.date]) -> None:
    """The uncertified pupil: three weeks ill in the first quarter, «н/а» in two subjects."""
    pi = school.uncertified
    first_quarter = [day for day in held if day <= school.cal.quarters[0][1]]
    school.ill[pi] = school.ill[pi] | frozenset(first_quarter[8:24])
    graded = [
        g
        for g in school.pupils[pi].groups
        if school.groups[g].kind == "whole_class"
        and not is_pass_fail(school.groups[g].subject, school.groups[g].grade)
    ]
    school.uncertified_groups = sorted(rng.sample(graded, 2))


def _five(rng: random.Random, level: float, spread: float) -> tuple[str, int, int]:
    """A mark as written and its digits; ~0.4 % are two marks in one cell («3/5»)."""
    value = min(5, max(2, int(level + rng.gauss(0, spread) + 0.5)))
    r = rng.random()
    if r < 0.004:
        second = min(5, max(2, int(level + rng.gauss(0, spread) + 0.5)))
        return f"{value}/{second}", value, second
    for raw, share in MODIFIERS[value]:
        if r < share:
            return raw, value, 0
        r -= share
    return DIGITS[value], value, 0


@dataclass(slots=True)
class _Tally:
    """Weighted sums per quarter, for quarter marks."""

    sums: list[float] = field(default_factory=lambda: [0.0] * 4)
    weights: list[float] = field(default_factory=lambda: [0.0] * 4)
    counts: list[int] = field(default_factory=lambda: [0] * 4)

    def add(self, quarter: int, first: int, second: int, weight: float) -> None:
        for value in (first, second) if second else (first,):
            self.sums[quarter] += value * weight
            self.weights[quarter] += weight
        self.counts[quarter] += 1


def _mark(
    ident: str, pupil: Pupil, group: Group, day: dt.date, raw: str, teacher: str, **extra: Any
) -> Json:
    data: Json = {
        "student_id": pupil.id,
        "subject_id": SUBJECT_IDS[group.subject],
        "date": iso(day),
    }
    for name in ("lesson_id", "work_id", "period_id"):
        if extra.get(name):
            data[name] = extra[name]
    data["raw"] = raw
    data["scale"] = extra.get("scale", "five")
    data["weight"] = extra.get("weight", 1.0)
    data["kind"] = extra.get("kind", "regular")
    data["teacher_id"] = teacher
    if extra.get("comment"):
        data["comment"] = extra["comment"]
    return change("mark", ident, timestamp(day, "16:00"), data)


def _absence(school: School, rng: random.Random, pi: int, lesson: Lesson, subject: str) -> str:
    """Attendance code of a pupil at a held lesson, or "" when simply present."""
    if lesson.date in school.ill[pi]:
        return "Б"
    exempt = school.exempt.get(pi)
    if exempt and subject == "pe" and exempt[0] <= lesson.date <= exempt[1]:
        return "ОСВ"
    r = rng.random()
    single = 0.05 if school.truant[pi] else 0.012
    if r < single:
        return rng.choices(SINGLE_CODES, cum_weights=SINGLE_CUM)[0]
    return "ОП" if r < single + 0.004 else ""


class _Marker:
    """One pupil in one group: attendance rows, lesson and work marks, quarter marks."""

    def __init__(self, school: School, rng: random.Random, pi: int, g: int) -> None:
        self.school, self.rng, self.pi = school, rng, pi
        self.pupil, self.group = school.pupils[pi], school.groups[g]
        self.graded = self.group.grade > 1  # no marks in the 1st grade
        self.pass_fail = is_pass_fail(self.group.subject, self.group.grade)
        self.level = self.pupil.ability + rng.gauss(0, 0.3)  # strong and weak subjects
        self.rate = rng.uniform(0.25, 0.35) * (0.5 if self.pass_fail else 1.0)
        self.tally = _Tally()

    def run(self) -> Iterator[Json]:
        pending: list[int] = []  # works missed while absent, written at the next lesson
        lessons, left = self.school.lessons, self.pupil.left_at
        for li in self.group.lessons:
            lesson = lessons[li]
            if lesson.status != "held" or (left is not None and lesson.date > left):
                continue
            code = _absence(self.school, self.rng, self.pi, lesson, self.group.subject)
            if code:
                minutes = self.rng.randint(2, 20) if code == "ОП" else 0
                self.school.attendance.append((self.pi, li, code, minutes))
                if code == "ОСВ":
                    continue  # exempt from PE: neither absent nor assessed
                if code != "ОП":
                    self.pupil.absences += 1
                    pending += [lesson.work] if lesson.work >= 0 else []
                    continue
            self.pupil.attended += 1
            if self.graded:
                yield from self._marks_at(lesson, pending)
                pending.clear()
        if self.graded:
            yield from self._quarter_marks()

    def _marks_at(self, lesson: Lesson, pending: list[int]) -> Iterator[Json]:
        for w in pending:
            yield self._work_mark(w, lesson, late=True)
        if lesson.work >= 0:
            yield self._work_mark(lesson.work, lesson, late=False)
        elif self.rng.random() < self.rate:
            raw = self._raw(lesson.quarter, self.level, 0.7, 1.0)
            ident = f"mrk-{lesson.key}-{self.pupil.num}"
            scale = "pass_fail" if self.pass_fail else "five"
            yield self._lesson_mark(ident, lesson, raw, scale=scale)

    def _raw(self, quarter: int, level: float, spread: float, weight: float) -> str:
        if self.pass_fail:
            self.tally.counts[quarter] += 1
            return "зачёт" if self.rng.random() < 0.95 else "незачёт"
        raw, first, second = _five(self.rng, level, spread)
        self.tally.add(quarter, first, second, weight)
        self.pupil.mark_sum += (first + second) * weight if second else first * weight
        self.pupil.mark_weight += weight * (2 if second else 1)
        return raw

    def _work_mark(self, w: int, lesson: Lesson, late: bool) -> Json:
        work = self.school.works[w]
        weight = texts.WORK_KINDS[work.kind][1]
        raw = self._raw(lesson.quarter, self.level - 0.15, 0.85, weight)
        absent = "отсутствовал" if self.pupil.human.male else "отсутствовала"
        comment = f"Работа написана позже: в день работы {absent}" if late else ""
        return self._lesson_mark(
            f"mrk-{work.key}-{self.pupil.num}",
            lesson,
            raw,
            work_id=f"wrk-{work.key}",
            weight=weight,
            comment=comment,
        )

    def _quarter_marks(self) -> Iterator[Json]:
        """Quarter marks for quarters already over; «н/а» and a retake for the long absence."""
        cal, pupil, group = self.school.cal, self.pupil, self.group
        for q, (_, end) in enumerate(cal.quarters):
            if end >= cal.as_of or (pupil.left_at is not None and pupil.left_at <= end):
                break
            base = f"mrk-{group.key}-q{q + 1}-{pupil.num}"
            period = f"per-{cal.year}-q{q + 1}"
            if q == 0 and self._uncertified():
                yield from self._not_certified(base, period, end)
                continue
            raw = self._quarter_raw(q)
            if raw:
                scale = "pass_fail" if self.pass_fail else "five"
                yield self._period_mark(base, end, raw, period, "period_final", scale=scale)

    def _lesson_mark(self, ident: str, lesson: Lesson, raw: str, **extra: Any) -> Json:
        """A mark given at a lesson, by the teacher who held it."""
        day, teacher = lesson.date, lesson.teacher
        return _mark(ident, self.pupil, self.group, day, raw, teacher, lesson_id=lesson.id, **extra)

    def _period_mark(
        self, ident: str, day: dt.date, raw: str, period: str, kind: str, **extra: Any
    ) -> Json:
        """A mark for a grading period, by the group's teacher."""
        teacher = self.group.teacher
        return _mark(
            ident, self.pupil, self.group, day, raw, teacher, period_id=period, kind=kind, **extra
        )

    def _uncertified(self) -> bool:
        return (
            self.pi == self.school.uncertified and self.group.idx in self.school.uncertified_groups
        )

    def _quarter_raw(self, q: int) -> str:
        if not self.tally.counts[q]:
            return ""
        if self.pass_fail:
            return "зачёт"
        average = self.tally.sums[q] / self.tally.weights[q]
        return DIGITS[min(5, max(2, int(average + 0.5)))]

    def _not_certified(self, base: str, period: str, end: dt.date) -> Iterator[Json]:
        cal = self.school.cal
        yield self._period_mark(
            base,
            end,
            "н/а",
            period,
            "not_certified",
            comment="Недостаточно отметок для аттестации: длительная болезнь",
        )
        retake = cal.quarters[1][0] + DJ(days=14)
        if retake <= cal.as_of:
            yield self._period_mark(
                f"{base}-debt",
                retake,
                "3",
                period,
                "debt",
                comment="Ликвидация академической задолженности за 1 четверть",
            )


def iter_marks(school: School, rng: random.Random) -> Iterator[Json]:
    for pi, pupil in enumerate(school.pupils):
        for g in pupil.groups:
            yield from _Marker(school, rng, pi, g).run()


def iter_attendance(school: School) -> Iterator[Json]:
    for pi, li, code, minutes in school.attendance:
        lesson, pupil = school.lessons[li], school.pupils[pi]
        data: Json = {
            "student_id": pupil.id,
            "lesson_id": lesson.id,
            "code": code,
            "category": CATEGORY_OF_CODE[code],
        }
        if minutes:
            data["minutes_late"] = minutes
        yield change(
            "attendance", f"att-{lesson.key}-{pupil.num}", timestamp(lesson.date, "15:00"), data
        )
