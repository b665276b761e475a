"""Constants and small helpers shared by the demo school's generators: stamps, the change
envelope, weighted picks and the curriculum rules every stage needs.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import random
from collections.abc import Sequence
from typing import Any

from otmetka.daemon.demo import names, texts

SCHOOL_ID = "demo-school"
OFFSET = "+03:00"
MAX_SLOT = 8
SPLIT_FROM = {"eng": 2, "inf": 7}  # subjects taught in two subgroups from this grade on
SUBJECT_IDS = {s: f"sub-{s}" for s in names.SUBJECTS}
DJ = dt.timedelta

Json = dict[str, Any]


@functools.cache
def iso(day: dt.date) -> str:
    """ISO date; cached so the many marks of one day share one string."""
    return day.isoformat()


@functools.cache
def timestamp(day: dt.date, hhmm: str) -> str:
    return f"{day.isoformat()}T{hhmm}:00{OFFSET}"


def change(kind: str, ident: str, updated_at: str, data: Json) -> Json:
    return {"type": kind, "id": ident, "op": "upsert", "updated_at": updated_at, "data": data}


class Pick:
    """Weighted choice from a (names, weights) list, optionally avoiding some names."""

    def __init__(self, table: tuple[tuple[str, ...], tuple[int, ...]]) -> None:
        self.names = table[0]
        self.cum = list(itertools.accumulate(table[1]))

    def __call__(self, rng: random.Random, avoid: Sequence[str] = ()) -> str:
        while True:
            name = rng.choices(self.names, cum_weights=self.cum)[0]
            if name not in avoid:
                return name


def is_split(subject: str, grade: int) -> bool:
    return grade >= SPLIT_FROM.get(subject, 99)


def is_pass_fail(subject: str, grade: int) -> bool:
    """Subjects assessed as «зачёт»/«незачёт» rather than on the five-point scale."""
    return subject in ("orkse", "odnknr", "fin") or (subject in ("music", "art") and grade >= 7)


def subject_category(subject: str) -> str:
    return texts.CATEGORY.get(subject, "science")


@functools.cache
def compact(day: dt.date) -> str:
    return day.strftime("%Y%m%d")
