"""Fixtures for the web app tests: the app on a real livekit-server, an HTTP client that
checks every answer for leaked secrets, and small helpers for LiveKit clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np
import pytest
import pytest_asyncio
from aiohttp import web as aioweb
from livekit import api, rtc
from loguru import logger

from broadcaster.config import Settings
from broadcaster.netutil import wait_http_ok
from broadcaster.roles import Role, mint_token
from broadcaster.room_connect import connect_room
from broadcaster.web.app import create_app, make_runner
from broadcaster.web.bot_control import BotLauncher
from broadcaster.web.keys import STORE
from broadcaster.web.store import Store

# only fixtures go into conftest's namespace; tests import the helpers from this module
__all__ = ["web_server", "web", "web_app", "web_client", "lkapi", "loguru_lines"]

#: a stand-in for ``python -m broadcaster.bot``: records its argv and one setting, then idles
FAKE_BOT = """
import json, os, sys, time
out = os.path.join(os.environ["BROADCASTER_STATE_DIR"], "fake-bot-" + sys.argv[-1] + ".json")
with open(out, "w") as fh:
    json.dump({"argv": sys.argv[1:], "web_port": os.environ.get("BROADCASTER_WEB_PORT")}, fh)
while True:
    time.sleep(0.2)
"""


def fake_bot_command(room: str) -> list[str]:
    return [sys.executable, "-c", FAKE_BOT, "--room", room]


def unique_room(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class WebServer:
    url: str
    app: aioweb.Application
    settings: Settings


@dataclass
class Reply:
    status: int
    data: Any
    text: str
    headers: Any


@dataclass
class WebClient:
    """aiohttp client for the app that keeps (and checks) every answer it got."""

    base: str
    http: aiohttp.ClientSession
    settings: Settings
    seen: list[str] = field(default_factory=list)
    app: aioweb.Application | None = None

    def store(self) -> Store:
        """The database of the app this client talks to (an in-process app only)."""
        assert self.app is not None, "not an in-process app"
        return self.app[STORE]

    def check(self, text: str) -> None:
        for secret in (self.settings.livekit_api_secret, self.settings.host_key):
            assert secret not in text, "a response leaked a secret"

    async def call(
        self,
        method: str,
        path: str,
        body: Any = ...,
        *,
        data: bytes | str | None = None,
        host: bool = False,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        hdrs = dict(headers or {})
        if host:
            hdrs["Authorization"] = f"Bearer {self.settings.host_key}"
        elif token:
            hdrs["Authorization"] = f"Bearer {token}"
        kwargs: dict[str, Any] = {"headers": hdrs}
        if body is not ...:
            kwargs["json"] = body
        elif data is not None:
            kwargs["data"] = data
            hdrs.setdefault("Content-Type", "application/json")
        async with self.http.request(method, self.base + path, **kwargs) as resp:
            raw = await resp.read()
            text = raw.decode("utf-8", "replace")
            self.check(text + json.dumps(dict(resp.headers)))
            self.seen.append(text)
            try:
                parsed = json.loads(text) if resp.content_type == "application/json" else None
            except json.JSONDecodeError:
                parsed = None
            return Reply(resp.status, parsed, text, resp.headers)

    async def host(self, method: str, path: str, body: Any = ..., **kw: Any) -> Reply:
        return await self.call(method, path, body, host=True, **kw)

    async def new_webinar(self, title: str = "Test webinar", room: str | None = None) -> dict:
        reply = await self.host("POST", "/api/host/webinars",
                                {"title": title, "room": room or unique_room()})
        assert reply.status == 201, reply.text
        return reply.data

    async def join(self, room: str, identity: str, role: str = "viewer", *,
                   headers: dict[str, str] | None = None, **extra: Any) -> Reply:
        return await self.call("POST", f"/api/webinars/{room}/join",
                               {"identity": identity, "role": role, **extra}, headers=headers)


@contextlib.asynccontextmanager
async def serving(settings: Settings, http: aiohttp.ClientSession | None = None,
                  ) -> AsyncIterator[WebClient]:
    """A web app of its own for ``settings`` (on ``settings.web_port``), with a client.

    For tests that need settings the session's app does not have (limits, the
    reconciliation); it talks to whatever LiveKit server ``settings`` name.
    """
    bots = BotLauncher(settings, command=fake_bot_command, stop_timeout=2.0)
    app = create_app(settings, bots=bots)
    runner = make_runner(app, settings)
    await runner.setup()
    await aioweb.TCPSite(runner, "127.0.0.1", settings.web_port).start()
    url = f"http://127.0.0.1:{settings.web_port}"
    try:
        await wait_http_ok(url + "/healthz", timeout=10)
        if http is not None:
            yield WebClient(url, http, settings, app=app)
        else:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as own:
                yield WebClient(url, own, settings, app=app)
    finally:
        await runner.cleanup()


@pytest.fixture(scope="session")
def loguru_lines() -> list[str]:
    """Every loguru line of the session (the app logs through loguru)."""
    lines: list[str] = []
    logger.add(lambda msg: lines.append(str(msg)), level="DEBUG",
               format="{time} {level} {name}: {message}")
    return lines


def session_app_settings(livekit: Settings) -> Settings:
    """The session app's settings: every test joins and asks from 127.0.0.1, so the
    per-address limits are out of the way (tests/test_security_limits.py and
    tests/test_security_host_key.py run apps with the defaults), and there is no
    reconciliation, so a test can have a non-speaker publish on purpose (the bot's own
    gate must hold; tests/test_reconcile.py runs apps with it)."""
    return livekit.replace(join_burst=100_000, question_burst=100_000,
                           audience_action_burst=100_000, host_key_failure_burst=100_000,
                           floor_reconcile_seconds=0.0)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def web_server(livekit: Settings, loguru_lines: list[str]) -> AsyncIterator[WebServer]:
    """The app on settings.web_port, talking to the session's livekit-server."""
    settings = session_app_settings(livekit)
    bots = BotLauncher(settings, command=fake_bot_command, stop_timeout=2.0)
    app = create_app(settings, bots=bots)
    runner = make_runner(app, settings)
    await runner.setup()
    site = aioweb.TCPSite(runner, "127.0.0.1", settings.web_port)
    await site.start()
    url = f"http://127.0.0.1:{settings.web_port}"
    await wait_http_ok(url + "/healthz", timeout=10)
    try:
        yield WebServer(url, app, settings)
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def web(web_server: WebServer) -> AsyncIterator[str]:
    """Base URL of the running web app."""
    yield web_server.url


