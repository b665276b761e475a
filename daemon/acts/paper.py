"""Acts made on paper and registered by staff through the CLI: a signed extract
(acknowledgement), a signed consent or refusal, a breach report that reached the school by
phone, letter or in person. Each runs the same rules as an act made on a page.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from otmetka.daemon.access import credentials
from otmetka.daemon.acts import checks
from otmetka.daemon.acts.rules import (
    ACK,
    BREACH,
    CONSENT,
    GUARDIAN,
    PAPER,
    Act,
    ActContext,
    Outcome,
    about,
    acknowledge,
    consent,
    find_replay,
    iso,
    local_time,
    report_breach,
    successor,
    transaction,
)
from otmetka.daemon.core.config import Config
from otmetka.daemon.core.errors import OtmetkaError
from otmetka.db import acts as events
from otmetka.db import printing as printed
from otmetka.db.models import Credential
from otmetka.site_builder import crypto
from otmetka.site_builder.pages import consent_text


def staff_actor() -> str:
    """Who acts in the audit chain when staff run a command: the system user."""
    try:
        return f"staff:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (a container): still say who in general
        return "staff:unknown"


def _login(login: str) -> Credential:
    found = events.credential_by_login(crypto.normalise_login(login))
    if found is None:
        raise OtmetkaError(f"no login «{login}»; check the spelling on the slip")
    return found


def _guardian_login(login: str, what: str) -> tuple[Credential, str]:
    credential = _login(login)
    if credential.person_kind != GUARDIAN:
        role = credentials.ROLE_NAMES.get(credential.person_kind, credential.person_kind)
        raise OtmetkaError(f"login «{login}» is a {role}'s ({credential.person_kind}); {what}")
    return credential, str(credential.person_id)


def _need_paper(paper: bool | None) -> None:
    if not paper:
        raise OtmetkaError("staff register acts made on paper: add --paper")


def parse_day(value: str | dt.date | None, today: dt.date, option: str = "--date") -> dt.date:
    """YYYY-MM-DD or DD.MM.YYYY, not in the future; None means today."""
    if value is None:
        return today
    day = value if isinstance(value, dt.date) else _parse_date_text(value.strip(), option)
    if day > today:
        raise OtmetkaError(f"{option} {day:%Y-%m-%d} is in the future; give the date on the paper")
    return day


def _parse_date_text(text: str, option: str) -> dt.date:
    for pattern in ("%Y-%m-%d", "%d.%m.%Y"):
        try:
            return dt.datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    raise OtmetkaError(f"{option} {text!r} is not a date: write 2026-09-16 or 16.09.2026")


def parse_moment(value: str | dt.datetime, zone: ZoneInfo, now: dt.datetime) -> dt.datetime:
    """An ISO date and time; without an offset it is school time. Not in the future."""
    if isinstance(value, dt.datetime):
        moment = value
    else:
        try:
            moment = dt.datetime.fromisoformat(value.strip().replace(" ", "T", 1))
        except ValueError:
            raise OtmetkaError(
                f"--received-at {value!r} is not a date and time: write 2026-09-16T14:30 "
                "(school time) or with an offset, 2026-09-16T14:30+03:00"
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    if moment > now + dt.timedelta(minutes=1):
        raise OtmetkaError(f"--received-at {iso(moment)} is in the future")
    return moment.astimezone(dt.UTC)


def _local_midnight(day: dt.date, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=zone).astimezone(dt.UTC)


@dataclass
class Registered:
    """What a staff registration did, as one line."""

    text: str
    outcome: Outcome
    event_id: str

    def summary(self) -> str:
        return self.text


def staff_context(config: Config) -> ActContext:
    """The context of an act staff register now, with the project open."""
    return ActContext(config, dt.datetime.now(dt.UTC), staff_actor())


def _run_paper(ctx: ActContext, act: Act, handler: Callable[[ActContext, Act], Outcome]) -> Outcome:
    with transaction(ctx):
        replay = find_replay(act, None)
        outcome = replay if replay is not None else handler(ctx, act)
    return outcome


def _guardian_from_code(code: str, login: str | None) -> tuple[str, dict[str, Any]]:
    """The guardian who signed a paper extract's tear-off slip, from its short code."""
    extract = printed.extract_by_code(code)
    if extract is None:
        raise OtmetkaError(
            f"no printed extract has the code «{code}»; check the code on the tear-off slip "
            "(letters and digits; case, spaces and dashes do not matter)"
        )
    guardians = list(extract.guardian_ids)
    if login is not None:
        _credential, guardian_id = _guardian_login(login, "acknowledgements are a parent's")
        if guardian_id not in guardians:
            raise OtmetkaError(f"login «{login}» is not a parent on the extract «{code}»")
        guardians = [guardian_id]
    if len(guardians) != 1:
        raise OtmetkaError(
            f"the extract «{code}» has {len(guardians)} parents; add --login of the one who signed"
        )
    facts = {
        "code": extract.code,
        "content_hash": extract.content_hash,
        "children": list(extract.student_ids),
    }
    return guardians[0], facts


def _signed_after_data(code: str, day: dt.date) -> None:
    """A slip cannot be signed before the day the extract gives its data for."""
    extract = printed.extract_by_code(code)
    if extract is not None and day < extract.as_of:
        raise checks.ActRefused(
            422,
            "occurred_before_extract",
            f"--date {day:%Y-%m-%d} is before {extract.as_of:%Y-%m-%d}, the day the extract "
            f"«{code}» gives its data for; give the date the parent wrote on the slip",
        )


