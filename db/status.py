"""Read-only figures for `otmetka status`."""

from __future__ import annotations

import datetime as dt
from typing import Any

from otmetka.db import models
from otmetka.db.migrations import schema_version


def _active(model: type[models.JournalModel]) -> int:
    return model.select().where(model.deleted_at.is_null()).count()


def last_import() -> dict[str, Any] | None:
    log = models.ImportLog
    row = log.select().order_by(log.id.desc()).first()
    if row is None:
        return None
    return {"imported_at": row.imported_at, "origin": row.origin, "cursor": row.cursor}


def summary() -> dict[str, Any]:
    outbox = models.OutboxItem
    return {
        "schema_version": schema_version(),
        "last_import": last_import(),
        "people": {
            "students": _active(models.Student),
            "guardians": _active(models.Guardian),
            "teachers": _active(models.Teacher),
            "classes": _active(models.ClassUnit),
        },
        "dirty": models.DirtyPerson.select().count(),
        "outbox_backlog": outbox.select().where(outbox.done_at.is_null()).count(),
        "open_breaches": _open_breaches(),
    }


def _open_breaches() -> dict[str, int]:
    b = models.BreachReport
    open_reports = b.select().where(b.state == "open")
    overdue = open_reports.where(b.deadline < dt.datetime.now(dt.UTC).replace(tzinfo=None))
    return {"open": open_reports.count(), "overdue": overdue.count()}
