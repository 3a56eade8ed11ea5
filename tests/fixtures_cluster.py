"""A real multi-node LiveKit cluster for the session: Redis and three livekit-server nodes
on loopback (broadcaster.livekit_cluster), started once, stopped at the end."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from broadcaster import livekit_cluster
from broadcaster.config import Settings
from broadcaster.netutil import free_port
from broadcaster.shards import shard_rooms
from tests.fixtures_bot import BotStage, running_bot
from tests.fixtures_web import WebClient, serving, unique_room
from tests.helpers.people import until

# only fixtures go into conftest's namespace; tests import sharded_stage from this module
__all__ = ["cluster"]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def cluster(settings: Settings, tmp_path_factory: pytest.TempPathFactory
                  ) -> AsyncIterator[livekit_cluster.Cluster]:
    try:
        livekit_cluster.find_redis()
    except livekit_cluster.MissingRedis as exc:
        pytest.skip(str(exc))
    workdir = tmp_path_factory.mktemp("cluster")
    async with livekit_cluster.running(settings, workdir, nodes=3) as running:
        yield running


@contextlib.asynccontextmanager
async def sharded_stage(cluster: livekit_cluster.Cluster, settings: Settings, title: str, *,
                        shards: int, capacity: int, rooms: Sequence[livekit_cluster.Node] = (),
                        prefix: str = "t", **changes: Any
                        ) -> AsyncIterator[tuple[WebClient, BotStage]]:
    """A webinar on the cluster with audience shards: the web app and the real bot on
    node 1's URL, once the bot publishes into every shard.

    ``rooms`` places the stage and then shards a1, a2, ... on those nodes first
    (``Cluster.place``); otherwise LiveKit's node selector places them.
    """
    n1 = cluster.nodes[0]
    s = settings.replace(
        livekit_url=n1.url, livekit_port=n1.settings.livekit_port, web_port=free_port(),
        audience_shards=shards, shard_capacity=capacity, floor_reconcile_seconds=0.0,
        floor_guard=False, audience_cache_seconds=0.5, **changes)
    room = unique_room(prefix)
    for name, node in zip([room, *shard_rooms(room, shards)], rooms, strict=False):
        await cluster.place(name, node)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http, \
            serving(s, http) as web:
        webinar = await web.new_webinar(title, room=room)
        async with running_bot(s, webinar) as bot:
            # the bot opens the shards 2.5 s apart (LiveKit places each on a node)
            await until(lambda: all(bot.grep(f"shard {name}: publishing")
                                    for name in shard_rooms(room, shards)), 40,
                        "the bot to publish into every shard", bot)
            yield web, bot