@pytest.fixture(scope="session")
def web_app(web_server: WebServer) -> aioweb.Application:
    return web_server.app


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def web_client(web_server: WebServer) -> AsyncIterator[WebClient]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
        yield WebClient(web_server.url, http, web_server.settings, app=web_server.app)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def lkapi(livekit: Settings) -> AsyncIterator[api.LiveKitAPI]:
    """LiveKit's server API, to check what the server itself says."""
    lk = api.LiveKitAPI(livekit.livekit_http_url, livekit.livekit_api_key,
                        livekit.livekit_api_secret)
    try:
        yield lk
    finally:
        await lk.aclose()


async def connect(url: str, token: str) -> rtc.Room:
    room = rtc.Room()
    await connect_room(room, url, token, seconds=15)
    return room


async def try_publish_mic(room: rtc.Room, timeout: float = 3.0) -> rtc.LocalTrackPublication | None:
    """Publish a silent microphone track; None when the server does not let it through.

    The Python SDK's publish_track never raises when the server refuses: it hangs.
    """
    source = rtc.AudioSource(48000, 1)
    track = rtc.LocalAudioTrack.create_audio_track("mic", source)
    opts = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    try:
        return await asyncio.wait_for(room.local_participant.publish_track(track, opts), timeout)
    except Exception:  # a timeout or an error: either way the server refused
        return None


