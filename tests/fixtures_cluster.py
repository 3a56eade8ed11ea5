"""A real multi-node LiveKit cluster for the session: Redis and three livekit-server nodes
on loopback (broadcaster.livekit_cluster), started once, stopped at the end."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from broadcaster import livekit_cluster
from broadcaster.config import Settings

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
