"""Viewers per audience shard: LiveKit's listing plus the joins it does not show yet.

The join API routes a viewer before its page connects, and LiveKit lists it only once
it has. A listing taken meanwhile must not forget the joins it does not show: when it
did (the routed counts restarted from zero at every listing), each listing made the
shard whose pages connect slowest look emptiest, and a burst of joins piled onto it
(23 / 7 / 6 over three shards in the node-loss bench; docs/scaling.md). So each routed
viewer is kept, by identity, until the listing shows it in its shard or
``PENDING_SECONDS`` pass (a page that never connected: a closed tab, a failed connect).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

#: a routed page not listed by then is taken as never connected (the page gives a
#: connect 4 s, then asks the join API again: a new routing). The price: a page that
#: connects and leaves between two listings holds its seat this long
PENDING_SECONDS = 5.0


@dataclass
class ShardTally:
    """Listed viewers per shard and routed ones not listed yet (identity -> when)."""

    listed: dict[str, int] = field(default_factory=dict)
    pending: dict[str, dict[str, float]] = field(default_factory=dict)

    def routed(self, shard: str, identity: str, now: float) -> None:
        """Count ``identity`` as sent to ``shard`` (no longer pending in any other)."""
        for waiting in self.pending.values():
            waiting.pop(identity, None)
        self.pending.setdefault(shard, {})[identity] = now

    def listing(self, viewers: Mapping[str, Iterable[str]], now: float) -> None:
        """Take LiveKit's listing of the shards it answered about (their viewers' identities).

        A shard it did not answer about keeps its pending joins and loses its count.
        """
        self.listed = {}
        for shard, identities in viewers.items():
            seen = set(identities)
            self.listed[shard] = len(seen)
            waiting = self.pending.get(shard, {})
            for identity in [i for i in waiting if i in seen]:
                del waiting[identity]
        for waiting in self.pending.values():
            for identity in [i for i, at in waiting.items() if now - at > PENDING_SECONDS]:
                del waiting[identity]

    def count(self, shard: str) -> int:
        """Return ``shard``'s viewers as far as the web app knows: listed plus on their way."""
        return self.listed.get(shard, 0) + len(self.pending.get(shard, {}))


def least(counts: Mapping[str, int]) -> str:
    """Return the least-filled shard of ``counts`` (by name on a tie: the same each time)."""
    return min(counts.items(), key=lambda kv: (kv[1], kv[0]))[0]
