"""Rate limits of the acts API: a token bucket per address and per login."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from otmetka.daemon.endpoint.schemas import ApiError


class RateLimiter:
    """A token bucket per key: `per_minute` requests a minute, bursts up to `per_minute`."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.refill = per_minute / 60.0
        self.clock = clock
        self.buckets: dict[str, tuple[float, float]] = {}
        self.lock = threading.Lock()

    def wait_for(self, key: str) -> float:
        """0 if the request may go now (and it is counted), else seconds until it may."""
        now = self.clock()
        with self.lock:
            tokens, last = self.buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.refill)
            if tokens < 1.0:
                self.buckets[key] = (tokens, now)
                return (1.0 - tokens) / self.refill
            self.buckets[key] = (tokens - 1.0, now)
            if len(self.buckets) > 100_000:
                self._forget_idle(now)
            return 0.0

    def _forget_idle(self, now: float) -> None:
        """Full buckets carry no state: drop them so memory stays bounded."""
        full_after = self.capacity / self.refill
        idle = [k for k, (_t, last) in self.buckets.items() if now - last > full_after]
        for key in idle:
            del self.buckets[key]


def check_rate(limiter: RateLimiter, key: str, what: str) -> None:
    wait = limiter.wait_for(key)
    if wait > 0:
        seconds = max(1, int(wait + 0.999))
        raise ApiError(429, "rate_limited", f"too many requests {what}; retry later", seconds)
