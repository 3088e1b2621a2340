"""Rate limits per credential: a token bucket each, in this process."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """Token buckets by credential id: ``rate`` requests a second, bursts up to ``rate * burst_seconds``."""

    def __init__(self, *, burst_seconds: float) -> None:
        self.burst_seconds = burst_seconds
        self._buckets: dict[str, _Bucket] = {}

    def take(self, credential_id: str, *, rate: float) -> float:
        """Spend one token: 0 when allowed, else the seconds until one is available."""
        if rate <= 0:
            return math.inf
        now = time.monotonic()
        capacity = max(1.0, rate * self.burst_seconds)
        bucket = self._buckets.get(credential_id)
        if bucket is None:
            bucket = self._buckets[credential_id] = _Bucket(tokens=capacity, at=now)
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.at) * rate)
        bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / rate
