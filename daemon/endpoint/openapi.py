"""The API description: docs/openapi.json, generated from the schemas the endpoint validates
with.

Regenerate it with ``python -m otmetka.daemon.endpoint.openapi > docs/openapi.json``; a test
checks that the committed file matches.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

from otmetka.daemon.endpoint.schemas import ROUTES, AckRequest, BreachRequest, ConsentRequest


class Answer(BaseModel):
    """What an act gets back: 201 the first time, the same answer again on a replay."""

    event_id: str
    kind: Literal["acknowledgement", "consent", "breach_report"]
    status: Literal["recorded"]
    received_at: str = Field(description="When the school received the act (UTC, ISO 8601).")
    children: list[str] | None = Field(None, description="acknowledgement: whose pages.")
    consent_state: Literal["granted", "refused", "withdrawn"] | None = Field(
        None,
        description="consent: the state after this act (a refusal after consent is a withdrawal).",
    )
    deadline: str | None = Field(None, description="breach: end of the next working day (UTC).")
    credential: Literal["revoked"] | None = None
    invalidated: int | None = Field(None, description="breach: acts of the login made invalid.")


class ErrorAnswer(BaseModel):
    error: str = Field(description="A stable code, e.g. event_id_reused, occurred_too_late.")
    message: str = Field(description="What is wrong and what to do, in English.")


_ERRORS = {
    "400": "Malformed JSON or a field that breaks the schema; the message names the field.",
    "401": "Unknown token: the page is not one of this school's current pages.",
    "403": "The login is blocked (breach report, refused consent), or not allowed this act.",
    "409": "Not now: e.g. an acknowledgement before consent was granted.",
    "413": "The body is larger than endpoint.max_body_bytes.",
    "415": "The body is not sent as application/json.",
    "422": (
        "The act cannot be true or names what is unknown; `error` says which: event_id_reused, "
        "unknown_children, unknown_text_version, unknown_page_version, not_a_school_week, "
        "week_outside_school_year, shown_in_future, occurred_in_future, occurred_too_late, "
        "occurred_before_login, occurred_before_consent."
    ),
    "429": "Over the per-address or per-login rate; Retry-After says when to try again.",
    "503": "The database stayed busy (a long import); retry later with the same event_id.",
}
_SUMMARIES = {
    "acknowledgements": "A parent confirms they have read the page (its exact version).",
    "consents": "A legal representative grants, refuses or withdraws consent.",
    "breach-reports": "Someone reports that this page's login and password leaked.",
}


def openapi() -> dict[str, Any]:
    """docs/openapi.json, generated from the schemas the endpoint validates with."""
    models: list[type[BaseModel]] = [AckRequest, ConsentRequest, BreachRequest, Answer, ErrorAnswer]
    inputs: list[tuple[type[BaseModel], Literal["validation"]]] = [
        (m, "validation") for m in models
    ]
    _, schema = models_json_schema(inputs, ref_template="#/components/schemas/{model}")
    paths: dict[str, Any] = {
        "/api/v1/health": {
            "get": {"summary": "Is the endpoint up.", "responses": {"200": {"description": "ok"}}}
        }
    }
    for path, (_kind, model) in ROUTES.items():
        paths[f"/api/v1/{path}"] = _act_path(path, model)
    return {
        "openapi": "3.1.0",
        "info": {"title": "otmetka acts API", "version": "1"},
        "paths": paths,
        "components": {"schemas": schema["$defs"]},
    }


def _act_path(path: str, model: type[BaseModel]) -> dict[str, Any]:
    """The POST of one act: its request schema, the answer and every error."""
    return {
        "post": {
            "summary": _SUMMARIES[path],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}
                    }
                },
            },
            "responses": _act_responses(),
        }
    }


def _act_responses() -> dict[str, Any]:
    error_ref = {"$ref": "#/components/schemas/ErrorAnswer"}
    responses: dict[str, Any] = {
        "201": {
            "description": "Recorded (also the answer to a replay of the same act).",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Answer"}}},
        }
    }
    for code, text in _ERRORS.items():
        responses[code] = {
            "description": text,
            "content": {"application/json": {"schema": error_ref}},
        }
    return responses


def main() -> None:
    """Print docs/openapi.json."""
    if sys.argv[1:]:
        sys.exit("usage: python -m otmetka.daemon.endpoint.openapi > docs/openapi.json")
    sys.stdout.write(json.dumps(openapi(), ensure_ascii=False, indent=2) + "\n")


if __name__ == "__main__":
    main()
