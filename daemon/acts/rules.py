"""The legal rules for acts: acknowledgements, consents and breach reports, made on a page
(through the endpoint, `record_from_page`) or on paper (registered by staff through the CLI,
`otmetka.daemon.acts.paper`).

Every act is written in ONE transaction with its audit entry and its outbox items (the
event pushed upstream; mail to the head of school and support for a breach). What an act
does to files (removing or blocking a page, rebuilding one) runs only after the commit, so
a transaction that fails leaves the site as it was. Rules, in short:

- an event_id is used once: a replay gets the first answer, another act under the same id
  gets 422; a login's token is the only authority for acts made on a page;
- acknowledgements and consents come from guardians; consent only from a legal
  representative; a page acknowledges only after consent was granted;
- an act from a page cannot claim what cannot be true: a time in the future, later than the
  offline window, before its login or its consent; a page version never built for the
  login; a week that is not a school week (`otmetka.daemon.acts.checks`);
- refusal or withdrawal revokes the login and removes the page at once (the family goes on
  the paper list, `otmetka.db.acts.paper_list`); consent re-renders the page at once;
- a breach report revokes the login, replaces its page by «доступ заблокирован», issues a
  new login to the one-time list, queues mail, starts a deadline (end of the next working
  day of the Russian production calendar after the moment the report was received), and
  marks invalid every act of that login received, or claiming to be made, after that moment.

The registers staff read (breach reports, consents, the audit check) are in
`otmetka.daemon.acts.registers`.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from otmetka.daemon.access import credentials
from otmetka.daemon.acts import checks
from otmetka.daemon.acts.checks import ActRefused, iso
from otmetka.daemon.core import calendar
from otmetka.daemon.core.config import Config
from otmetka.daemon.core.progress import Reporter
from otmetka.daemon.core.settings import build_options
from otmetka.db import acts as events
from otmetka.db import audit, page_versions, queries, write_transaction
from otmetka.db import credentials as credentials_db
from otmetka.db.models import BreachReport, Credential, Event
from otmetka.site_builder import build, formatting
from otmetka.site_builder.pages import audience, consent_text

log = logging.getLogger("otmetka.acts")

ACK, CONSENT, BREACH = "acknowledgement", "consent", "breach_report"
ELECTRONIC, PAPER = "electronic", "paper"
GUARDIAN = "guardian"


@dataclass(frozen=True)
class Act:
    """One act as the rules see it. `body` is what is stored (never the token)."""

    kind: str
    event_id: str
    body: dict[str, Any]
    occurred_at: dt.datetime  # aware
    channel: str


@dataclass
class ActContext:
    """The run of one act: who acts, when, and what to do after commit or on rollback."""

    config: Config
    now: dt.datetime  # aware UTC: the moment the act is received
    actor: str
    prepared: credentials.PreparedIssue | None = None  # new login for a breach, derived beforehand
    after: list[Callable[[], None]] = field(default_factory=list)
    undo: list[Callable[[], None]] = field(default_factory=list)

    @property
    def zone(self) -> ZoneInfo:
        return self.config.school.zone()

    @property
    def today(self) -> dt.date:
        return self.now.astimezone(self.zone).date()


@dataclass
class Outcome:
    """The answer to an act: HTTP status and body; `replay` when it is the first one again."""

    status: int
    body: dict[str, Any]
    replay: bool = False


def canonical(value: Any) -> str:
    return audit.canonical(value)


def utc(moment: dt.datetime) -> dt.datetime:
    """A stored naive UTC time as an aware one."""
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


# --- deadline --------------------------------------------------------------------------------


def breach_deadline(received: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """End (23:59:59.999999, school time) of the first working day after the local date on
    which the report was received. Received on Friday: Monday night; on a Saturday before
    the New Year holidays: the night of the first working day in January."""
    day = calendar.next_working_day(received.astimezone(zone).date())
    return dt.datetime.combine(day, dt.time.max, tzinfo=zone).astimezone(dt.UTC)


# --- recording --------------------------------------------------------------------------------


def find_replay(act: Act, credential: Credential | None) -> Outcome | None:
    """The stored answer if this event_id was recorded before; None for a new act."""
    existing = events.find(act.event_id)
    return None if existing is None else replay_of(existing, act, credential)


def replay_of(existing: Event, act: Act, credential: Credential | None) -> Outcome:
    """The first answer again, if this is the same act; 422 if the id was used for another."""
    credential_id = credential.get_id() if credential else None
    same = (
        existing.kind == act.kind
        and existing.credential_id == credential_id  # type: ignore[attr-defined]
        and existing.payload == canonical(act.body)
    )
    if not same:
        raise ActRefused(
            422,
            "event_id_reused",
            f"event_id {act.event_id} was already used for another act; "
            "send this act with a new event_id",
        )
    stored_answer = json.loads(existing.response)
    return Outcome(int(stored_answer["status"]), stored_answer["body"], replay=True)


def refuse_blocked(credential: Credential) -> None:
    if credential.state != "active":
        raise ActRefused(
            403,
            "credential_revoked",
            "this login is blocked (a breach report or a refused consent); "
            "the school gives out a new one",
        )


def _push_payload(event: Event, config: Config, person: tuple[str, str] | None) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "kind": event.kind,
        "channel": event.channel,
        "school_id": config.school.school_id,
        "guardian_id": event.guardian_id,
        "person_kind": person[0] if person else None,
        "person_id": person[1] if person else None,
        "occurred_at": iso(event.occurred_at),
        "received_at": iso(event.received_at),
        "data": json.loads(event.payload),
    }


def _record(
    ctx: ActContext,
    act: Act,
    credential: Credential | None,
    guardian_id: str | None,
    extra: dict[str, Any],
) -> tuple[Event, Outcome]:
    """The event, its audit entry and its push, with the answer a replay will get again."""
    occurred = min(act.occurred_at, ctx.now)  # a phone's clock ahead of ours is not believed
    body = {
        "event_id": act.event_id,
        "kind": act.kind,
        "status": "recorded",
        "received_at": iso(ctx.now),
        **extra,
    }
    event = events.add(
        event_id=act.event_id,
        kind=act.kind,
        credential_id=credential.get_id() if credential else None,
        guardian_id=guardian_id,
        channel=act.channel,
        payload=canonical(act.body),
        response=canonical({"status": 201, "body": body}),
        occurred_at=occurred,
        received_at=ctx.now,
    )
    audit.record_event(ctx.actor, event, ctx.now, claimed=act.occurred_at)
    person = (credential.person_kind, credential.person_id) if credential else None
    if person is None and guardian_id:
        person = (GUARDIAN, guardian_id)
    payload = _push_payload(event, ctx.config, person)
    events.queue_outbox("push_event", act.event_id, payload, ctx.now)
    if guardian_id:
        events.mark_dirty(GUARDIAN, guardian_id)  # the class teacher's table shows the act
    return event, Outcome(201, body)


def _guardian_of(credential: Credential, what: str) -> str:
    if credential.person_kind != GUARDIAN:
        raise ActRefused(403, "not_a_guardian", f"only a parent's page can {what}")
    return str(credential.person_id)


# --- acknowledgement -----------------------------------------------------------------------------


def _check_children(ctx: ActContext, guardian_id: str, claimed: list[str]) -> list[str]:
    current = [sid for sid, _legal in events.children_of(guardian_id, ctx.today)]
    strangers = sorted(set(claimed) - set(current))
    if strangers:
        raise ActRefused(
            422,
            "unknown_children",
            f"children {', '.join(strangers)} are not this guardian's children on roll; "
            "reload the page to get the current one",
        )
    return current


def acknowledge(
    ctx: ActContext, act: Act, credential: Credential | None, guardian_id: str
) -> Outcome:
    children = act.body.get("children") or []
    current = _check_children(ctx, guardian_id, children)
    if credential is not None:
        _check_from_page(ctx, act, credential, guardian_id)
    extra = {"children": children or current}
    return _record(ctx, act, credential, guardian_id, extra)[1]


def _check_from_page(ctx: ActContext, act: Act, credential: Credential, guardian_id: str) -> None:
    """An acknowledgement from a page: after the consent, of a page built for this login,
    showing a real school week."""
    state, since = events.consent_since(guardian_id)
    if state != "granted":
        raise ActRefused(
            409, "consent_required", "consent is not granted; the page cannot acknowledge"
        )
    what = "the consent this acknowledgement needs was given"
    checks.not_before(act.occurred_at, since, "occurred_before_consent", what, "occurred_at")
    checks.page_version(
        str(act.body["page_version"]), page_versions.versions_of(credential.get_id())
    )
    years = [(year.start, year.end) for year in queries.academic_years()]
    checks.shown_week(act.body["shown"], ctx.today, years)


# --- consent -------------------------------------------------------------------------------------


def _check_representative(ctx: ActContext, guardian_id: str) -> None:
    if not any(legal for _sid, legal in events.children_of(guardian_id, ctx.today)):
        raise ActRefused(
            403,
            "not_legal_representative",
            "consent is given by a legal representative of a child on roll; "
            "this guardian is not one",
        )


def _revoke(ctx: ActContext, credential: Credential, why: str) -> None:
    credentials_db.revoke(credential, ctx.now)
    events.forget_page(credential.page_id)
    details = {"login": credential.login, "page_id": credential.page_id, "why": why}
    audit.append(ctx.actor, "credential.revoke", f"credential:{credential.login}", details, ctx.now)


def _remove_page_after(ctx: ActContext, credential: Credential) -> None:
    output_dir = ctx.config.site.output_dir
    ctx.after.append(lambda: _log_failure(build.remove_page, output_dir, credential.page_id))


def _rebuild_after(ctx: ActContext, guardian_id: str) -> None:
    config = ctx.config
    key = (GUARDIAN, guardian_id)
    ctx.after.append(lambda: _log_failure(build.build_pages, build_options(config), {key}))


def _log_failure(action: Callable[..., Any], *args: Any) -> None:
    """A file effect after commit: the act stands; the next build repairs what failed."""
    try:
        action(*args)
    except Exception:
        log.exception("after recording an act: %s failed; the next build repairs it", action)


def consent(ctx: ActContext, act: Act, credential: Credential | None, guardian_id: str) -> Outcome:
    _check_representative(ctx, guardian_id)
    version = str(act.body.get("text_version", ""))
    if version not in consent_text.CONSENT_TEXT_VERSIONS:
        known = ", ".join(consent_text.CONSENT_TEXT_VERSIONS)
        raise ActRefused(
            422, "unknown_text_version", f"consent text version {version!r} is unknown ({known})"
        )
    state = events.next_state(events.consent_state(guardian_id), str(act.body["decision"]))
    outcome = _record(ctx, act, credential, guardian_id, {"consent_state": state})[1]
    login = credential or events.active_credential(GUARDIAN, guardian_id)
    if state == "granted":
        _rebuild_after(ctx, guardian_id)
    elif login is not None and login.state == "active":
        _revoke(ctx, login, f"consent {state}")
        _remove_page_after(ctx, login)
    return outcome


# --- breach -------------------------------------------------------------------------------------


def _invalidate_after(
    ctx: ActContext, credential: Credential, moment: dt.datetime, act: Act
) -> int:
    """Mark invalid the login's acts received, or claiming to be made, after `moment`."""
    reason = (
        f"made with login {credential.login} after it was reported leaked "
        f"({iso(moment)}, report {act.event_id})"
    )
    found = [e for e in events.made_after(credential.get_id(), moment) if e.kind != BREACH]
    for event in found:
        events.mark_invalid(event, reason)
        subject = audit.event_subject(event.event_id)
        audit.append(ctx.actor, audit.INVALIDATE_ACTION, subject, {"reason": reason}, ctx.now)
        push = {"event_id": event.event_id, "invalid": True, "reason": reason}
        events.queue_outbox("push_event", f"{event.event_id}/invalid", push, ctx.now)
    return len(found)