def register_ack(
    config: Config,
    *,
    login: str | None,
    paper: bool | None,
    date: str | None,
    code: str | None = None,
) -> Registered:
    """A signed paper extract: the guardian acknowledged what it showed on `date`.

    With `code` (from the tear-off slip) the act names that very extract: its children and
    the content hash of what was printed; without it, the login says who signed.
    """
    _need_paper(paper)
    ctx = staff_context(config)
    if code is not None:
        guardian_id, facts = _guardian_from_code(code, login)
        who = f"extract {facts['code']}"
    elif login is not None:
        credential, guardian_id = _guardian_login(login, "acknowledgements are a parent's")
        facts, who = {"login": credential.login}, f"login {credential.login} ({about(credential)})"
    else:
        raise OtmetkaError("say who signed: --code from the tear-off slip, or --login")
    day = parse_day(date, ctx.today)
    if "code" in facts:
        _signed_after_data(str(facts["code"]), day)
    key = facts.get("code") or guardian_id
    digest = hashlib.sha256(f"{key}|{guardian_id}|{day.isoformat()}".encode()).hexdigest()[:24]
    event_id = f"paper-ack-{digest}"  # registering the same slip twice is a replay
    body = {"event_id": event_id, "date": day.isoformat(), **facts}
    act = Act(ACK, event_id, body, _local_midnight(day, ctx.zone), PAPER)
    outcome = _run_paper(ctx, act, lambda c, a: acknowledge(c, a, None, guardian_id))
    children = len(outcome.body.get("children", []))
    what = "already registered" if outcome.replay else "registered"
    text = f"{what}: paper acknowledgement of {day:%Y-%m-%d} by {who}; children: {children}"
    return Registered(text, outcome, event_id)


def register_consent(
    config: Config,
    *,
    login: str,
    decision: str | None,
    paper: bool | None,
    date: str | None = None,
) -> Registered:
    """A consent or a refusal signed on paper; a refusal after consent is a withdrawal."""
    _need_paper(paper)
    if decision not in ("granted", "refused"):
        raise OtmetkaError("say what the family signed: --granted or --refused")
    ctx = staff_context(config)
    credential, guardian_id = _guardian_login(login, "consent is given by a parent")
    day = parse_day(date, ctx.today)
    event_id = f"paper-consent-{secrets.token_hex(12)}"
    body = {
        "event_id": event_id,
        "login": credential.login,
        "decision": decision,
        "date": day.isoformat(),
        "text_version": consent_text.CONSENT_TEXT_VERSION,
    }
    act = Act(CONSENT, event_id, body, _local_midnight(day, ctx.zone), PAPER)
    outcome = _run_paper(ctx, act, lambda c, a: consent(c, a, None, guardian_id))
    return Registered(_consent_text(credential, day, outcome), outcome, event_id)


def _consent_text(credential: Credential, day: dt.date, outcome: Outcome) -> str:
    state = outcome.body["consent_state"]
    head = f"registered paper consent of {day:%Y-%m-%d} for login {credential.login}: {state}"
    if state == "granted":
        active = events.active_credential(GUARDIAN, str(credential.person_id))
        if active is None:
            return head + "; no active login: issue one with `otmetka credentials issue`"
        return head + "; the page now shows the family's data"
    return (
        head + "; the login is revoked and its page removed; the family is on the paper list "
        "(`otmetka consent list --paper`)"
    )


def register_breach(
    config: Config, *, login: str, received_at: str | dt.datetime, note: str | None = None
) -> Registered:
    """A report of a leaked login that reached the school by phone, letter or in person."""
    ctx = staff_context(config)
    moment = parse_moment(received_at, ctx.zone, ctx.now)
    credential = _login(login)
    earlier = events.breaches_of(credential.get_id())
    if earlier:
        raise OtmetkaError(
            f"login {credential.login} was already reported leaked (report № {earlier[0].id}); "
            "see `otmetka breach list --all`"
        )
    ctx.prepared = successor(config, credential)
    event_id = f"staff-breach-{secrets.token_hex(12)}"
    body = {
        "event_id": event_id,
        "login": credential.login,
        "received_at": iso(moment),
        "note": note or "",
    }
    act = Act(BREACH, event_id, body, moment, PAPER)
    outcome = _run_paper(ctx, act, lambda c, a: report_breach(c, a, credential, moment))
    return Registered(_breach_text(ctx, credential, event_id), outcome, event_id)


def _breach_text(ctx: ActContext, credential: Credential, event_id: str) -> str:
    event = events.find(event_id)
    report = events.breach_of_event(event) if event else None
    assert report is not None
    fresh = (
        f"new login {report.new_login} is in the newest one-time list under "
        f"{ctx.config.paths.var_dir / 'credentials'} (owner-only)"
        if report.new_login
        else "no new login issued (the login was already off, or the person has no page)"
    )
    told = ", ".join(json.loads(report.notified)) or "nobody: set school.head_email"
    body = json.loads(event.response)["body"] if event else {}
    return (
        f"breach report № {report.id}: login {credential.login} revoked, its page blocked; "
        f"{fresh}; deadline {local_time(report.deadline, ctx.zone)}; "
        f"{body.get('invalidated', 0)} acts made after {local_time(report.received_at, ctx.zone)} "
        f"marked invalid; notice queued for {told}"
    )
