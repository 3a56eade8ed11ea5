"""The local avatar service's HTTP API and control socket, against bad and good input.

Everything talks to the real service process (``avatar_service``) over HTTP and
WebSocket, with a real livekit-server behind it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import numpy as np
import pytest
import pytest_asyncio
from livekit import api
from pipecat.services.heygen.api_liveavatar import (
    LiveAvatarNewSessionRequest,
    LiveAvatarSessionResponse,
    SessionTokenResponse,
)

from broadcaster.config import Settings

GOOD_BODY: dict[str, Any] = {
    "mode": "LITE",
    "avatar_id": "local-presenter",
    "is_sandbox": False,
    "video_settings": {"encoding": "VP8", "quality": "high"},
}


@pytest_asyncio.fixture(loop_scope="session")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session


def _key(settings: Settings) -> dict[str, str]:
    return {"X-API-KEY": settings.avatar_api_key}


async def _post(
    http: aiohttp.ClientSession, url: str, *, headers: dict[str, str] | None = None,
    body: Any = None, raw: bytes | None = None,
) -> tuple[int, dict[str, Any]]:
    kwargs: dict[str, Any] = {"headers": headers or {}}
    if raw is not None:
        kwargs["data"] = raw
    elif body is not None:
        kwargs["json"] = body
    async with http.post(url, **kwargs) as resp:
        assert resp.content_type == "application/json", await resp.text()
        return resp.status, await resp.json()


async def _token(http: aiohttp.ClientSession, base: str, settings: Settings,
                 body: dict[str, Any] | None = None) -> tuple[str, str]:
    status, out = await _post(http, f"{base}/sessions/token", headers=_key(settings),
                              body=body or GOOD_BODY)
    assert status == 200, out
    data = SessionTokenResponse.model_validate(out).data
    return data.session_id, data.session_token


async def _start(http: aiohttp.ClientSession, base: str, token: str) -> dict[str, Any]:
    # Exactly what pipecat sends: no body at all (Content-Length 0, octet-stream).
    async with http.post(f"{base}/sessions/start",
                         headers={"authorization": f"Bearer {token}"}) as resp:
        out = await resp.json()
        assert resp.status == 200, out
    return LiveAvatarSessionResponse.model_validate(out).data.model_dump()


async def _sessions(http: aiohttp.ClientSession, base: str,
                    settings: Settings) -> dict[str, dict[str, Any]]:
    async with http.get(f"{base}/sessions", headers=_key(settings)) as resp:
        assert resp.status == 200
        text = await resp.text()
    return {s["session_id"]: s for s in json.loads(text)["data"]["sessions"]}


# ------------------------------------------------------------------------------- HTTP
async def test_token_needs_the_api_key(http, avatar_service, avatar_settings) -> None:
    url = f"{avatar_service}/sessions/token"
    for headers in ({}, {"X-API-KEY": "wrong"}, {"X-API-KEY": ""}):
        status, out = await _post(http, url, headers=headers, body=GOOD_BODY)
        assert status == 401 and "X-API-KEY" in out["message"], out


async def test_token_unknown_avatar_is_404(http, avatar_service, avatar_settings) -> None:
    body = {**GOOD_BODY, "avatar_id": "dd73ea75-1218-4ef3-92ce-606d5f7fbc0a"}
    status, out = await _post(http, f"{avatar_service}/sessions/token",
                              headers=_key(avatar_settings), body=body)
    assert status == 404 and "local-presenter" in out["message"], out


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"", "body"),
        (b"{not json", "JSON"),
        (b"[1, 2]", "object"),
        (b'{"mode": "LITE"}', "avatar_id"),
        (json.dumps({**GOOD_BODY, "mode": "FULL"}).encode(), "mode"),
        (json.dumps({**GOOD_BODY, "is_sandbox": "yes"}).encode(), "is_sandbox"),
        (json.dumps({**GOOD_BODY, "video_settings": {"encoding": "AV1"}}).encode(), "encoding"),
        (json.dumps({**GOOD_BODY, "video_settings": {"quality": "ultra"}}).encode(), "quality"),
        (json.dumps({**GOOD_BODY, "video_settings": "VP8"}).encode(), "video_settings"),
        (json.dumps({**GOOD_BODY, "max_session_duration": -5}).encode(), "max_session_duration"),
        (json.dumps({**GOOD_BODY, "max_session_duration": "60"}).encode(),
         "max_session_duration"),
        (json.dumps({**GOOD_BODY, "livekit_config": {"livekit_url": "ws://x"}}).encode(),
         "livekit_config.livekit_room"),
    ],
)
async def test_token_malformed_body_is_422(http, avatar_service, avatar_settings, raw,
                                           field) -> None:
    status, out = await _post(
        http, f"{avatar_service}/sessions/token",
        headers={**_key(avatar_settings), "content-type": "application/json"}, raw=raw,
    )
    assert status == 422 and field in out["message"], out


async def test_pipecat_request_body_is_accepted(http, avatar_service, avatar_settings) -> None:
    """The body pipecat's own client builds, with every optional part filled in."""
    from pipecat.services.heygen.api_liveavatar import LiveAvatarApi

    captured: dict[str, Any] = {}

    class Capture(LiveAvatarApi):
        async def _request(self, method, path, params=None, bearer_token=None):
            captured.update(params or {})
            return {"code": 100, "message": "ok",
                    "data": {"session_id": "x", "session_token": "y"}}

    request = LiveAvatarNewSessionRequest(
        avatar_id="local-presenter-portrait", is_sandbox=True, max_session_duration=120,
        avatar_persona={"voice_id": "v", "language": "en"},
    )
    await Capture("k", http).create_session_token(request)
    session_id, token = await _token(http, avatar_service, avatar_settings, captured)
    info = (await _sessions(http, avatar_service, avatar_settings))[session_id]
    assert info["state"] == "created" and info["max_session_duration"] == 120
    assert (info["video"]["width"], info["video"]["height"]) == (720, 1280)
    assert info["video"]["codec"] == "H264"  # pipecat's default encoding