def _new_login(ctx: ActContext, credential: Credential) -> credentials.IssueResult | None:
    prepared = ctx.prepared
    if prepared is None or credential.state != "revoked":
        return None
    try:
        result = credentials.commit_issue(ctx.config, prepared, ctx.now)
    except OSError as error:
        folder = ctx.config.paths.var_dir / "credentials"
        raise ActRefused(
            503,
            "cannot_issue",
            f"cannot write the one-time list of logins under {folder}: {error.strerror or error}; "
            "nothing was recorded: fix the folder and report again",
        ) from None
    if result.list_path is not None:
        path = result.list_path
        ctx.undo.append(lambda: path.unlink(missing_ok=True))
        (login,) = (pair[0] for pair in result.secrets.values())
        details = {"login": login, "list": path.name, "instead_of": credential.login}
        audit.append(ctx.actor, "credential.issue", f"credential:{login}", details, ctx.now)
    return result


def _recipients(config: Config) -> list[str]:
    found = [config.school.head_email, config.school.support_email]
    return list(dict.fromkeys(a for a in found if a))


def local_time(moment: dt.datetime, zone: ZoneInfo) -> str:
    """A stored time as staff read it: the long date and the time, school time."""
    local = utc(moment).astimezone(zone)
    return f"{formatting.date_long(local.date())}, {local:%H:%M}"


