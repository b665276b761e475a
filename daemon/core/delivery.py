"""What the outbox and its senders agree on: a delivery's outcome, the sender's signature, and
the error a sender raises when its channel is not configured.

It lives below the features and the exchange so that a sender in either layer (the upstream
push, the mailer) can speak to the outbox without importing it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from otmetka.daemon.core.config import Config
from otmetka.daemon.core.errors import OtmetkaError
from otmetka.db.outbox import OutboxEntry


@dataclass(frozen=True)
class Delivery:
    ok: bool
    error: str = ""


class SenderUnavailable(OtmetkaError):
    """The channel is not configured (no upstream URL, mail off): items wait untouched."""


# A sender delivers a batch and says, per item key, what happened. It raises
# SenderUnavailable when it cannot try at all, and OtmetkaError when the channel failed
# as a whole (every item of the batch then counts a failed attempt).
Sender = Callable[[Config, list[OutboxEntry], threading.Event], dict[str, Delivery]]
BatchSize = Callable[[Config], int]
