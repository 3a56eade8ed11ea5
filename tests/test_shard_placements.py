"""The shard router remembers where each viewer sits (a reload goes back to its seat), in
bounded memory: a storm of one-off identities cannot grow it past ``shard_placements_max``
entries, and entries older than ``identity_claim_seconds`` go (a known limit closed).
Against the session's real livekit-server (shard rooms are ordinary rooms on one node)."""

from __future__ import annotations

import time

from broadcaster.config import Settings
from broadcaster.web.livekit_admin import LiveKitAdmin
from broadcaster.web.placements import Placements
from broadcaster.web.shards import ShardRouter
from tests.fixtures_web import unique_room


async def test_placements_are_bounded_and_a_rejoin_keeps_its_shard(livekit: Settings) -> None:
    s = livekit.replace(audience_shards=3, shard_capacity=1_000, shard_placements_max=50,
                        audience_cache_seconds=3600.0)
    admin = LiveKitAdmin(s)
    try:
        router = ShardRouter(s, admin)
        room = unique_room("place")
        seats = {f"early-{i}": await router.route(room, f"early-{i}") for i in range(10)}
        assert len(set(seats.values())) == 3  # spread over the shards
        for i in range(1_000):  # identities minted once and never seen again
            await router.route(room, f"oneoff-{i}")
            if i % 20 == 0:  # the early viewers reload now and then: still remembered
                for ident, shard in seats.items():
                    assert await router.route(room, ident) == shard, (i, ident)
        assert len(router.placements) <= s.shard_placements_max
        for ident, shard in seats.items():
            assert await router.route(room, ident) == shard, ident
        await router.delete(room)
        assert len(router.placements) == 0
    finally:
        await admin.close()


def test_placements_forget_the_least_recent_and_the_stale() -> None:
    p = Placements(max_entries=3, ttl=10.0)
    now = time.monotonic()
    for i in range(3):
        p.put(("r", f"v{i}"), "r--a1", now=now)
    assert p.get(("r", "v0"), now=now) == "r--a1"  # v0 used again: v1 is now the oldest
    p.put(("r", "v3"), "r--a2", now=now)
    assert p.get(("r", "v1"), now=now) is None
    assert p.get(("r", "v0"), now=now) == "r--a1"
    assert p.get(("r", "v3"), now=now + 11) is None  # stale
    assert len(p) <= 3
    p.drop_room("r")
    assert len(p) == 0
