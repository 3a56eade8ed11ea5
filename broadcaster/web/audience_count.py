"""How many watch a webinar, from LiveKit's server API (pages cannot count hidden viewers).

Counts are cached for ``audience_cache_seconds`` per room, so a console polling it costs
LiveKit one listing per interval, not one per request; a join or a leave forgets the
cache. With audience shards the figures sum the stage and every shard, and ``shards``
gives each shard's viewers (the host sees where the audience is).
"""

from __future__ import annotations

import time
from typing import Any

from broadcaster.config import Settings
from broadcaster.roles import Role
from broadcaster.web.livekit_admin import LiveKitAdmin
from broadcaster.web.shards import ShardRouter


class AudienceCount:
    """Cached viewer and participant counts per webinar room."""

    def __init__(self, settings: Settings, livekit: LiveKitAdmin, shards: ShardRouter) -> None:
        self.settings = settings
        self.livekit = livekit
        self.shards = shards
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}

    async def count(self, room: str) -> dict[str, Any]:
        """Return ``{"viewers", "participants"}`` (and ``"shards"`` with shards on)."""
        now = time.monotonic()
        cached = self._cache.get(room)
        if cached and now - cached[0] < self.settings.audience_cache_seconds:
            return cached[1]
        people = await self.livekit.participants(room)
        counts: dict[str, Any] = {
            "viewers": sum(1 for p in people if p.attributes.get("role") == Role.VIEWER),
            "participants": len(people),
        }
        if self.shards.enabled:
            shards = await self.shards.counts(room, fresh=True)
            counts["viewers"] += sum(shards.values())
            counts["participants"] += sum(shards.values())
            counts["shards"] = shards
        self._cache[room] = (now, counts)
        return counts

    def forget(self, room: str) -> None:
        """Drop ``room``'s cached count: the next one asks LiveKit again."""
        self._cache.pop(room, None)
