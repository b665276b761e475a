"""The outbox: what must leave the school, sent when the line allows, never twice.

Rows of `OutboxItem` are queued by whoever records an act (the endpoint queues
`push_event` with the event id as key; a later issue queues `mail`). `flush` hands the due
items of each kind to the sender registered for that kind and records the outcome: a
delivered item gets `done_at`; a failed one keeps its error, counts an attempt and waits
(exponential backoff, stored in `next_try`, so it survives restarts). Kinds without a
sender are left alone, so mail waits in the same table until its sender is registered.

Delivery is at least once; the receiver deduplicates by the item's key (upstream by
`event_id`), which makes it exactly once in effect even when the daemon dies between
sending and recording.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass, field

from otmetka.daemon.core.config import Config
from otmetka.daemon.core.delivery import BatchSize, Delivery, Sender, SenderUnavailable
from otmetka.daemon.core.errors import OtmetkaError
from otmetka.daemon.exchange import http
from otmetka.db import outbox as sync_db
from otmetka.db.outbox import OutboxEntry

log = logging.getLogger("otmetka.outbox")

OK_FACT = "outbox.last_ok"
ERROR_FACT = "outbox.last_error"
FIRST_RETRY = dt.timedelta(minutes=1)

# Filled by the runtime's wiring, so `otmetka run` and `otmetka outbox flush` deliver every
# kind without the outbox knowing who sends what.
_SENDERS: dict[str, tuple[Sender, BatchSize]] = {}


def register_sender(kind: str, sender: Sender, batch_size: BatchSize = lambda _c: 50) -> None:
    """Make `flush` deliver items of `kind` with `sender` (e.g. the mailer for "mail")."""
    _SENDERS[kind] = (sender, batch_size)


def registered_kinds() -> list[str]:
    return list(_SENDERS)


def clear_senders() -> None:
    """Forget every registered sender (for tests that wire their own)."""
    _SENDERS.clear()


# --- flushing -------------------------------------------------------------------------------


@dataclass
class FlushResult:
    sent: int = 0
    failed: int = 0
    waiting: dict[str, str] = field(default_factory=dict)  # kind -> why it was not tried
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"outbox: sent {self.sent}"]
        if self.failed:
            parts.append(f"{self.failed} failed and will be retried")
        parts += [f"{kind} not sent: {why}" for kind, why in self.waiting.items()]
        if self.errors:
            parts.append(f"last error: {self.errors[-1]}")
        return "; ".join(parts)


def next_try(attempts: int, now: dt.datetime, longest: dt.timedelta) -> dt.datetime:
    """Exponential backoff from one minute, capped: 1, 2, 4 … minutes after each failure."""
    return now + min(FIRST_RETRY * 2 ** min(attempts, 30), longest)


def _record(
    items: list[OutboxEntry], outcome: dict[str, Delivery], now: dt.datetime, longest: dt.timedelta
) -> tuple[int, int]:
    sent = [item.id for item in items if outcome[item.key].ok]
    failed = {
        item.id: (outcome[item.key].error, next_try(item.attempts, now, longest))
        for item in items
        if not outcome[item.key].ok
    }
    if sent:
        sync_db.mark_sent(sent, now)
    if failed:
        sync_db.mark_failed(failed)
    return len(sent), len(failed)


def _flush_kind(
    config: Config, kind: str, now: dt.datetime, stop: threading.Event, result: FlushResult
) -> None:
    sender, batch_size = _SENDERS[kind]
    longest = dt.timedelta(minutes=config.schedule.outbox_retry_max_minutes)
    while not stop.is_set():
        items = sync_db.due_items([kind], now, batch_size(config))
        if not items:
            return
        try:
            outcome = sender(config, items, stop)
        except SenderUnavailable as error:
            result.waiting[kind] = str(error)
            return
        except OtmetkaError as error:  # the channel is down: the whole batch waits
            outcome = {item.key: Delivery(False, str(error)) for item in items}
            result.errors.append(str(error))
        sent, failed = _record(items, outcome, now, longest)
        result.sent, result.failed = result.sent + sent, result.failed + failed
        if result.errors:
            return  # do not hammer a channel that is down; the next flush tries again


def flush(
    config: Config, *, now: dt.datetime | None = None, stop: threading.Event | None = None
) -> FlushResult:
    """Send every due item of every kind that has a sender; returns what happened."""
    moment = now or sync_db.now_utc()
    result = FlushResult()
    for kind in registered_kinds():
        try:
            _flush_kind(config, kind, moment, stop or threading.Event(), result)
        except http.Interrupted:
            break
    if result.sent:
        sync_db.put_fact(OK_FACT, {"at": moment.isoformat(timespec="seconds"), "sent": result.sent})
    if result.errors:
        error = {"at": moment.isoformat(timespec="seconds"), "error": result.errors[-1]}
        sync_db.put_fact(ERROR_FACT, error)
    return result


def status_lines() -> list[str]:
    """Backlog per kind, the oldest waiting item, the last error and the last success."""
    backlog = sync_db.outbox_backlog()
    last_ok = sync_db.get_fact(OK_FACT)
    lines = [
        "outbox backlog: "
        + (
            ", ".join(f"{kind} {n}" for kind, n in backlog["per_kind"].items())
            if backlog["total"]
            else "empty"
        )
    ]
    if backlog["total"]:
        oldest = backlog["oldest"]
        lines.append(
            f"outbox oldest waiting since {oldest:%Y-%m-%d %H:%M} UTC, "
            f"up to {backlog['max_attempts']} attempts"
            if oldest
            else "outbox oldest waiting: unknown"
        )
    if backlog["last_error"]:
        lines.append(f"outbox last error: {backlog['last_error']}")
    lines.append(
        f"outbox last successful send: {last_ok['at']} ({last_ok['sent']} items)"
        if last_ok
        else "outbox last successful send: never"
    )
    return lines