def about(credential: Credential) -> str:
    """Whose login it is: role, full name and class, for mail and registers."""
    key = (credential.person_kind, credential.person_id)
    name, class_name = credentials_db.labels_of([key]).get(key, ("", ""))
    role = credentials.ROLE_NAMES.get(credential.person_kind, credential.person_kind)
    where = f", {class_name}" if class_name else ""
    return f"{role}: {name}{where}" if name else role


def _breach_mail(ctx: ActContext, report: BreachReport, credential: Credential, note: str) -> None:
    to = _recipients(ctx.config)
    if not to:
        log.warning("breach report %s: no school.head_email or support_email to notify", report.id)
        return
    zone, event = ctx.zone, report.event
    deadline = local_time(report.deadline, zone)
    how = "со страницы" if event.channel == ELECTRONIC else "зарегистрировано сотрудником школы"
    done = [
        "вход по логину заблокирован, страница заменена на «доступ заблокирован»",
        f"новый логин: {report.new_login} (пароль — в одноразовом списке на сервере)"
        if report.new_login
        else "новый логин не выдан: старый уже был отключён",
    ]
    lines = [
        "Получено сообщение о нарушении конфиденциальности: логин и пароль от страницы",
        "электронного дневника стали известны посторонним.",
        "",
        f"Сообщение № {report.id}",
        f"логин: {credential.login} ({about(credential)})",
        f"получено: {local_time(report.received_at, zone)} ({how})",
        f"срок рассмотрения: до {deadline} (конец следующего рабочего дня)",
        *(["комментарий: " + note] if note else []),
        "",
        "Уже сделано:",
        *[f"- {line}" for line in done],
        "",
        "Выдайте семье новые данные для входа и закройте сообщение:",
        f"otmetka breach close --id {report.id}",
        "",
        f"{ctx.config.school.name}: письмо отправлено автоматически.",
    ]
    domain = ctx.config.mail.from_addr.rpartition("@")[2] or "otmetka.local"
    key = f"<breach-{event.event_id}@{domain}>"
    subject = f"Утечка логина {credential.login}: сообщение № {report.id}, срок до {deadline}"
    mail = {"to": to, "subject": subject, "text": "\n".join(lines) + "\n"}
    events.queue_outbox("mail", key, mail, ctx.now)


