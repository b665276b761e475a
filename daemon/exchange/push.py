"""The upstream push: outbox items of the kinds in WIRE_TYPES posted to upstream
/exchange/v1/events, and how many go in one POST."""

from __future__ import annotations

import json
import threading
from typing import Any

from otmetka.daemon.core.config import Config
from otmetka.daemon.core.delivery import Delivery, SenderUnavailable
from otmetka.daemon.exchange import http
from otmetka.db.outbox import OutboxEntry

# Outbox kind -> the event type upstream knows it by; every kind here is pushed upstream.
WIRE_TYPES = {"push_event": "event", "local_change": "local_change"}


def _wire(item: OutboxEntry) -> dict[str, Any]:
    return {"event_id": item.key, "type": WIRE_TYPES[item.kind], "data": json.loads(item.payload)}


def _verdict(answer: dict[str, Any] | None) -> Delivery:
    if answer is None:
        return Delivery(False, "upstream did not confirm this event; it is sent again")
    if answer.get("status") in ("accepted", "duplicate"):
        return Delivery(True)
    return Delivery(False, f"upstream refused it: {answer.get('error') or answer.get('status')}")


def push_upstream(
    config: Config, items: list[OutboxEntry], stop: threading.Event
) -> dict[str, Delivery]:
    """POST the items to upstream /exchange/v1/events; idempotent by event id."""
    if not config.source.url:
        raise SenderUnavailable("source.url is not set, so nothing can be pushed upstream")
    client = http.UpstreamClient(http.params_from_config(config), stop)
    verdicts = client.push_events([_wire(item) for item in items])
    return {item.key: _verdict(verdicts.get(item.key)) for item in items}


def push_batch_size(config: Config) -> int:
    """Items per POST: `source.push_batch`."""
    return config.source.push_batch
