"""Limits kept in memory: per identity, per source address, and webhook ids seen.

Questions are limited per identity and per source address, joins per source address;
webhook ids already acted on are remembered so a replay is not acted on again.

In memory: one web app process holds the webinar's SQLite store anyway, and a
restart forgiving a minute of limits is harmless.
"""

from __future__ import annotations

import time
from collections import deque


class SlidingWindowLimit:
    """At most ``limit`` events per key in any ``window`` seconds."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit, self.window = limit, window
        self._events: dict[tuple[str, ...], deque[float]] = {}

    def hit(self, key: tuple[str, ...], now: float | None = None) -> float | None:
        """Count an event for ``key``; None when allowed, else seconds until it would be."""
        now = time.monotonic() if now is None else now
        events = self._events.setdefault(key, deque())
        while events and events[0] <= now - self.window:
            events.popleft()
        if len(events) >= self.limit:
            return events[0] + self.window - now
        events.append(now)
        if len(self._events) > 10_000:  # forget idle keys now and then (bounded memory)
            self._events = {k: v for k, v in self._events.items()
                            if v and v[-1] > now - self.window}
        return None


class TokenBuckets:
    """A token bucket per key (a source address): ``burst`` at once, then ``per_minute``.

    Why a bucket and not a window: a crowd behind one NAT arrives together at the start
    (the burst), and then only now and then (the refill). Full buckets are forgotten, so
    memory follows the addresses active in the last ``burst / rate`` seconds.
    """

    def __init__(self, burst: int, per_minute: float, *, max_keys: int = 50_000) -> None:
        self.burst, self.rate = float(burst), per_minute / 60.0
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def hit(self, key: str, now: float | None = None) -> float | None:
        """Take a token for ``key``; None when allowed, else seconds until one is back."""
        now = time.monotonic() if now is None else now
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > self.max_keys:
            self._forget_full(now)
        return None

    def wait(self, key: str, now: float | None = None) -> float | None:
        """Seconds until ``key`` has a token again, or None when it has one (takes none)."""
        if key not in self._buckets:
            return None
        now = time.monotonic() if now is None else now
        tokens, at = self._buckets[key]
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        return None if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        refill = self.burst / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < refill}


class RecentIds:
    """Ids seen in the last ``ttl`` seconds (webhook event ids: a replay is not acted on)."""

    def __init__(self, ttl: float, *, max_ids: int = 100_000) -> None:
        self.ttl, self.max_ids = ttl, max_ids
        self._seen: dict[str, float] = {}  # insertion order = time order

    def seen(self, event_id: str, now: float | None = None) -> bool:
        """Record ``event_id``; True when it was already seen within ``ttl``."""
        now = time.monotonic() if now is None else now
        while self._seen:
            oldest, at = next(iter(self._seen.items()))
            if now - at < self.ttl and len(self._seen) < self.max_ids:
                break
            del self._seen[oldest]
        if event_id in self._seen:
            return True
        self._seen[event_id] = now
        return False


class LogThrottle:
    """At most one log line per ``interval`` for something anyone can trigger.

    A forged webhook, say, must not let anyone fill the log: the lines past the first
    are counted and reported with the next one.
    """

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self._last = -interval
        self.suppressed = 0

    def allow(self, now: float | None = None) -> int | None:
        """Return how many lines were suppressed since the last, or None to suppress this one.

        A number means a line may be logged now (and should mention that count).
        """
        now = time.monotonic() if now is None else now
        if now - self._last < self.interval:
            self.suppressed += 1
            return None
        self._last, skipped, self.suppressed = now, self.suppressed, 0
        return skipped