def report_breach(
    ctx: ActContext, act: Act, credential: Credential, moment: dt.datetime
) -> Outcome:
    """Everything a breach report does at once; `moment` is when the report was received."""
    deadline = breach_deadline(moment, ctx.zone)
    was_active = credential.state == "active"
    if was_active:
        _revoke(ctx, credential, "breach report")
    output_dir, title = ctx.config.site.output_dir, ctx.config.site.title
    ctx.after.append(lambda: _log_failure(build.block_page, output_dir, credential.page_id, title))
    invalidated = _invalidate_after(ctx, credential, moment, act)
    issued = _new_login(ctx, credential) if was_active else None
    new_login = next(iter(issued.secrets.values()))[0] if issued and issued.secrets else ""
    extra = {"deadline": iso(deadline), "credential": "revoked", "invalidated": invalidated}
    guardian = str(credential.person_id) if credential.person_kind == GUARDIAN else None
    event, outcome = _record(ctx, act, credential, guardian, extra)
    report = events.add_breach(
        event=event,
        credential=credential,
        received_at=moment,
        deadline=deadline,
        new_login=new_login,
        notified=_recipients(ctx.config),
    )
    details = {"deadline": iso(deadline), "received_at": iso(moment), "event": act.event_id}
    audit.append(ctx.actor, "breach.open", f"breach:{report.id}", details, ctx.now)
    _breach_mail(ctx, BreachReport.get_by_id(report.id), credential, str(act.body.get("note", "")))
    return outcome