async def test_start_and_stop(http, avatar_service, avatar_settings) -> None:
    base, s = avatar_service, avatar_settings
    for headers in ({}, {"authorization": "Bearer nope"}, {"authorization": "Basic abc"}):
        status, out = await _post(http, f"{base}/sessions/start", headers=headers)
        assert status == 401, out

    session_id, token = await _token(http, base, s, {**GOOD_BODY, "max_session_duration": 300})
    data = await _start(http, base, token)
    assert data["session_id"] == session_id
    assert data["livekit_url"] == s.effective_livekit_url
    assert data["max_session_duration"] == 300
    assert data["ws_url"].startswith("ws://")
    # The client token lets pipecat's client into the avatar's room and nothing more.
    verifier = api.TokenVerifier(s.livekit_api_key, s.livekit_api_secret)
    client = verifier.verify(data["livekit_client_token"])
    agent = verifier.verify(data["livekit_agent_token"])
    assert client.video.room == agent.video.room == f"liveavatar-{session_id}"
    assert client.video.can_subscribe and client.identity != "heygen"
    assert agent.identity not in ("heygen", client.identity)
    # Starting again returns the same session (idempotent), no second avatar.
    assert await _start(http, base, token) == data

    listing = await _sessions(http, base, s)
    assert listing[session_id]["state"] == "started"
    assert token not in json.dumps(listing) and data["livekit_client_token"] not in json.dumps(
        listing
    )

    # stop: wrong session id with this token, then twice for real (idempotent).
    bearer = {"authorization": f"Bearer {token}"}
    status, out = await _post(http, f"{base}/sessions/stop", headers=bearer,
                              body={"session_id": "someone-else"})
    assert status == 403, out
    status, out = await _post(http, f"{base}/sessions/stop", headers=bearer,
                              body={"session_id": session_id})
    assert status == 200 and out["message"] == "session stopped", out
    status, out = await _post(http, f"{base}/sessions/stop", headers=bearer,
                              body={"session_id": session_id})
    assert status == 200 and out["message"] == "session already stopped", out
    status, out = await _post(http, f"{base}/sessions/stop", headers=_key(s),
                              body={"session_id": session_id})
    assert status == 200 and out["data"]["state"] == "stopped", out
    status, out = await _post(http, f"{base}/sessions/stop", headers=_key(s),
                              body={"session_id": "no-such-session"})
    assert status == 404, out
    status, out = await _post(http, f"{base}/sessions/stop", headers={},
                              body={"session_id": session_id})
    assert status == 401, out
    # A stopped session cannot start again.
    async with http.post(f"{base}/sessions/start", headers=bearer) as resp:
        assert resp.status == 409 and "closed" in (await resp.json())["message"]
    # Its room is gone.
    async with api.LiveKitAPI(s.livekit_http_url, s.livekit_api_key,
                              s.livekit_api_secret) as lk:
        rooms = await lk.room.list_rooms(api.ListRoomsRequest(names=[f"liveavatar-{session_id}"]))
        assert not rooms.rooms


