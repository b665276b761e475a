"""OneRoster 1.1 / 1.2 CSV bundles as a roster and marks source.

A bundle is mapped to one exchange document (see the table in docs/exchange-format.md)
and imported through `importer.import_batch`, so it is validated by the same models
and applied all or nothing in one transaction. Every change remembers the CSV file, row and
columns it came from, and the importer's messages are rewritten to name them:
`roster.zip: results.csv row 14 (sourcedId 'r-7'), column 'score': ...`.

Deltas: rows with `status` `tobedeleted` become tombstones; `dateLastModified` becomes
`updated_at` (rows without it take the bundle's time). Facts a delta does not carry (the
class of a student whose enrollment did not change, the subject of a stored work) are read
from what was imported before.

What a real export leaves out is filled in by documented rules (`oneroster_placing`): the
grade of a class with empty `grades`, the class of a student with no homeroom enrollment.
Each such guess is a warning, and each ignored file or column a note, in the import summary.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.exchange import importer, oneroster_marks, oneroster_placing, oneroster_roster
from otmetka.daemon.exchange.oneroster_csv import (
    Bundle,
    read_bundle,
    unread_columns,
    unread_files,
)
from otmetka.daemon.exchange.oneroster_document import SOURCE, Ctx, Out, explain
from otmetka.daemon.exchange.reader import BatchError, from_document
from otmetka.daemon.exchange.records import MAX_LISTED_ERRORS

# --- the whole bundle -----------------------------------------------------------------------


def to_document(bundle: Bundle, *, tz: str, school_id: str) -> tuple[dict[str, Any], Out]:
    """The bundle as one exchange document, and where each of its changes came from."""
    ctx = Ctx(bundle, ZoneInfo(tz), Out(bundle.origin))
    school = oneroster_roster.school(ctx, school_id)
    oneroster_roster.sessions(ctx)
    oneroster_roster.courses(ctx)
    oneroster_roster.roles(ctx)
    oneroster_roster.enrollment_index(ctx)
    oneroster_placing.place_students(ctx)
    oneroster_roster.classes(ctx)
    oneroster_placing.add_made_classes(ctx)
    oneroster_roster.users(ctx)
    oneroster_roster.links(ctx)
    oneroster_roster.memberships(ctx)
    oneroster_marks.categories(ctx)
    oneroster_marks.line_items(ctx)
    oneroster_marks.results(ctx)
    if ctx.out.problems:
        raise BatchError(bundle.origin, ctx.out.problems)
    stamp = bundle.stamp.isoformat()
    document = {
        "format": "otmetka-exchange",
        "version": 1,
        "school_id": school,
        "tz": tz,
        "mode": "delta" if bundle.delta else "full",
        "cursor": f"oneroster {bundle.origin} {stamp}",
        "generated_at": stamp,
        "changes": ctx.out.changes,
    }
    return document, ctx.out


@dataclasses.dataclass
class RosterResult(importer.ImportResult):
    """An import's result with what was guessed (warnings) and ignored (notes)."""

    warnings: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        lines = [super().summary()]
        if self.warnings:
            shown = self.warnings[:MAX_LISTED_ERRORS]
            more = len(self.warnings) - len(shown)
            lines.append(f"{self.origin}: {len(self.warnings)} warnings (imported all the same):")
            lines.extend(f"  {warning}" for warning in shown)
            if more:
                lines.append(f"  {self.origin}: … and {more} more warnings")
        lines.extend(f"{self.origin}: note: {note}" for note in self.notes)
        return "\n".join(lines)


def _notes(path: Path, bundle: Bundle) -> list[str]:
    notes = [f"{name}: not a file otmetka reads, ignored" for name in unread_files(path)]
    for name, rows in bundle.tables.items():
        unread = unread_columns(rows)
        if unread:
            notes.append(f"{name}: columns otmetka does not read, ignored: {', '.join(unread)}")
    return notes


def import_bundle(
    path: Path,
    rules: MarkRules,
    *,
    tz: str,
    school_id: str,
    progress: importer.Progress | None = None,
) -> RosterResult:
    """Import a OneRoster bundle (folder or zip), all or nothing."""
    bundle = read_bundle(path, ZoneInfo(tz))
    document, out = to_document(bundle, tz=tz, school_id=school_id)
    raw = from_document(document, bundle.origin)
    try:
        result = importer.import_batch(raw, rules, source=SOURCE, progress=progress)
    except BatchError as error:
        raise BatchError(bundle.origin, [explain(out, p) for p in error.problems]) from None
    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    return RosterResult(**fields, warnings=out.warnings, notes=_notes(path, bundle))
