"""Session-wide servers for the tests: a real livekit-server on free loopback ports.

Servers start once per test session so the suite stays quick. Nothing here
mocks LiveKit; HeyGen itself is the only thing replaced (by our own local
LiveAvatar-compatible service, see broadcaster/avatar).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from broadcaster import livekit_server
from broadcaster.config import Settings
from broadcaster.netutil import free_port

# Fixtures of each part live beside its tests; importing them here shares them.
from tests.fixtures_avatar import *  # noqa: E402,F403
from tests.fixtures_bot import *  # noqa: E402,F403
from tests.fixtures_cluster import *  # noqa: E402,F403
from tests.fixtures_deploy import *  # noqa: E402,F403
from tests.fixtures_web import *  # noqa: E402,F403

# Keep glibc malloc from page-faulting on every video frame (see DESIGN.md).
os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", "8388608")
os.environ.setdefault("MALLOC_TRIM_THRESHOLD_", "67108864")


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings for this test session: fresh state dir, free ports, generated secrets."""
    state = tmp_path_factory.mktemp("state")
    return Settings.load(
        env={},
        state_dir=str(state),
        recordings_dir=str(state / "recordings"),
        livekit_port=free_port(),
        livekit_rtc_tcp_port=free_port(),
        livekit_rtc_udp_port=free_port(),
        web_port=free_port(),
        avatar_port=free_port(),
        demo_room="demo",
        # no webhooks here, so tests can have a non-speaker publish anyway (the bot's own
        # gate must hold); tests/test_floor_guard.py runs a server with them
        floor_guard=False,
    )


@pytest.fixture(scope="session")
def livekit_log(settings: Settings) -> Path:
    return Path(settings.state_dir) / "livekit-server.log"


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def livekit(settings: Settings, livekit_log: Path) -> AsyncIterator[Settings]:
    """A real livekit-server on loopback for the whole session."""
    # info level: the server logs every join and API call, so the secret scans read a lot
    async with livekit_server.running(settings, livekit_log, log_level="info") as ready:
        yield ready
