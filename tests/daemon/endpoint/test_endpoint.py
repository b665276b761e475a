"""The acts API over real HTTP (waitress on loopback) against a real SQLite file: schemas,
the token as the only authority, idempotency, limits, CORS, and what each act changes."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from otmetka.daemon.endpoint.app import create_app
from otmetka.daemon.endpoint.limits import RateLimiter
from otmetka.daemon.endpoint.openapi import openapi
from otmetka.db import acts as events
from otmetka.db import audit, close_database, models, page_versions, write_transaction
from tests.support import paths
from tests.support.acts_support import (
    HEAD,
    MOTHER,
    SUPPORT,
    TODAY,
    School,
    ack_body,
    breach_body,
    build_school,
    call,
    consent_body,
    event_id,
    make_config,
    rows,
    serve,
)

STUDENT = "Петров Иван"  # s-3


@pytest.fixture
def school(project_dir: Path) -> Iterator[School]:
    built = build_school(make_config(project_dir))
    yield built
    close_database()


@pytest.fixture
def port(school: School) -> Iterator[int]:
    with serve(create_app(school.config)) as found:
        yield found


def _grant(port: int, school: School) -> None:
    status, _, answer = call(port, "consents", consent_body(school.token(MOTHER), "granted"))
    assert status == 201 and answer["consent_state"] == "granted"


# --- acknowledgement -------------------------------------------------------------------------


def test_acknowledgement_is_recorded_with_its_audit_entry_and_push(
    school: School, port: int
) -> None:
    _grant(port, school)
    body = ack_body(school.token(MOTHER), ["s-1", "s-2"])
    status, headers, answer = call(port, "acknowledgements", body)
    assert status == 201, answer
    assert answer["status"] == "recorded" and answer["children"] == ["s-1", "s-2"]
    assert headers["Access-Control-Allow-Origin"] == "*"
    (event,) = rows("acknowledgement")
    stored = json.loads(event.payload)
    assert event.guardian_id == "g-1" and event.channel == "electronic"
    assert stored["page_version"] == body["page_version"]
    assert stored["shown"]["week_start"] == "2026-09-14"
    assert "token" not in stored and school.token(MOTHER) not in event.payload
    entry = models.AuditEntry.get(models.AuditEntry.subject == f"event:{body['event_id']}")
    assert json.loads(entry.details)["digest"] == audit.event_digest(event)
    push = models.OutboxItem.get(models.OutboxItem.key == body["event_id"])
    assert push.kind == "push_event" and json.loads(push.payload)["guardian_id"] == "g-1"


def test_a_replay_gets_the_first_answer_and_another_body_gets_422(
    school: School, port: int
) -> None:
    _grant(port, school)
    body = ack_body(school.token(MOTHER), ["s-1"])
    first = call(port, "acknowledgements", body)
    again = call(port, "acknowledgements", body)
    assert first[0] == again[0] == 201 and first[2] == again[2]
    changed = {**body, "children": ["s-2"]}
    status, _, answer = call(port, "acknowledgements", changed)
    assert status == 422 and answer["error"] == "event_id_reused"
    assert len(rows("acknowledgement")) == 1


def test_concurrent_replays_of_one_act_make_one_row(school: School, port: int) -> None:
    _grant(port, school)
    body = ack_body(school.token(MOTHER), ["s-1"])
    answers: list[tuple[int, dict]] = []

    def post() -> None:
        status, _, answer = call(port, "acknowledgements", body)
        answers.append((status, answer))

    threads = [threading.Thread(target=post) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {status for status, _ in answers} == {201}
    assert len({json.dumps(a, sort_keys=True) for _, a in answers}) == 1
    assert len(rows("acknowledgement")) == 1


def test_acknowledging_needs_consent_a_guardian_and_own_children(school: School, port: int) -> None:
    token = school.token(MOTHER)
    status, _, answer = call(port, "acknowledgements", ack_body(token, ["s-1"]))
    assert status == 409 and answer["error"] == "consent_required"
    _grant(port, school)
    status, _, answer = call(port, "acknowledgements", ack_body(token, ["s-1", "s-3"]))
    assert status == 422 and "s-3" in answer["message"]
    status, _, answer = call(port, "acknowledgements", ack_body(school.token(STUDENT), ["s-3"]))
    assert status == 403 and answer["error"] == "not_a_guardian"
    assert rows("acknowledgement") == []


# --- acts that cannot be true ------------------------------------------------------------------


def _refused(port: int, path: str, body: dict) -> dict:
    """A 422 whose message names what is wrong, with nothing stored."""
    before = len(rows())
    status, headers, answer = call(port, path, body)
    assert status == 422, answer
    assert headers["Content-Type"] == "application/json" and answer["message"]
    assert len(rows()) == before
    return answer


def _ago(**delta: float) -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(**delta)).isoformat()


def _issued(school: School, name: str, days_ago: int) -> None:
    """The login was issued `days_ago` days ago (the fixture issues every login now)."""
    c, now = models.Credential, dt.datetime.now(dt.UTC).replace(tzinfo=None)
    issued = now - dt.timedelta(days=days_ago)
    c.update(issued_at=issued).where(c.login == school.login(name)).execute()


def test_a_page_version_never_built_for_the_login_is_refused(school: School, port: int) -> None:
    _grant(port, school)
    token, built = school.token(MOTHER), school.record_version(MOTHER)
    made_up = ack_body(token, ["s-1"], page_version="cd" * 32)
    answer = _refused(port, "acknowledgements", made_up)
    assert answer["error"] == "unknown_page_version" and "cd" * 32 in answer["message"]
    others = ack_body(token, ["s-1"], page_version=school.record_version(STUDENT))
    assert _refused(port, "acknowledgements", others)["error"] == "unknown_page_version"
    status, _, answer = call(port, "acknowledgements", ack_body(token, ["s-1"], page_version=built))
    assert status == 201, answer


def test_what_a_built_page_sends_passes_every_check(school: School, port: int) -> None:
    _grant(port, school)
    school.record_version(MOTHER)
    data = school.page_data(MOTHER)
    extra = {"page_version": data["page_version"], "shown": data["shown"]}
    body = ack_body(data["token"], data["children"], **extra)
    status, _, answer = call(port, "acknowledgements", body)
    assert status == 201, answer


def test_an_older_version_of_the_page_is_still_accepted(school: School, port: int) -> None:
    """A parent offline with the page of days ago acknowledges what that page showed."""
    _grant(port, school)
    older = school.record_version(MOTHER)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    with write_transaction():
        page_versions.record([(school.credential(MOTHER).id, "ef" * 32)], later)
    body = ack_body(school.token(MOTHER), ["s-1"], page_version=older)
    status, _, answer = call(port, "acknowledgements", body)
    assert status == 201, answer
    assert {older, "ef" * 32} <= page_versions.versions_of(school.credential(MOTHER).id)


@pytest.mark.parametrize(
    ("shown", "code", "named"),
    [
        (("2026-09-16", "2026-09-19", "2026-09-14"), "not_a_school_week", "2026-09-19"),
        (("2026-09-16", "2026-09-15", "2026-09-20"), "not_a_school_week", "Tuesday"),
        (("2026-09-16", "2026-09-14", "2026-09-20"), "not_a_school_week", "2026-09-19"),
        (("2026-09-30", "2026-09-14", "2026-09-19"), "not_a_school_week", "as_of 2026-09-30"),
        (("2025-09-16", "2025-09-15", "2025-09-20"), "week_outside_school_year", "2026-09-01"),
    ],
)
def test_a_shown_week_must_be_a_school_week(
    school: School, port: int, shown: tuple[str, str, str], code: str, named: str
) -> None:
    _grant(port, school)
    week = dict(zip(("as_of", "week_start", "week_end"), shown, strict=True))
    answer = _refused(port, "acknowledgements", ack_body(school.token(MOTHER), ["s-1"], shown=week))
    assert answer["error"] == code and named in answer["message"]


def test_a_page_cannot_show_a_day_still_to_come(school: School, port: int) -> None:
    _grant(port, school)
    ahead = dt.date.today() + dt.timedelta(days=14)
    monday = ahead - dt.timedelta(days=ahead.weekday())
    week = {
        "as_of": ahead.isoformat(),
        "week_start": monday.isoformat(),
        "week_end": (monday + dt.timedelta(days=5)).isoformat(),
    }
    answer = _refused(port, "acknowledgements", ack_body(school.token(MOTHER), ["s-1"], shown=week))
    assert answer["error"] == "shown_in_future" and ahead.isoformat() in answer["message"]


@pytest.mark.parametrize(
    ("occurred_at", "code", "named"),
    [
        ("2001-03-05T10:00:00+03:00", "occurred_too_late", "14 days"),
        (_ago(days=15), "occurred_too_late", "endpoint.offline_window_days"),
        (_ago(hours=-1), "occurred_in_future", "clock"),
        (_ago(days=2), "occurred_before_login", "this login was issued"),
    ],
)
def test_a_claimed_time_that_cannot_be_is_refused(
    school: School, port: int, occurred_at: str, code: str, named: str
) -> None:
    token = school.token(MOTHER)
    for body in (consent_body(token, "granted"), breach_body(token)):
        answer = _refused(
            port,
            "consents" if "decision" in body else "breach-reports",
            body | {"occurred_at": occurred_at},
        )
        assert answer["error"] == code and named in answer["message"]
    assert school.credential(MOTHER).state == "active"


def test_an_acknowledgement_cannot_precede_its_consent(school: School, port: int) -> None:
    _issued(school, MOTHER, days_ago=10)
    _grant(port, school)
    body = ack_body(school.token(MOTHER), ["s-1"], occurred_at=_ago(days=3))
    answer = _refused(port, "acknowledgements", body)
    assert answer["error"] == "occurred_before_consent" and "consent" in answer["message"]


def test_an_act_made_offline_within_the_window_keeps_both_times(school: School, port: int) -> None:
    _issued(school, MOTHER, days_ago=20)
    token = school.token(MOTHER)
    consent = consent_body(token, "granted", occurred_at=_ago(days=12))
    assert call(port, "consents", consent)[0] == 201
    claimed = _ago(days=10)
    body = ack_body(token, ["s-1"], occurred_at=claimed)
    status, _, answer = call(port, "acknowledgements", body)
    assert status == 201, answer
    (event,) = rows("acknowledgement")
    entry = models.AuditEntry.get(models.AuditEntry.subject == f"event:{body['event_id']}")
    details = json.loads(entry.details)
    moment = dt.datetime.fromisoformat(claimed).astimezone(dt.UTC).replace(tzinfo=None)
    assert details["claimed_at"] == audit.stamp(moment) == audit.stamp(event.occurred_at)
    assert details["received_at"] == audit.stamp(event.received_at)
    assert event.received_at - event.occurred_at > dt.timedelta(days=9)
    assert audit.verify().ok


def test_a_clock_a_little_ahead_is_clamped_and_its_claim_kept(school: School, port: int) -> None:
    body = consent_body(school.token(MOTHER), "granted", occurred_at=_ago(minutes=-2))
    status, _, answer = call(port, "consents", body)
    assert status == 201, answer
    (event,) = rows("consent")
    entry = models.AuditEntry.get(models.AuditEntry.subject == f"event:{body['event_id']}")
    details = json.loads(entry.details)
    assert event.occurred_at == event.received_at
    assert details["claimed_at"] > details["received_at"] == audit.stamp(event.received_at)


# --- malformed input, authority, limits ----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "body"),
        (json.dumps({"event_id": "x" * 20}).encode(), "field 'token'"),
        (json.dumps({**ack_body("t" * 43, ["s-1"]), "extra": 1}).encode(), "field 'extra'"),
        (json.dumps(ack_body("t" * 43, ["s-1"], page_version="short")).encode(), "page_version"),
        (json.dumps(ack_body("t" * 43, ["s-1"], event_id="bad id!")).encode(), "event_id"),
        (json.dumps(ack_body("t" * 43, [], occurred_at="2026-09-16")).encode(), "occurred_at"),
    ],
)
def test_malformed_input_is_400_with_a_message(port: int, body: bytes, message: str) -> None:
    status, headers, answer = call(port, "acknowledgements", body)
    assert status == 400 and answer["error"] == "invalid_request"
    assert message in answer["message"] and headers["Content-Type"] == "application/json"
    assert rows() == []


def test_unknown_token_wrong_type_and_oversized_body(school: School, port: int) -> None:
    status, _, answer = call(port, "consents", consent_body("A" * 43, "granted"))
    assert status == 401 and answer["error"] == "unknown_token"
    body = json.dumps(consent_body(school.token(MOTHER), "granted")).encode()
    status, _, answer = call(port, "consents", body, headers={"Content-Type": "text/plain"})
    assert status == 415 and "application/json" in answer["message"]
    huge = json.dumps(breach_body(school.token(MOTHER), note="x" * 20000)).encode()
    status, _, answer = call(port, "breach-reports", huge)
    assert status == 413 and answer["error"] == "request_entity_too_large"
    assert rows() == [] and school.credential(MOTHER).state == "active"


def test_rate_limits_per_login_and_per_address(project_dir: Path) -> None:
    config = make_config(
        project_dir,
        endpoint={"rate_per_credential_per_minute": 3, "rate_per_address_per_minute": 5},
    )
    school = build_school(config)
    try:
        with serve(create_app(config)) as port:
            token = school.token(MOTHER)
            codes = [call(port, "consents", consent_body(token, "granted"))[0] for _ in range(4)]
            assert codes == [201, 201, 201, 429]
            other = school.token("Иванов Артём")
            status, headers, answer = call(port, "breach-reports", breach_body(other))
            assert status == 201
            status, headers, answer = call(port, "breach-reports", breach_body(other))
            assert status == 429 and int(headers["Retry-After"]) >= 1
            assert "from this address" in answer["message"]
    finally:
        close_database()


def test_rate_limiter_refills_with_time() -> None:
    clock = [0.0]
    limiter = RateLimiter(60, clock=lambda: clock[0])
    assert all(limiter.wait_for("k") == 0 for _ in range(60))
    assert limiter.wait_for("k") == pytest.approx(1.0)
    clock[0] += 2.0
    assert limiter.wait_for("k") == 0 and limiter.wait_for("other") == 0


def test_cors_preflight_allows_any_origin_without_credentials(port: int) -> None:
    headers = {
        "Origin": "null",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
        "Access-Control-Request-Private-Network": "true",
    }
    status, answer_headers, _ = call(
        port, "acknowledgements", None, method="OPTIONS", headers=headers
    )
    assert status == 204
    assert answer_headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in answer_headers["Access-Control-Allow-Methods"]
    assert answer_headers["Access-Control-Allow-Headers"] == "Content-Type"
    assert answer_headers["Access-Control-Allow-Private-Network"] == "true"
    assert "Access-Control-Allow-Credentials" not in answer_headers


# --- consent ------------------------------------------------------------------------------------


def test_until_consent_the_page_holds_only_the_form(school: School, port: int) -> None:
    page = school.open_page(MOTHER)
    assert "Даю согласие" in page and "Перечень персональных данных" in page
    for name in ("Иванова", "Алёна", "Артём", "Математика"):
        assert name not in page
    data = page.split('id="otm-page-data">', 1)[1]
    assert '"consent":"unknown"' in data and '"children":["s-2","s-1"]' in data
    _grant(port, school)
    page = school.open_page(MOTHER)  # re-rendered at once, without waiting for a build
    assert "Иванова-Крылова Алёна" in page and "Ознакомлен(а)" in page
    assert '"consent":"granted"' in page


def test_withdrawal_removes_the_page_at_once_and_stops_the_login(school: School, port: int) -> None:
    _grant(port, school)
    token, page = school.token(MOTHER), school.page(MOTHER)
    status, _, answer = call(port, "consents", consent_body(token, "withdrawn"))
    assert status == 201 and answer["consent_state"] == "withdrawn"
    assert not page.exists() and school.credential(MOTHER).state == "revoked"
    status, _, answer = call(port, "acknowledgements", ack_body(token, ["s-1"]))
    assert status == 403 and answer["error"] == "credential_revoked"
    families = {f.guardian_id: f for f in events.paper_list(TODAY)}
    assert families["g-1"].reason == "withdrawn" and families["g-2"].reason == "paper delivery"
    child_pages = [school.page(n) for n in ("Иванова-Крылова Алёна", "Иванов Артём")]
    assert all(p.exists() for p in child_pages)
    school.rebuild()
    assert not any(p.exists() for p in child_pages)  # the family is on paper now
    assert school.page(STUDENT).exists()


def test_refusal_before_consent_is_recorded_as_refused(school: School, port: int) -> None:
    status, _, answer = call(port, "consents", consent_body(school.token(MOTHER), "refused"))
    assert status == 201 and answer["consent_state"] == "refused"
    assert events.consent_states() == {"g-1": "refused"}
    assert not school.page(MOTHER).exists()


def test_consent_text_version_must_be_known(school: School, port: int) -> None:
    body = consent_body(school.token(MOTHER), "granted", text_version="1999-9")
    status, _, answer = call(port, "consents", body)
    assert status == 422 and "1999-9" in answer["message"]


# --- breach ------------------------------------------------------------------------------------


def test_breach_report_does_everything_at_once(school: School, port: int) -> None:
    _grant(port, school)
    token, page = school.token(MOTHER), school.page(MOTHER)
    lists = set((school.config.paths.var_dir / "credentials").glob("issued-*.csv"))
    status, _, answer = call(port, "breach-reports", breach_body(token))
    assert status == 201 and answer["credential"] == "revoked" and answer["deadline"]
    old = school.credential(MOTHER)
    assert old.state == "revoked"
    # From outside the blocked page is a page like any other; the old password opens the notice.
    assert "otm-envelope" in page.read_text(encoding="utf-8")
    blocked = school.open_page(MOTHER)
    assert "Доступ заблокирован" in blocked and "Иванова" not in blocked
    (new_list,) = set((school.config.paths.var_dir / "credentials").glob("issued-*.csv")) - lists
    text = new_list.read_text(encoding="utf-8-sig")
    assert "Иванова Мария" in text and old.login not in text
    fresh = models.Credential.get(
        models.Credential.person_id == "g-1", models.Credential.state == "active"
    )
    assert fresh.login in text
    (mail,) = models.OutboxItem.select().where(models.OutboxItem.kind == "mail")
    letter = json.loads(mail.payload)
    assert letter["to"] == [HEAD, SUPPORT] and old.login in letter["subject"]
    assert fresh.login in letter["text"] and "срок рассмотрения" in letter["text"]
    (report,) = models.BreachReport.select()
    assert report.state == "open" and report.new_login == fresh.login
    status, _, answer = call(port, "acknowledgements", ack_body(token, ["s-1"]))
    assert status == 403
    school.rebuild()  # the builder keeps the blocked page and builds the new login's page
    assert "Доступ заблокирован" in school.open_page(MOTHER)
    assert audit.verify().ok


def test_a_busy_database_is_waited_for_not_failed(project_dir: Path) -> None:
    """An import holding the write lock delays acts; they are written once it lets go."""
    config = make_config(project_dir, database={"busy_timeout_ms": 100})
    school = build_school(config)
    try:
        path = config.database_path()
        with serve(create_app(config)) as port:
            holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            holder.execute("BEGIN IMMEDIATE")
            released = threading.Event()

            def release() -> None:
                holder.execute("COMMIT")
                released.set()

            releaser = threading.Timer(1.0, release)
            releaser.start()
            body = consent_body(school.token(MOTHER), "granted")
            status, _, answer = call(port, "consents", body)
            answered_after_release = released.is_set()
            releaser.join()
            holder.close()
        assert status == 201, answer
        assert answered_after_release  # it waited for the lock instead of failing
        assert len(rows("consent")) == 1
    finally:
        close_database()


def test_a_database_locked_too_long_answers_503_and_the_retry_succeeds(
    project_dir: Path,
) -> None:
    config = make_config(
        project_dir, database={"busy_timeout_ms": 50}, endpoint={"write_wait_s": 0.3}
    )
    school = build_school(config)
    try:
        body = consent_body(school.token(MOTHER), "granted")
        with serve(create_app(config)) as port:
            holder = sqlite3.connect(config.database_path(), isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")
            status, headers, answer = call(port, "consents", body)
            holder.execute("COMMIT")
            holder.close()
            assert status == 503 and headers["Retry-After"] and answer["error"] == "busy"
            assert rows() == []
            status, _, answer = call(port, "consents", body)
        assert status == 201 and len(rows("consent")) == 1
    finally:
        close_database()


def test_the_id_of_an_event_is_unique_across_kinds(school: School, port: int) -> None:
    _grant(port, school)
    shared = event_id()
    token = school.token(MOTHER)
    assert call(port, "acknowledgements", ack_body(token, ["s-1"], event_id=shared))[0] == 201
    status, _, answer = call(port, "breach-reports", breach_body(token, event_id=shared))
    assert status == 422 and answer["error"] == "event_id_reused"
    assert school.credential(MOTHER).state == "active"


def test_openapi_file_matches_the_schemas() -> None:
    committed = paths.ROOT / "docs" / "openapi.json"
    assert json.loads(committed.read_text(encoding="utf-8")) == openapi(), (
        "regenerate: .venv/bin/python -m otmetka.daemon.endpoint.openapi > docs/openapi.json"
    )
    routes = openapi()["paths"]
    assert {"/api/v1/acknowledgements", "/api/v1/consents", "/api/v1/breach-reports"} <= set(routes)
