"""Fixtures for the local avatar service tests.

The service runs once per test session as a real child process
(``python -m broadcaster.avatar``), configured through the environment exactly as
the supervisor does it, against the session's real livekit-server. Its reaper
grace periods are shortened so the reaping tests take seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio

from broadcaster.config import PROJECT_ROOT, Settings
from broadcaster.netutil import wait_http_ok
from probes.speech import flite, have_flite

__all__ = ["avatar_settings", "avatar_service", "avatar_log", "speech_clip", "SPEECH_RATE"]

SPEECH_RATE = 24_000
SPEECH_TEXT = "Welcome to the webinar. Today we look at how the avatar speaks, and how it listens."


@pytest.fixture(scope="session")
def avatar_settings(livekit: Settings) -> Settings:
    """The session's settings with the avatar reaper's grace periods shortened."""
    return livekit.replace(
        avatar_ws_grace_seconds=2.0,
        avatar_empty_room_grace_seconds=4.0,
        avatar_max_sessions=6,
    )


@pytest.fixture(scope="session")
def avatar_log(avatar_settings: Settings) -> Path:
    return Path(avatar_settings.state_dir) / "avatar-service.log"


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def avatar_service(avatar_settings: Settings, avatar_log: Path) -> AsyncIterator[str]:
    """The local LiveAvatar-compatible service; yields its API base URL (``.../v1``)."""
    s = avatar_settings
    env = {**os.environ, **s.child_env(), "PYTHONUNBUFFERED": "1"}
    log = open(avatar_log, "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "broadcaster.avatar"],
        cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        await wait_http_ok(
            f"http://{s.avatar_host}:{s.avatar_port}/healthz",
            timeout=30,
            proc_alive=lambda: proc.poll() is None,
        )
        yield s.effective_liveavatar_api_url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="session")
def speech_clip(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """About 5 s of synthesized speech (Debian flite, voice slt), int16 mono 24 kHz."""
    if not have_flite():
        pytest.skip("Debian's flite is not installed (apt-get install flite)")
    return flite(SPEECH_TEXT, SPEECH_RATE, voice="slt")
