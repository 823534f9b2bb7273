"""What keeps one caller, or all of them, from taking the ingress down.

``RateLimiter``: a token bucket per key (429 when empty). ``Slots``: counted places
(concurrent turns per key: 429; turns per replica: 503), taken without waiting, so an
overloaded replica answers at once instead of queueing without bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from agents.api._errors import ApiError
from agents.api.types import ErrorType

__all__ = ["RateLimiter", "Slots"]

_MAX_BUCKETS = 100_000  # idle buckets past this are dropped (they refill to full anyway)


class RateLimiter:
    """``per_minute`` requests per key, sustained, and bursts up to ``burst``."""

    def __init__(
        self, per_minute: int, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: str, per_minute: int | None = None, burst: int | None = None) -> None:
        """Spend one request of ``key``'s allowance; ``ApiError`` 429 when none is left.

        ``per_minute`` and ``burst``, where given, are the key's own, replacing the
        limiter's."""
        rate = self._rate if per_minute is None else per_minute / 60.0
        full = self._burst if burst is None else float(burst)
        now = self._clock()
        tokens, at = self._buckets.get(key, (full, now))
        tokens = min(full, tokens + (now - at) * rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            wait = (1.0 - tokens) / rate
            raise ApiError(
                "rate_limit_exceeded",
                f"rate limit of {rate * 60:g} requests per minute reached; retry in {wait:.1f} s",
                retry_after_s=wait,
            )
        if len(self._buckets) >= _MAX_BUCKETS and key not in self._buckets:
            self._buckets.clear()
        self._buckets[key] = (tokens - 1.0, now)


class Slots:
    """At most ``limit`` holders per key; the next one gets ``ApiError`` of ``type_``."""

    def __init__(self, limit: int, type_: ErrorType, what: str) -> None:
        self.limit = limit
        self._type: ErrorType = type_
        self._what = what
        self._held: dict[str, int] = {}

    def held(self, key: str = "") -> int:
        """How many places ``key`` holds now."""
        return self._held.get(key, 0)

    def take(self, key: str = "") -> None:
        """Take a place for ``key`` or raise; give it back with ``give``."""
        held = self._held.get(key, 0)
        if held >= self.limit:
            raise ApiError(
                self._type, f"{self._what} ({self.limit}) reached; retry later", retry_after_s=1
            )
        self._held[key] = held + 1

    def give(self, key: str = "") -> None:
        """Give back a place taken with ``take``."""
        held = self._held.get(key, 0) - 1
        if held > 0:
            self._held[key] = held
        else:
            self._held.pop(key, None)

    @contextmanager
    def hold(self, key: str = "") -> Iterator[None]:
        """Hold a place for the block."""
        self.take(key)
        try:
            yield
        finally:
            self.give(key)
