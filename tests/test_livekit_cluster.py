"""A real three-node LiveKit cluster with Redis (broadcaster.livekit_cluster): rooms are
known to every node, media crosses nodes, and a killed node is noticed by LiveKit.

Nothing is mocked: three livekit-server processes share one redis-server; clients are
the ``livekit`` Python SDK. The node-loss test runs last and restarts the node after.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from livekit import api

from broadcaster.livekit_cluster import Cluster
from broadcaster.roles import Role, mint_token
from tests.helpers.media import FrameCounter, FramePublisher


def _room() -> str:
    return f"cl-{uuid.uuid4().hex[:8]}"


def _api(cluster: Cluster, index: int) -> api.LiveKitAPI:
    node = cluster.nodes[index - 1]
    s = node.settings
    return api.LiveKitAPI(node.http_url, s.livekit_api_key, s.livekit_api_secret)


async def test_three_nodes_share_one_redis(cluster: Cluster) -> None:
    ids = [n.node_id for n in cluster.nodes]
    assert len(set(ids)) == 3 and all(i.startswith("ND_") for i in ids)
    ports = [n.settings.livekit_port for n in cluster.nodes]
    assert len(set(ports)) == 3
    assert set(ids) <= set((await cluster.redis_cmd("HKEYS", "nodes")).split())


async def test_room_created_on_node1_is_listed_by_node2(cluster: Cluster) -> None:
    name = _room()
    n1 = cluster.nodes[0]
    async with _api(cluster, 1) as lk1, _api(cluster, 2) as lk2:
        await lk1.room.create_room(api.CreateRoomRequest(name=name, node_id=n1.node_id,
                                                         metadata="made-on-1"))
        listed = await lk2.room.list_rooms(api.ListRoomsRequest(names=[name]))
    assert [(r.name, r.metadata) for r in listed.rooms] == [(name, "made-on-1")]
    assert await cluster.room_node(name) is n1


async def test_subscriber_on_node3_receives_frames_of_a_room_on_node1(
        cluster: Cluster) -> None:
    name = _room()
    n1, n3 = cluster.nodes[0], cluster.nodes[2]
    s = n1.settings
    async with _api(cluster, 1) as lk1:
        await lk1.room.create_room(api.CreateRoomRequest(name=name, node_id=n1.node_id))
    pub = await FramePublisher(320, 180, 15).start(
        n1.url, mint_token(s, Role.BOT, name, "pub"))
    sub = await FrameCounter("pub").join(n3.url, mint_token(s, Role.VIEWER, name, "viewer"))
    try:
        assert await sub.wait_frames(20, timeout=10), \
            f"viewer via node 3 got {sub.distinct_since(0)} frames"
        assert {(w, h) for _, _, w, h in sub.frames} == {(320, 180)}
        assert await cluster.room_node(name) is n1  # the room stayed on node 1
    finally:
        await sub.leave()
        await pub.stop()


async def test_killed_node_is_detected_and_its_room_moves(cluster: Cluster) -> None:
    """SIGKILL the node hosting a room: LiveKit marks it unavailable (its stats in Redis go
    stale) and the next join through another node re-homes the room on a live node,
    where media flows again."""
    name = _room()
    n1, n2, n3 = cluster.nodes
    s = n1.settings
    async with _api(cluster, 1) as lk1:
        await lk1.room.create_room(api.CreateRoomRequest(name=name, node_id=n1.node_id))
    pub = await FramePublisher(320, 180, 15).start(n1.url, mint_token(s, Role.BOT, name, "p1"))
    sub = await FrameCounter("p1").join(n3.url, mint_token(s, Role.VIEWER, name, "v1"))
    try:
        assert await sub.wait_frames(10, timeout=10)
        killed = time.monotonic()
        n1.kill()
        assert not n1.alive
        assert await sub.wait_frames(1, timeout=3, since=time.monotonic() + 0.5) is False, \
            "frames still arrive from a killed node"
        # a new publisher and viewer join through nodes 2 and 3 until LiveKit serves the
        # room again (joins fail while the dead node still counts as available, <= 5 s)
        pub2 = sub2 = None
        back = None
        deadline = killed + 20
        while time.monotonic() < deadline and back is None:
            try:
                pub2 = await FramePublisher(320, 180, 15).start(
                    n2.url, mint_token(s, Role.BOT, name, "p2"), timeout=4)
                sub2 = await FrameCounter("p2").join(
                    n3.url, mint_token(s, Role.VIEWER, name, "v2"), timeout=4)
                if await sub2.wait_frames(5, timeout=4):
                    back = time.monotonic() - killed
            except Exception:  # the SDK raises its own errors as well as TimeoutError
                pass
            if back is None:
                for c in (sub2, pub2):
                    if c is not None:
                        await (c.leave() if isinstance(c, FrameCounter) else c.stop())
                pub2 = sub2 = None
                await asyncio.sleep(0.5)
        assert back is not None, "the room never came back on a live node"
        assert back < 15, f"media flowed again {back:.1f} s after the kill"
        host = await cluster.room_node(name)
        assert host in (n2, n3), f"room still mapped to {host}"
        print(f"node loss: media again {back:.1f} s after SIGKILL, room on node {host.index}")
        if sub2 is not None:
            await sub2.leave()
        if pub2 is not None:
            await pub2.stop()
    finally:
        await sub.leave()
        await pub.stop()
        await cluster.restart(n1)
