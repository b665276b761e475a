"""Fuzzing the acts API: random bytes, random JSON and mutated valid acts, with and
without the right content type, through the Flask test client and (a few) through a real
waitress server. Never a 5xx; an act that is not accepted writes nothing at all.

Examples are derandomised so CI is repeatable; `HYPOTHESIS_PROFILE=deep` runs many more.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from otmetka.daemon.acts import paper
from otmetka.daemon.endpoint.app import create_app
from otmetka.db import close_database, journal
from tests.support.acts_support import (
    ack_body,
    breach_body,
    build_school,
    call,
    consent_body,
    make_config,
)
from tests.support.servers import waitress_server

DEEP = os.environ.get("HYPOTHESIS_PROFILE") == "deep"
FUZZ = settings(
    max_examples=2000 if DEEP else 80,
    deadline=None,
    derandomize=not DEEP,  # CI sees the same examples every run
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

ROUTES = ["acknowledgements", "consents", "breach-reports"]
MOTHER, SON = "Иванова Мария", "Иванов Артём"


@dataclass
class Site:
    app: Any
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The small school with logins; the mother consented, so her page may acknowledge."""
    folder = tmp_path_factory.mktemp("fuzz-endpoint")
    config = make_config(folder, endpoint={"rate_per_credential_per_minute": 1_000_000})
    school = build_school(config)
    paper.register_consent(config, login=school.login(MOTHER), decision="granted", paper=True)
    tokens = {name: school.token(name) for name in (MOTHER, SON, "Королёва Анна Петровна")}
    yield Site(create_app(config), tokens)
    close_database()


# --- strategies ----------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.sampled_from(["", "2026-09-16T10:15:00+03:00", "2026-09-16", "granted", "s-1", "x" * 2000]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)
CONTENT_TYPES = [
    "application/json",
    "application/json",
    "application/json; charset=utf-8",
    "text/plain",
    "application/x-www-form-urlencoded",
    "",
]


def _valid(site: Site, route: str, who: str) -> dict[str, Any]:
    token = site.tokens[who]
    if route == "acknowledgements":
        return ack_body(token, ["s-1", "s-2"])
    if route == "consents":
        return consent_body(token, "granted")
    return breach_body(token)


@st.composite
def mutated_act(draw: st.DrawFn, site: Site) -> tuple[str, bytes, str]:
    route = draw(st.sampled_from(ROUTES))
    body = _valid(site, draw(st.sampled_from(ROUTES)), draw(st.sampled_from(sorted(site.tokens))))
    for _ in range(draw(st.integers(0, 3))):  # 0: a valid act, which must be stored
        key = draw(st.sampled_from([*sorted(body), "extra", "shown"]))
        how = draw(st.sampled_from(["drop", "set", "token", "nest"]))
        if how == "drop":
            body.pop(key, None)
        elif how == "set":
            body[key] = draw(json_values)
        elif how == "token":
            body["token"] = draw(st.sampled_from([*site.tokens.values(), "A" * 43, ""]))
        else:
            body[key] = {"a": copy.deepcopy(body.get(key))}
    text = json.dumps(body, ensure_ascii=draw(st.booleans()))
    return route, text.encode("utf-8"), draw(st.sampled_from(CONTENT_TYPES))


@st.composite
def random_request(draw: st.DrawFn) -> tuple[str, bytes, str]:
    route = draw(st.sampled_from([*ROUTES, "health", "nothing-here", "consents/extra"]))
    raw = draw(
        st.one_of(
            st.binary(max_size=400),
            json_values.map(lambda v: json.dumps(v).encode()),
            st.text(max_size=200).map(str.encode),
        )
    )
    return route, raw, draw(st.sampled_from(CONTENT_TYPES))


# --- the property --------------------------------------------------------------------------------


def _check(status: int, before: dict[str, Any], where: str) -> None:
    event(f"status {status}")  # --hypothesis-show-statistics shows the mix
    assert status < 500, f"{where}: {status}"
    if 200 <= status < 300:  # a new act was accepted: it is stored (the check is not blind)
        assert journal.dump_tables() != before, f"{where}: accepted but nothing stored"
    else:
        assert journal.dump_tables() == before, f"{where}: refused ({status}) but wrote"


def _through_flask(site: Site, route: str, body: bytes, content_type: str) -> None:
    before = journal.dump_tables()
    client = site.app.test_client()
    headers = {"Content-Type": content_type} if content_type else {}
    answer = client.post(f"/api/v1/{route}", data=body, headers=headers)
    _check(answer.status_code, before, route)
    if route.startswith(tuple(ROUTES)) and answer.status_code != 404:
        assert answer.is_json, "every API answer is JSON"


@FUZZ
@given(data=st.data())
def test_mutated_acts_never_5xx_and_refusals_write_nothing(site: Site, data: st.DataObject) -> None:
    _through_flask(site, *data.draw(mutated_act(site)))


@FUZZ
@given(request=random_request())
def test_random_requests_never_5xx(site: Site, request: tuple[str, bytes, str]) -> None:
    _through_flask(site, *request)


@settings(FUZZ, max_examples=200 if DEEP else 15)
@given(data=st.data())
def test_a_real_server_too(site: Site, data: st.DataObject) -> None:
    request = data.draw(st.one_of(mutated_act(site), random_request()))
    route, body, content_type = request
    with waitress_server(site.app) as port:
        before = journal.dump_tables()
        headers = {"Content-Type": content_type} if content_type else {}
        status, _headers, _answer = _call_raw(port, route, body, headers)
        _check(status, before, route)


def _call_raw(
    port: int, route: str, body: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, str], Any]:
    """`call`, but an answer that is not JSON (a 404 page) is fine here."""
    try:
        return call(port, route, body, headers=headers)
    except json.JSONDecodeError:
        return 404, {}, None