async def wait_until(
    check: Callable[[], Awaitable[bool]], timeout: float = 8.0, interval: float = 0.1
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(interval)
    return await check()


class FakeBot:
    """A stand-in avatar bot: publishes a drawn 'avatar' video, silence, and captions."""

    def __init__(self, settings: Settings, room: str, size: tuple[int, int] = (640, 360)) -> None:
        self.settings, self.room_name = settings, room
        self.w, self.h = size
        self.room = rtc.Room()
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> FakeBot:
        token = mint_token(self.settings, Role.BOT, self.room_name, self.settings.bot_identity,
                           name="Avatar")
        await connect_room(self.room, self.settings.effective_livekit_url, token,
                           seconds=15)
        video = rtc.VideoSource(self.w, self.h)
        vtrack = rtc.LocalVideoTrack.create_video_track("avatar-video", video)
        await self.room.local_participant.publish_track(vtrack, rtc.TrackPublishOptions(
            source=rtc.TrackSource.SOURCE_CAMERA, simulcast=False))
        audio = rtc.AudioSource(48000, 1)
        atrack = rtc.LocalAudioTrack.create_audio_track("avatar-audio", audio)
        await self.room.local_participant.publish_track(atrack, rtc.TrackPublishOptions(
            source=rtc.TrackSource.SOURCE_MICROPHONE))
        self._tasks = [asyncio.create_task(self._video(video)),
                       asyncio.create_task(self._audio(audio))]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.room.disconnect()

    def _frame(self) -> np.ndarray:
        """A friendly stylised presenter on a studio gradient (RGBA)."""
        h, w = self.h, self.w
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        t = y / h
        img = np.zeros((h, w, 4), np.float32)
        img[..., 0] = 22 + 40 * t + 30 * (x / w)
        img[..., 1] = 18 + 20 * t
        img[..., 2] = 48 + 70 * (1 - t)
        glow = np.exp(-(((x - w / 2) / (w * 0.35)) ** 2 + ((y - h * 0.45) / (h * 0.5)) ** 2))
        img[..., :3] += glow[..., None] * np.array([60, 40, 110], np.float32)
        cx, cy, r = w / 2, h * 0.40, h * 0.16
        head = ((x - cx) ** 2 + (y - cy) ** 2) < r**2
        body = (((x - cx) / (w * 0.22)) ** 2 + ((y - h * 1.02) / (h * 0.42)) ** 2) < 1
        img[body, :3] = np.array([124, 92, 246], np.float32) * (0.75 + 0.25 * t[body, None])
        img[head, :3] = np.array([236, 196, 170], np.float32)
        for ex in (cx - r * 0.38, cx + r * 0.38):
            eye = ((x - ex) ** 2 + (y - (cy - r * 0.1)) ** 2) < (r * 0.09) ** 2
            img[eye, :3] = 40
        mouth = (np.abs(x - cx) < r * 0.35) & (np.abs(y - (cy + r * 0.42)) < r * 0.06)
        img[mouth, :3] = np.array([150, 60, 70], np.float32)
        img[..., 3] = 255
        return np.clip(img, 0, 255).astype(np.uint8)

    async def _video(self, source: rtc.VideoSource) -> None:
        frame = self._frame()
        data = frame.tobytes()
        while True:
            source.capture_frame(rtc.VideoFrame(self.w, self.h, rtc.VideoBufferType.RGBA, data))
            await asyncio.sleep(1 / 12)

    async def _audio(self, source: rtc.AudioSource) -> None:
        silence = rtc.AudioFrame(b"\0\0" * 960, 48000, 1, 960)
        while True:
            await source.capture_frame(silence)

    async def caption(self, text: str, *, final: bool = True, speaker: str = "avatar") -> None:
        from broadcaster.protocol import (
            CAPTION_FINAL_ATTR,
            CAPTION_SPEAKER_ATTR,
            CAPTION_TOPIC,
        )

        await self.room.local_participant.send_text(
            text, topic=CAPTION_TOPIC,
            attributes={CAPTION_FINAL_ATTR: "true" if final else "false",
                        CAPTION_SPEAKER_ATTR: speaker},
        )


async def server_view(lkapi: api.LiveKitAPI, room: str, identity: str) -> api.ParticipantInfo:
    return await lkapi.room.get_participant(api.RoomParticipantIdentity(room=room,
                                                                        identity=identity))


async def tracks_of(lkapi: api.LiveKitAPI, room: str, identity: str) -> list[api.TrackInfo]:
    return list((await server_view(lkapi, room, identity)).tracks)


async def room_metadata(lkapi: api.LiveKitAPI, room: str) -> dict:
    rooms = await lkapi.room.list_rooms(api.ListRoomsRequest(names=[room]))
    return json.loads(rooms.rooms[0].metadata)


async def joined(c: WebClient, room: str, identity: str, role: str = "viewer", **kw) -> dict:
    reply = await c.join(room, identity, role, **kw)
    assert reply.status == 200, reply.text
    return reply.data
