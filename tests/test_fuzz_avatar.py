"""Property-based fuzzing of the avatar service (issue 11): every HTTP endpoint and every
control-socket message. Never a 5xx, always JSON, no session left behind by a refused
request, and the service (and a live session's socket) still answers afterwards. The
real service process (its log on disk) on the real livekit-server."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from livekit import rtc

from broadcaster.config import Settings
from tests.helpers.fuzz import JSON, NASTY_TEXT, bodies, encode, objects

FUZZ = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))
COMMANDS = ["agent.speak", "agent.speak_end", "agent.interrupt", "agent.start_listening",
            "agent.stop_listening", "session.keep_alive"]
TOKEN_FIELDS = ["mode", "avatar_id", "is_sandbox", "video_settings", "avatar_persona",
                "max_session_duration", "livekit_config"]


@dataclasses.dataclass
class Avatar:
    base: str
    key: dict[str, str]
    http: aiohttp.ClientSession
    log: Path
    log_mark: int
    ws: aiohttp.ClientWebSocketResponse | None = None
    session_id: str = ""
    session_token: str = ""
    ws_url: str = ""
    client: rtc.Room | None = None


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def avatar(avatar_service: str, avatar_settings: Settings,
                 avatar_log: Path) -> AsyncIterator[Avatar]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        a = Avatar(avatar_service, {"X-API-KEY": avatar_settings.avatar_api_key}, http,
                   avatar_log, len(avatar_log.read_bytes()))
        yield a
        if a.client is not None:
            await a.client.disconnect()
        if a.ws is not None:
            await a.ws.close()
        if a.session_token:
            await post(a, "/sessions/stop", None,
                       {"Authorization": f"Bearer {a.session_token}"})


async def post(a: Avatar, path: str, raw: bytes | None,
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    async with a.http.post(a.base + path, data=raw, headers=headers or {}) as resp:
        text = await resp.text(errors="replace")
        assert resp.status < 500, (path, raw[:200] if raw else raw, resp.status, text[:300])
        assert resp.content_type == "application/json", text[:200]
        return resp.status, json.loads(text)


async def session_ids(a: Avatar) -> set[str]:
    async with a.http.get(a.base + "/sessions", headers=a.key) as resp:
        return {s["session_id"] for s in (await resp.json())["data"]["sessions"]
                if s["state"] != "stopped"}


@FUZZ
@given(raw=st.one_of(bodies(TOKEN_FIELDS), objects(TOKEN_FIELDS).map(
    lambda o: encode({"mode": "LITE", "avatar_id": "local-presenter", **o}))))
async def test_token(avatar: Avatar, raw: bytes) -> None:
    before = await session_ids(avatar)
    status, out = await post(avatar, "/sessions/token", raw,
                             {**avatar.key, "Content-Type": "application/json"})
    if status == 200:  # a valid request: stop what it created
        token = out["data"]["session_token"]
        await post(avatar, "/sessions/stop", None, {"Authorization": f"Bearer {token}"})
    else:
        assert out["message"], out
        assert await session_ids(avatar) == before


@FUZZ
@given(raw=st.one_of(st.none(), bodies(["session_id", "reason"])),
       auth=st.sampled_from(["key", "bearer-junk", "none"]))
async def test_start_and_stop(avatar: Avatar, raw: bytes | None, auth: str) -> None:
    headers = {"key": avatar.key, "bearer-junk": {"Authorization": "Bearer junk"},
               "none": {}}[auth]
    before = await session_ids(avatar)
    await post(avatar, "/sessions/start", raw, headers)
    await post(avatar, "/sessions/stop", raw, headers)
    assert await session_ids(avatar) == before


MESSAGES = st.one_of(
    st.text(max_size=80),
    st.binary(max_size=80),
    JSON.map(lambda v: encode(v).decode()),
    st.fixed_dictionaries(
        {"type": st.one_of(st.sampled_from(COMMANDS), NASTY_TEXT)},
        optional={"event_id": JSON, "audio": st.one_of(
            JSON, st.binary(max_size=2000).map(lambda b: base64.b64encode(b).decode()),
            NASTY_TEXT)},
    ).map(lambda v: encode(v).decode()),
    st.integers(1, 40_000).map(lambda n: "[" * n + "]" * n),
)


async def _open(a: Avatar) -> aiohttp.ClientWebSocketResponse:
    if a.ws is None or a.ws.closed:
        if not a.session_token:
            status, out = await post(a, "/sessions/token",
                                     encode({"mode": "LITE", "avatar_id": "local-presenter",
                                             "video_settings": {"quality": "low"}}), a.key)
            assert status == 200, out
            a.session_id, a.session_token = out["data"]["session_id"], \
                out["data"]["session_token"]
            status, out = await post(a, "/sessions/start", None,
                                     {"Authorization": f"Bearer {a.session_token}"})
            assert status == 200, out
            a.ws_url = out["data"]["ws_url"]
            # pipecat's client joins the avatar's room; without it the reaper ends the
            # session as "room empty"
            a.client = rtc.Room()
            await a.client.connect(out["data"]["livekit_url"],
                                   out["data"]["livekit_client_token"],
                                   rtc.RoomOptions(auto_subscribe=False))
        a.ws = await a.http.ws_connect(a.ws_url, max_msg_size=0)
    return a.ws


async def _answers(ws: aiohttp.ClientWebSocketResponse) -> None:
    """The socket still answers: an unknown command gets its error event back."""
    await ws.send_str(json.dumps({"type": "fuzz.ping", "event_id": "ping"}))
    while True:
        msg = await asyncio.wait_for(ws.receive(), 5)
        assert msg.type is aiohttp.WSMsgType.TEXT, msg  # JSON text only, never closed
        event = json.loads(msg.data)
        assert isinstance(event, dict) and isinstance(event.get("type"), str), event
        if event.get("code") == "unknown_type" and event.get("event_id") == "ping":
            return


@FUZZ
@given(message=MESSAGES)
async def test_control_socket_messages(avatar: Avatar, message: str | bytes) -> None:
    ws = await _open(avatar)
    if isinstance(message, bytes):
        await ws.send_bytes(message)
    else:
        await ws.send_str(message)
    await _answers(ws)


async def test_after_all_that_the_service_answers_and_logged_no_traceback(
    avatar: Avatar,
) -> None:
    ws = await _open(avatar)
    await ws.send_str(json.dumps({"type": "agent.interrupt", "event_id": None}))
    await _answers(ws)
    listing = await session_ids(avatar)
    assert avatar.session_id in listing  # the fuzzed session is still up
    async with avatar.http.get(avatar.base.removesuffix("/v1") + "/healthz") as resp:
        assert resp.status == 200
    log = avatar.log.read_bytes()[avatar.log_mark:].decode(errors="replace")
    assert "Traceback" not in log and "| ERROR" not in log, log[-3000:]
