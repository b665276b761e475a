"""The request schemas of the acts API, and turning a request body into an act.

Strict: unknown fields are errors, and a malformed body is refused with a message that names
the field.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints
from pydantic import ValidationError as SchemaError

from otmetka.daemon.acts import rules as acts
from otmetka.site_builder import crypto

EventId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{16,64}$")]
Token = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{20,128}$")]
PersonId = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _ActRequest(_Strict):
    event_id: EventId = Field(description="Random id made by the page; the same on every retry.")
    token: Token = Field(description="The page's endpoint token: the only authority.")
    occurred_at: AwareDatetime = Field(
        description="When the parent acted (page clock): not after the server's time by more "
        "than 5 minutes, not more than endpoint.offline_window_days before it, not before "
        "the login was issued (else 422)."
    )


class Shown(_Strict):
    """The week the page showed, as the builder wrote it into the page."""

    as_of: dt.date = Field(description="The day the data is for: in the week, not after today.")
    week_start: dt.date = Field(description="A Monday, in an academic year of the journal.")
    week_end: dt.date = Field(description="The Saturday after week_start.")


class AckRequest(_ActRequest):
    page_version: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] = Field(
        description="The version of the page read: one built for this login (else 422)."
    )
    children: list[PersonId] = Field(min_length=1, max_length=20)
    shown: Shown


class ConsentRequest(_ActRequest):
    decision: Literal["granted", "refused", "withdrawn"]
    text_version: Annotated[str, StringConstraints(min_length=1, max_length=32)]


class BreachRequest(_ActRequest):
    note: Annotated[str, StringConstraints(max_length=1000)] = ""


ROUTES: dict[str, tuple[str, type[_ActRequest]]] = {
    "acknowledgements": (acts.ACK, AckRequest),
    "consents": (acts.CONSENT, ConsentRequest),
    "breach-reports": (acts.BREACH, BreachRequest),
}


class ApiError(Exception):
    """An answer other than success: HTTP status, a stable code, a message for people."""

    def __init__(self, status: int, code: str, message: str, retry_after: int = 0) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after


def _schema_message(error: SchemaError) -> str:
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "body"
        if item["type"] == "json_invalid":
            return "the body is not valid JSON"
        parts.append(f"field '{where}': {item['msg'].lower()}")
    return "; ".join(parts)


def parse_act(path: str, body: bytes) -> tuple[acts.Act, str]:
    """The act and the token's hash, from a request body; ApiError(400) if malformed."""
    kind, schema = ROUTES[path]
    try:
        parsed = schema.model_validate_json(body)
    except SchemaError as error:
        raise ApiError(400, "invalid_request", _schema_message(error)) from None
    stored = parsed.model_dump(mode="json", exclude={"token"})
    act = acts.Act(kind, parsed.event_id, stored, parsed.occurred_at, acts.ELECTRONIC)
    return act, crypto.hash_token(parsed.token)
