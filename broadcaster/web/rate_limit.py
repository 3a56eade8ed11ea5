"""A sliding-window limit per key (room, identity): how often a viewer may ask.

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
