"""The registers staff read and keep: the breach register (list, close), each guardian's
consent with its history or the paper list of families, and the audit chain's check.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from otmetka.daemon.acts.paper import Registered, staff_context
from otmetka.daemon.acts.rules import Outcome, about, local_time, transaction, utc
from otmetka.daemon.core.config import Config
from otmetka.daemon.core.errors import OtmetkaError
from otmetka.db import acts as events
from otmetka.db import audit


@dataclass(frozen=True)
class BreachEntry:
    """One report in the breach register."""

    report_id: int
    login: str
    about: str
    received_at: dt.datetime  # aware UTC
    deadline: dt.datetime  # aware UTC
    state: str  # open / closed
    new_login: str
    closed_at: dt.datetime | None

    def status(self, now: dt.datetime) -> str:
        if self.state == "closed":
            return "closed"
        return "overdue" if now > self.deadline else "open"


def breach_register(include_closed: bool = False) -> list[BreachEntry]:
    """Open reports (all with `include_closed`), oldest first; for the CLI and reminders."""
    return [
        BreachEntry(
            report.id,
            report.credential.login,
            about(report.credential),
            utc(report.received_at),
            utc(report.deadline),
            report.state,
            report.new_login,
            utc(report.closed_at) if report.closed_at else None,
        )
        for report in events.breaches(include_closed)
    ]


@dataclass
class Listing:
    lines: list[str]

    def summary(self) -> str:
        return "\n".join(self.lines)


def list_breaches(config: Config, *, include_closed: bool = False) -> Listing:
    now, zone = dt.datetime.now(dt.UTC), config.school.zone()
    entries = breach_register(include_closed)
    if not entries:
        return Listing(["no open breach reports" if not include_closed else "no breach reports"])
    lines = []
    for entry in entries:
        received, deadline = local_time(entry.received_at, zone), local_time(entry.deadline, zone)
        lines.append(
            f"№ {entry.report_id}  {entry.status(now):<8} received {received}"
            f"  deadline {deadline}  login {entry.login} ({entry.about})"
            + (f"  new login {entry.new_login}" if entry.new_login else "")
        )
    overdue = sum(1 for e in entries if e.status(now) == "overdue")
    lines.append(f"{len(entries)} reports listed, {overdue} overdue")
    return Listing(lines)


def close_breach(config: Config, *, report_id: int, note: str | None) -> Registered:
    """The head of school dealt with the report: the family has its new login."""
    ctx = staff_context(config)
    report = events.breach_by_id(report_id)
    if report is None:
        raise OtmetkaError(
            f"no breach report № {report_id}; `otmetka breach list --all` lists them"
        )
    if report.state == "closed":
        raise OtmetkaError(f"breach report № {report_id} is already closed")
    with transaction(ctx):
        events.close_breach(report, ctx.now, note or "")
        details = {"note": note or "", "overdue": ctx.now > utc(report.deadline)}
        audit.append(ctx.actor, "breach.close", f"breach:{report.id}", details, ctx.now)
    late = " (after its deadline)" if details["overdue"] else ""
    return Registered(f"breach report № {report_id} closed{late}", Outcome(200, {}), "")


def list_consents(config: Config, *, state: str | None, paper: bool | None) -> Listing:
    """Each guardian's consent with its history, or the paper list of families."""
    zone = config.school.zone()
    if paper:
        return Listing(_paper_lines(zone))
    history = events.consent_history()
    names = events.guardian_names(history)
    lines = []
    for gid in sorted(history, key=lambda g: (names.get(g, ""), g)):
        steps = history[gid]
        current = events.last_state(steps)
        if state and current != state:
            continue
        trail = "; ".join(
            f"{s.state if not s.invalid else 'invalid ' + s.decision} "
            f"{local_time(s.occurred_at, zone)} ({s.channel}, text {s.text_version or '—'})"
            for s in steps
        )
        lines.append(f"{current:<9} {names.get(gid, gid)}: {trail}")
    counts = events.consent_counts()
    lines.append(", ".join(f"{k} {v}" for k, v in counts.items()))
    return Listing(lines)


def _paper_lines(zone: ZoneInfo) -> list[str]:
    families = events.paper_list(dt.datetime.now(zone).date())
    lines = []
    for family in families:
        since = f" since {local_time(family.since, zone)}" if family.since else ""
        kids = ", ".join(f"{name} ({cls})" for _sid, name, cls in family.children)
        lines.append(f"{family.name}: {family.reason}{since}; children: {kids}")
    lines.append(f"{len(families)} families on the paper list")
    return lines


def verify_audit(config: Config) -> audit.Verification:
    return audit.verify()
