"""The weekly timetable: every hour of every class placed with no clash for a class or a
teacher.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from otmetka.daemon.demo.common import MAX_SLOT
from otmetka.daemon.demo.model import Group, School


@dataclass(slots=True)
class _Hour:
    """One weekly hour of a class: one group, or both subgroups in the same slot."""

    subject: str
    groups: tuple[int, ...]
    teachers: tuple[str, ...]


Pos = tuple[int, int]  # (weekday 1–5, slot)


def _day_lengths(total: int) -> dict[int, int]:
    """Even days, the longer ones mid-week, so the class has no gaps between lessons."""
    base, extra = divmod(total, 5)
    longer = (2, 3, 4, 1, 5)[:extra]
    return {d: base + (1 if d in longer else 0) for d in range(1, 6)}


class _Grid:
    """Weekly template with no clash for a class or a teacher (greedy, with one-step repair)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.teacher_busy: set[tuple[str, int, int]] = set()
        self.cells: dict[int, dict[Pos, _Hour]] = {}
        self.per_day: dict[tuple[int, int, str], int] = {}
        self.dropped = 0

    def fits(self, hour: _Hour, pos: Pos) -> bool:
        return all((t, *pos) not in self.teacher_busy for t in hour.teachers)

    def put(self, cls: int, hour: _Hour, pos: Pos) -> None:
        self.cells[cls][pos] = hour
        self.teacher_busy.update((t, *pos) for t in hour.teachers)
        key = (cls, pos[0], hour.subject)
        self.per_day[key] = self.per_day.get(key, 0) + 1

    def take(self, cls: int, pos: Pos) -> _Hour:
        hour = self.cells[cls].pop(pos)
        self.teacher_busy.difference_update((t, *pos) for t in hour.teachers)
        self.per_day[(cls, pos[0], hour.subject)] -= 1
        return hour

    def place_class(self, cls: int, hours: list[_Hour]) -> None:
        lengths = _day_lengths(len(hours))
        positions = [(d, s) for d in range(1, 6) for s in range(1, lengths[d] + 1)]
        self.cells[cls] = {}
        for hour in hours:
            placed = (
                self._choose(cls, hour, positions)
                or self._swap(cls, hour, positions)
                or self._extend(cls, hour, positions, lengths)
            )
            self.dropped += not placed

    def _choose(self, cls: int, hour: _Hour, positions: list[Pos]) -> bool:
        cells = self.cells[cls]
        free = [p for p in positions if p not in cells and self.fits(hour, p)]
        if not free:
            return False
        # Spread a subject over the week: prefer days that do not have it yet.
        best = min(
            free, key=lambda p: (self.per_day.get((cls, p[0], hour.subject), 0), self.rng.random())
        )
        self.put(cls, hour, best)
        return True

    def _swap(self, cls: int, hour: _Hour, positions: list[Pos]) -> bool:
        """Move one placed hour to a free cell so that this hour fits where it was."""
        cells = self.cells[cls]
        for q in [p for p in positions if p in cells]:
            other = self.take(cls, q)
            if self.fits(hour, q):
                self.put(cls, hour, q)
                r = next((p for p in positions if p not in cells and self.fits(other, p)), None)
                if r is not None:
                    self.put(cls, other, r)
                    return True
                self.take(cls, q)
            self.put(cls, other, q)
        return False

    def _extend(self, cls: int, hour: _Hour, positions: list[Pos], lengths: dict[int, int]) -> bool:
        for d in sorted(lengths, key=lambda d: (lengths[d], d)):
            pos = (d, lengths[d] + 1)
            if pos[1] <= MAX_SLOT and pos not in self.cells[cls] and self.fits(hour, pos):
                lengths[d] += 1
                positions.append(pos)
                self.put(cls, hour, pos)
                return True
        return False

    def place_extra(self, classes: list[int], hour: _Hour) -> bool:
        """An hour outside the class plan (stream, individual plan): after the day's lessons."""
        days = list(range(1, 6))
        self.rng.shuffle(days)
        for d in days:
            last = max(max((s for w, s in self.cells[c] if w == d), default=0) for c in classes)
            for s in range(last + 1, MAX_SLOT + 1):
                if all((d, s) not in self.cells[c] for c in classes) and self.fits(hour, (d, s)):
                    for c in classes:
                        self.cells[c][(d, s)] = hour
                    self.teacher_busy.update((t, d, s) for t in hour.teachers)
                    return True
        return False


def _class_hours(school: School, cls: int) -> list[_Hour]:
    by_subject: dict[str, list[Group]] = {}
    for g in school.groups:
        if g.kind in ("whole_class", "subgroup") and g.classes == [cls]:
            by_subject.setdefault(g.subject, []).append(g)
    hours: list[_Hour] = []
    for subject, groups in by_subject.items():
        hour = _Hour(subject, tuple(g.idx for g in groups), tuple(g.teacher for g in groups))
        hours.extend([hour] * groups[0].hours)
    # Most constrained first: subgroups need two free teachers, then subjects with most hours.
    return sorted(hours, key=lambda h: (-len(h.teachers), -by_subject[h.subject][0].hours))


def make_timetable(school: School, rng: random.Random) -> None:
    grid = _Grid(rng)
    for cls in sorted(school.classes, key=lambda c: (-c.grade, c.idx)):
        grid.place_class(cls.idx, _class_hours(school, cls.idx))
    for g in school.groups:
        if g.kind in ("stream", "individual_plan"):
            hour = _Hour(g.subject, (g.idx,), (g.teacher,))
            for _ in range(g.hours):
                grid.dropped += not grid.place_extra(g.classes, hour)
    slots: dict[int, set[Pos]] = {}
    for cells in grid.cells.values():
        for pos, hour in cells.items():
            for gi in hour.groups:
                slots.setdefault(gi, set()).add(pos)
    school.slots = {g: sorted(slots[g]) for g in sorted(slots)}
