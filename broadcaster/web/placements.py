"""Where each viewer sits: (room, identity) -> shard, bounded (LRU) and aged out (TTL).

A viewer who reloads goes back to the shard she had (LiveKit replaces her old session
there, so she is not counted twice); one-off identities must not grow this without end,
so the least recently routed go first past ``max_entries``, and any entry not routed
for ``ttl`` seconds (the claim's lifetime: after it the identity is someone else's) goes.
A forgotten viewer is simply routed afresh, to the least-filled shard.
"""

from __future__ import annotations

import time
from collections import OrderedDict

Key = tuple[str, str]  # (stage room, identity)


class Placements:
    """An LRU map with a time to live: ``get`` and ``put`` make an entry the newest."""

    def __init__(self, max_entries: int, ttl: float) -> None:
        self.max_entries, self.ttl = max_entries, ttl
        self._seats: OrderedDict[Key, tuple[str, float]] = OrderedDict()

    def __len__(self) -> int:
        """How many seats are remembered."""
        return len(self._seats)

    def get(self, key: Key, now: float | None = None) -> str | None:
        """Return the shard ``key`` sits in, or None (never placed, evicted or stale)."""
        now = time.monotonic() if now is None else now
        seat = self._seats.get(key)
        if seat is None:
            return None
        if now - seat[1] > self.ttl:
            del self._seats[key]
            return None
        self._seats.move_to_end(key)
        return seat[0]

    def put(self, key: Key, shard: str, now: float | None = None) -> None:
        """Seat ``key`` in ``shard``; the least recently used (and the stale) go past the cap."""
        now = time.monotonic() if now is None else now
        self._seats[key] = (shard, now)
        self._seats.move_to_end(key)
        while self._seats:
            oldest, (_, at) = next(iter(self._seats.items()))
            if len(self._seats) <= self.max_entries and now - at <= self.ttl:
                break
            del self._seats[oldest]

    def pop(self, key: Key) -> None:
        """Forget ``key`` (removed from the webinar)."""
        self._seats.pop(key, None)

    def drop_room(self, room: str) -> None:
        """Forget every seat of ``room`` (the webinar ended and its shards are gone)."""
        for key in [k for k in self._seats if k[0] == room]:
            del self._seats[key]
