"""The real broadcast bot for end-to-end tests: one subprocess per test module.

``python -m broadcaster.bot --room R`` runs exactly as the web app's launcher runs it
(settings through ``Settings.child_env()``), against the session's livekit-server, the
local avatar service (``avatar_service``) and a webinar created through the host API
(``web_client``), so the room metadata is the web app's and a host promotion moves the
bot's speaker gate. The machine is small: a module's tests share its bot and room, and
the bot stops with the module, so two bots (two avatar encoders, a recorder) never
compete for the two cores while a test measures frame rates.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio

from broadcaster.config import PROJECT_ROOT, Settings
from broadcaster.metrics import metrics_port_file
from broadcaster.netutil import free_port
from tests.helpers.people import Mic, Viewer, until

__all__ = ["bot_stage", "join_presenter", "join_viewer", "running_bot"]

LIVE = re.compile(r'broadcaster_avatar_session_state\{[^}]*state="live"[^}]*\} 1\.0')
READY_TIMEOUT = 90.0


@dataclass
class BotStage:
    """The stage room with the real bot in it."""

    room: str
    webinar: dict
    settings: Settings
    proc: subprocess.Popen
    log: Path

    def tail(self, n: int = 60) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return "(no bot log)"
        return "\n".join(lines[-n:])

    def grep(self, pattern: str) -> list[str]:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if re.search(pattern, line)]

    def alive(self) -> bool:
        return self.proc.poll() is None

    async def metrics(self) -> str:
        """The bot's Prometheus exposition ("" when it does not answer)."""
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http:
            return await bot_metrics(self.settings, self.room, http) or ""


async def bot_metrics(settings: Settings, room: str, http: aiohttp.ClientSession) -> str | None:
    try:
        port = int(metrics_port_file(settings.state_dir, room).read_text())
    except (OSError, ValueError):
        port = settings.bot_metrics_port
    try:
        async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
            return await resp.text() if resp.status == 200 else None
    except (aiohttp.ClientError, OSError, TimeoutError):
        return None


@contextlib.asynccontextmanager
async def running_bot(settings: Settings, webinar: dict) -> AsyncIterator[BotStage]:
    """``python -m broadcaster.bot`` for ``webinar``'s room, ready once its avatar is live
    (frames published; in direct mode: the avatar joined the stage room)."""
    room = webinar["room"]
    settings = settings.replace(bot_metrics_port=free_port())
    log = Path(settings.state_dir) / f"bot-{room}.log"
    env = {**os.environ, **settings.child_env(), "PYTHONUNBUFFERED": "1"}
    fh = open(log, "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "broadcaster.bot", "--room", room],
        cwd=PROJECT_ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT,
    )
    stage = BotStage(room, webinar, settings, proc, log)
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while True:
                if not stage.alive():
                    raise RuntimeError(f"the bot exited ({proc.returncode}):\n{stage.tail()}")
                text = await bot_metrics(settings, room, http)
                if text and LIVE.search(text):
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the bot showed no live avatar in "
                                       f"{READY_TIMEOUT:.0f} s:\n{stage.tail()}")
                await asyncio.sleep(0.25)
        yield stage
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, 15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        fh.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def bot_stage(web_client, avatar_service: str, avatar_settings: Settings
                    ) -> AsyncIterator[BotStage]:
    """A webinar (host API) whose bot is the real ``python -m broadcaster.bot`` process,
    ready once its republisher publishes real avatar frames."""
    webinar = await web_client.new_webinar("Live Avatars in Practice")
    async with running_bot(avatar_settings, webinar) as stage:
        yield stage


async def join_viewer(bot: BotStage, web: Any, identity: str) -> Viewer:
    """A viewer through the web app's join, once the avatar's video and audio arrive."""
    data = (await web.join(bot.room, identity, name=identity.title())).data
    viewer = await Viewer(identity, bot.settings.bot_identity).join(data["url"], data["token"])
    await until(lambda: len(viewer.frames) > 5 and viewer.audio, 15,
                f"{identity} to receive the avatar", bot)
    return viewer


async def join_presenter(bot: BotStage, web: Any, identity: str = "sam",
                         name: str = "Sam Rivera") -> Mic:
    """The presenter, through the web app's join with the webinar's presenter code: she
    has the floor, and her microphone is published."""
    code = bot.webinar["presenter_code"]
    joined = await web.join(bot.room, identity, "presenter", name=name, code=code)
    assert joined.status == 200 and joined.data["speaker"] == identity, joined.text
    return await Mic(identity).join(joined.data["url"], joined.data["token"])
