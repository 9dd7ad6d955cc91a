"""A simple rate limit: a token bucket per client IP. Over it a request gets the spec's
TOOMANYREQUESTS (429) with `Retry-After`, which clients (pallet's, containerd's) honour."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

_MAX_CLIENTS = 10_000


class TokenBuckets:
    """`rate` tokens per second refill each client's bucket, up to `burst`."""

    def __init__(self, rate: float, burst: int = 0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = float(burst or max(1, math.ceil(2 * rate)))
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}   # client -> tokens, at

    def take(self, client: str) -> float:
        """0 if the request may go now, else the seconds until it could."""
        now = self._clock()
        tokens, at = self._buckets.get(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens >= 1:
            self._buckets[client] = (tokens - 1, now)
            if len(self._buckets) > _MAX_CLIENTS:
                self._forget(now)
            return 0.0
        self._buckets[client] = (tokens, now)
        return (1 - tokens) / self.rate

    def _forget(self, now: float) -> None:
        # a bucket that has refilled is the same as no bucket
        full = [c for c, (t, at) in self._buckets.items()
                if t + (now - at) * self.rate >= self.burst]
        for c in full:
            del self._buckets[c]