async def test_unknown_route_and_method_answer_json(http, avatar_service) -> None:
    async with http.get(f"{avatar_service}/nope") as resp:
        assert resp.status == 404 and resp.content_type == "application/json"
    async with http.get(f"{avatar_service}/sessions/token") as resp:
        assert resp.status == 405 and resp.content_type == "application/json"


# -------------------------------------------------------------------------- WebSocket
def _tone(seconds: float, rate: int = 24_000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * 220 * t) * 8000).astype("<i2").tobytes()


async def _next_event(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0) -> dict:
    msg = await ws.receive(timeout=timeout)
    assert msg.type is aiohttp.WSMsgType.TEXT, msg  # never binary, never a close
    event = json.loads(msg.data)
    assert isinstance(event, dict) and isinstance(event.get("type"), str)
    return event


async def _events_until(ws, predicate, timeout: float = 5.0) -> list[dict]:
    seen: list[dict] = []
    deadline = time.monotonic() + timeout
    while True:
        event = await _next_event(ws, max(0.05, deadline - time.monotonic()))
        seen.append(event)
        if predicate(event):
            return seen


async def test_ws_rejects_bad_token(http, avatar_service, avatar_settings) -> None:
    session_id, token = await _token(http, avatar_service, avatar_settings)
    data = await _start(http, avatar_service, token)
    bad = data["ws_url"].split("?")[0] + "?token=wrong"
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        await http.ws_connect(bad)
    assert err.value.status == 401
    await _post(http, f"{avatar_service}/sessions/stop",
                headers={"authorization": f"Bearer {token}"}, body={"session_id": session_id})


async def test_ws_bad_messages_get_errors_and_session_keeps_going(
    http, avatar_service, avatar_settings
) -> None:
    session_id, token = await _token(http, avatar_service, avatar_settings)
    data = await _start(http, avatar_service, token)
    async with http.ws_connect(data["ws_url"]) as ws:
        first = await _next_event(ws)
        assert first == {"type": "session.state_updated", "state": "connected"}
        await _events_until(ws, lambda e: e["type"] == "agent.state_updated")

        bad: list[tuple[str | bytes, str]] = [
            ("this is not json", "invalid_json"),
            ("[1, 2, 3]", "invalid_message"),
            ('{"event_id": "1"}', "invalid_message"),
            ('{"type": "agent.dance", "event_id": "2"}', "unknown_type"),
            ('{"type": "agent.speak", "event_id": "3"}', "invalid_audio"),
            ('{"type": "agent.speak", "audio": "@@not base64@@", "event_id": "4"}',
             "invalid_audio"),
            (json.dumps({"type": "agent.speak", "event_id": "5",
                         "audio": base64.b64encode(b"\x01\x02\x03").decode()}), "invalid_audio"),
            ('{"type": "agent.speak_end", "event_id": {"x": 1}}', "invalid_event_id"),
            (b"\x00\x01binary", "binary_not_supported"),
        ]
        for message, code in bad:
            if isinstance(message, bytes):
                await ws.send_bytes(message)
            else:
                await ws.send_str(message)
            event = await _next_event(ws)
            assert event["type"] == "error" and event["code"] == code, (message, event)
            assert event["message"]

        # Accepted without a word: null event ids, keep-alive, listening.
        for message in (
            {"type": "agent.interrupt", "event_id": None},
            {"type": "session.keep_alive", "event_id": "k"},
            {"type": "agent.start_listening", "event_id": "l"},
        ):
            await ws.send_json(message)
        listening = await _next_event(ws)
        assert listening == {"type": "agent.state_updated", "previous_state": "idle",
                             "new_state": "listening"}
        await ws.send_json({"type": "agent.stop_listening", "event_id": "m"})
        assert (await _next_event(ws))["new_state"] == "idle"

        # ...and a valid utterance still plays start to end.
        pcm = _tone(0.6)
        t0 = time.monotonic()
        await ws.send_json({"type": "agent.speak", "event_id": "42",
                            "audio": base64.b64encode(pcm[:19200]).decode()})
        await ws.send_json({"type": "agent.speak", "event_id": "42",
                            "audio": base64.b64encode(pcm[19200:]).decode()})
        await ws.send_json({"type": "agent.speak_end", "event_id": "42"})
        events = await _events_until(ws, lambda e: e["type"] == "agent.speak_ended")
        played = time.monotonic() - t0
        kinds = [e["type"] for e in events]
        assert "agent.speak_started" in kinds, events
        assert events[-1] == {"type": "agent.speak_ended", "event_id": "42", "task": {"id": "42"}}
        assert 0.5 <= played <= 1.5, played  # played at real time, not dumped
        assert (await _next_event(ws))["new_state"] == "idle"

        # An interrupt cuts a long utterance short and says so.
        await ws.send_json({"type": "agent.speak", "event_id": "43",
                            "audio": base64.b64encode(_tone(3.0)).decode()})
        await _events_until(ws, lambda e: e["type"] == "agent.speak_started")
        await ws.send_json({"type": "agent.interrupt", "event_id": "43"})
        events = await _events_until(ws, lambda e: e["type"] == "agent.speak_ended", 1.0)
        assert events[-1]["event_id"] == "43" and events[-1]["interrupted"] is True
        info = (await _sessions(http, avatar_service, avatar_settings))[session_id]
        assert info["state"] == "started" and info["speech_queued_seconds"] == 0

        status, _ = await _post(http, f"{avatar_service}/sessions/stop",
                                headers={"authorization": f"Bearer {token}"})
        assert status == 200
        closing = await _events_until(ws, lambda e: e["type"] == "session.state_updated")
        assert closing[-1]["state"] == "closed"
        assert (await ws.receive(timeout=5)).type in (aiohttp.WSMsgType.CLOSE,
                                                      aiohttp.WSMsgType.CLOSED)


