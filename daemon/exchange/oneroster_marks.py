"""OneRoster gradebook files mapped to exchange changes: categories, line items (works)
and results (marks)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from otmetka.daemon.exchange.oneroster_csv import Row
from otmetka.daemon.exchange.oneroster_document import (
    DEFAULT_WORK_KIND,
    Ctx,
)
from otmetka.db import outbox as sync_db

# --- works and marks ------------------------------------------------------------------------


def _live(ctx: Ctx, file: str, kind: str) -> Iterator[tuple[Row, str]]:
    """(row, its stamp) of each row of `file` that is not to be deleted; a row that is
    becomes a delete of the `kind` it was imported as."""
    for row in ctx.bundle.rows(file):
        at = ctx.stamp(row)
        if row.deleted:
            ctx.out.delete(kind, row.sourced_id, row, at)
        else:
            yield row, at


def categories(ctx: Ctx) -> None:
    for row, at in _live(ctx, "categories.csv", "work_kind"):
        data: dict[str, Any] = {"name": row.get("title")}
        if row.get("weight"):
            data["default_weight"] = _number(row.get("weight"))
        ctx.out.add("work_kind", row.sourced_id, row, at, data)


def _number(text: str) -> float | str:
    try:
        return float(text.replace(",", "."))
    except ValueError:
        return text  # the model rejects it with the column named


def _class_subject(ctx: Ctx, class_id: str) -> str | None:
    klass = ctx.classes.get(class_id)
    if klass is not None:
        return klass.get("courseSourcedId") or None
    return sync_db.stored_group_subjects([class_id]).get(class_id)


def line_items(ctx: Ctx) -> None:
    for row, at in _live(ctx, "lineItems.csv", "work"):
        day = ctx.date(row, "dueDate", required=False) or ctx.date(row, "assignDate")
        subject = _class_subject(ctx, row.get("classSourcedId"))
        if subject is None:
            ctx.out.problem(
                row,
                "classSourcedId",
                "the class has no course, so the work has no "
                "subject; set courseSourcedId of the class in classes.csv",
            )
        if day is None or subject is None:
            continue
        kind = row.get("categorySourcedId")
        if not kind:
            kind, ctx.default_kind_used = DEFAULT_WORK_KIND, row
        data = {
            "date": day,
            "group_id": row.get("classSourcedId"),
            "subject_id": subject,
            "kind": kind,
            "title": row.get("title"),
        }
        ctx.work_dates[row.sourced_id], ctx.work_subjects[row.sourced_id] = day, subject
        ctx.out.add("work", row.sourced_id, row, at, data)
    if ctx.default_kind_used is not None:
        row = ctx.default_kind_used
        ctx.out.add(
            "work_kind", DEFAULT_WORK_KIND, row, "2000-01-01T00:00:00+00:00", {"name": "Работа"}
        )


_FIVE = re.compile(r"^([1-5][+-]?|[1-5]/[1-5])$")
_PASS = {"зачёт", "зачет", "незачёт", "незачет", "не зачтено", "зачтено"}


def _score(text: str) -> dict[str, Any] | None:
    """raw / scale / value of a score as written; None when it is not a mark at all."""
    clean = re.sub(r"^(\d+)[.,]0+$", r"\1", text.strip())
    lowered = clean.lower()
    if _FIVE.match(clean) or lowered == "н/а":
        return {"raw": lowered if lowered == "н/а" else clean, "scale": "five"}
    if lowered in _PASS:
        passed = not lowered.startswith("не")
        return {"raw": "зачёт" if passed else "незачёт", "scale": "pass_fail"}
    number = _number(clean)
    if isinstance(number, float) and len(clean) <= 16:
        return {"raw": clean, "scale": "custom", "value": number}
    return None


def results(ctx: Ctx) -> None:
    for row, at in _live(ctx, "results.csv", "mark"):
        text = row.get("textScore") or row.get("score")
        if not text:
            continue  # not marked yet (or exempt): nothing to show
        mark = _score(text)
        if mark is None:
            ctx.out.problem(
                row,
                "textScore" if row.get("textScore") else "score",
                f"'{text}' is not a mark otmetka understands (1–5, 4-, зачёт, н/а or a number)",
            )
            continue
        _add_mark(ctx, row, at, mark)


def _add_mark(ctx: Ctx, row: Row, at: str, mark: dict[str, Any]) -> None:
    work = row.get("lineItemSourcedId")
    if work not in ctx.work_subjects:
        stored = sync_db.stored_work_subjects([work]).get(work)
        if stored is not None:
            ctx.work_subjects[work], ctx.work_dates[work] = stored
    subject, day = ctx.work_subjects.get(work), ctx.work_dates.get(work)
    day = ctx.date(row, "scoreDate", required=False) or day
    if subject is None or day is None:
        ctx.out.problem(
            row,
            "lineItemSourcedId",
            f"line item '{work}' is neither in lineItems.csv nor already imported",
        )
        return
    data = {
        "student_id": row.get("studentSourcedId"),
        "subject_id": subject,
        "date": day,
        "work_id": work,
        **mark,
    }
    if row.get("comment"):
        data["comment"] = row.get("comment")
    ctx.out.add("mark", row.sourced_id, row, at, data)