def successor(config: Config, credential: Credential) -> credentials.PreparedIssue | None:
    """A new login for the person whose login leaked, derived now (outside a transaction);
    None if the login is already off or the person has no page any more."""
    key = (str(credential.person_kind), str(credential.person_id))
    if credential.state != "active" or key not in audience.people_with_pages():
        return None
    return credentials.prepare_issue(config, [key], Reporter(quiet=True))


# --- from a page --------------------------------------------------------------------------------


def credential_for(token_hash: str) -> Credential:
    found = events.credential_by_token_hash(token_hash)
    # The index lookup found the row; the comparison is constant-time all the same, so no
    # code path compares a secret with a timing that depends on its content.
    if found is None or not hmac.compare_digest(str(found.token_hash), token_hash):
        raise ActRefused(401, "unknown_token", "the token is not valid; reload the page")
    return found


def needs_new_login(act: Act, token_hash: str) -> Credential | None:
    """Before a breach is recorded: the credential whose successor must be derived (slow,
    so outside the transaction), or None (unknown token, replay, already revoked)."""
    if act.kind != BREACH:
        return None
    found = events.credential_by_token_hash(token_hash)
    if found is None or found.state != "active" or events.find(act.event_id) is not None:
        return None
    return found


def record_from_page(ctx: ActContext, act: Act, token_hash: str) -> Outcome:
    """An act posted by a page (call inside a write transaction)."""
    credential = credential_for(token_hash)
    replay = find_replay(act, credential)
    if replay is not None:
        return replay
    refuse_blocked(credential)
    ctx.actor = f"page:{credential.login}"
    checks.claimed_time(act.occurred_at, ctx.now, ctx.config.endpoint.offline_window_days)
    issued = "this login was issued"
    checks.not_before(
        act.occurred_at, credential.issued_at, "occurred_before_login", issued, "occurred_at"
    )
    if act.kind == ACK:
        return acknowledge(ctx, act, credential, _guardian_of(credential, "acknowledge"))
    if act.kind == CONSENT:
        return consent(ctx, act, credential, _guardian_of(credential, "give consent"))
    return report_breach(ctx, act, credential, ctx.now)


@contextmanager
def transaction(ctx: ActContext) -> Iterator[None]:
    """One act's transaction: undo on failure, file effects after the commit."""
    try:
        with write_transaction():
            yield
    except BaseException:
        run_all(ctx.undo)
        raise
    run_all(ctx.after)


def run_all(actions: list[Callable[[], None]]) -> None:
    for action in actions:
        action()