# ------------------------------------------------------------------------------ reaper
async def test_a_session_whose_client_went_away_is_stopped_at_once(
    http, avatar_service, avatar_settings
) -> None:
    """A bot SIGKILLed mid-session: its control socket drops (pipecat never reopens one),
    so the session can never speak again. It used to render and encode on for the whole
    ``avatar_ws_grace_seconds`` (15 s by default, meant for a socket not yet opened),
    beside the new bot's session on a busy box, and counted against the session limit."""
    base, s = avatar_service, avatar_settings
    session, tok = await _token(http, base, s)
    data = await _start(http, base, tok)
    async with http.ws_connect(data["ws_url"]) as ws:
        await ws.receive(timeout=5)  # open: the service sent its first event
    closed = time.monotonic()
    while (await _sessions(http, base, s))[session]["state"] != "stopped":
        assert time.monotonic() - closed < 10, "never stopped"
        await asyncio.sleep(0.05)
    took = time.monotonic() - closed
    assert (await _sessions(http, base, s))[session]["reason"] == "control socket closed"
    assert took < s.avatar_ws_grace_seconds, f"stopped {took:.2f} s after its socket closed"


async def test_reaper_stops_expired_abandoned_and_lonely_sessions(
    http, avatar_service, avatar_settings
) -> None:
    """Expiry (tiny max_session_duration), control socket never opened, empty room."""
    base, s = avatar_service, avatar_settings
    expiring, tok_a = await _token(http, base, s, {**GOOD_BODY, "max_session_duration": 2})
    no_socket, tok_b = await _token(http, base, s)
    lonely, tok_c = await _token(http, base, s)
    before = time.monotonic()
    data_a = await _start(http, base, tok_a)
    started = time.monotonic()
    _, data_c = await asyncio.gather(_start(http, base, tok_b), _start(http, base, tok_c))
    async with http.ws_connect(data_a["ws_url"]) as ws_a, http.ws_connect(data_c["ws_url"]):
        closing = await _events_until(
            ws_a, lambda e: e["type"] == "session.state_updated" and e["state"] == "closed", 8
        )
        now = time.monotonic()
        assert closing[-1]["reason"] == "max_session_duration reached"
        # Started somewhere in [before, started]; reaped 2 s later (reaper tick 0.25 s).
        assert now - started >= 2.0 - 0.05 and now - before <= 2.0 + 1.5, (before, started, now)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            listing = await _sessions(http, base, s)
            if all(listing[i]["state"] == "stopped" for i in (no_socket, lonely)):
                break
            await asyncio.sleep(0.25)
    assert listing[expiring]["reason"] == "max_session_duration reached"
    assert listing[no_socket]["reason"] == "control socket closed"
    assert listing[lonely]["reason"] == "room empty"
    async with api.LiveKitAPI(s.livekit_http_url, s.livekit_api_key,
                              s.livekit_api_secret) as lk:
        names = [f"liveavatar-{i}" for i in (expiring, no_socket, lonely)]
        # The listing says "stopped" as teardown begins; the room goes a moment later.
        deadline = time.monotonic() + 10
        while (left := (await lk.room.list_rooms(api.ListRoomsRequest(names=names))).rooms):
            assert time.monotonic() < deadline, [r.name for r in left]
            await asyncio.sleep(0.25)
