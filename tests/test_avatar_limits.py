"""Issue 11, finding 8: the avatar service keeps no stopped session's renderer or publisher,
caps sessions created but never started, and keeps a bounded list of stopped ones.

RSS over many rounds of session requests is measured by bench/avatar_sessions.py; here
a real session (its renderer drawing, its publisher in a real LiveKit room) is started
and stopped, and nothing may still hold the renderer afterwards.
"""

from __future__ import annotations

import gc
import weakref
from typing import Any

import aiohttp

from broadcaster.avatar.schema import parse_token_request
from broadcaster.avatar.sessions import SessionRegistry, SessionState
from broadcaster.config import Settings

GOOD = {"mode": "LITE", "avatar_id": "local-presenter",
        "video_settings": {"encoding": "VP8", "quality": "low"}}


async def test_finding8_a_stopped_session_releases_its_renderer_and_publisher(
    livekit: Settings,
) -> None:
    registry = SessionRegistry(livekit.replace(video_width=320, video_height=180))
    try:
        session = registry.create(parse_token_request(GOOD))
        await registry.start(session, "ws://unused")
        assert session.publisher is not None and session.publisher.connected
        renderer = weakref.ref(session.publisher.renderer)
        publisher = weakref.ref(session.publisher)
        session.runtime.speak(b"\0\0" * 24_000 * 5, "1")  # 5 s of queued speech
        assert await registry.stop(session, "test")
        gc.collect()
        assert publisher() is None, gc.get_referrers(publisher())[:3]
        assert renderer() is None
        assert session.runtime.speech.queued_seconds == 0
        # a second stop still answers (idempotent) from the small record left behind
        assert registry.get(session.id) is not None
        assert not await registry.stop(session, "again")
        assert registry.get(session.id).state is SessionState.STOPPED
    finally:
        await registry.aclose()


async def _post(http: aiohttp.ClientSession, url: str, **kw: Any) -> tuple[int, dict]:
    async with http.post(url, **kw) as resp:
        assert resp.content_type == "application/json"
        return resp.status, await resp.json()


async def test_finding8_sessions_created_and_stopped_are_capped(
    avatar_service: str, avatar_settings: Settings,
) -> None:
    base, key = avatar_service, {"X-API-KEY": avatar_settings.avatar_api_key}
    tokens: list[str] = []
    statuses: list[int] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
        try:
            for _ in range(40):  # a flapping bot asking again and again, never starting
                status, out = await _post(http, f"{base}/sessions/token", json=GOOD,
                                          headers=key)
                statuses.append(status)
                if status == 200:
                    tokens.append(out["data"]["session_token"])
                else:
                    assert status == 429 and out["message"], out
            assert 429 in statuses, "40 sessions created and never started, none refused"
            assert len(tokens) <= 16
        finally:
            for token in tokens:
                status, _ = await _post(http, f"{base}/sessions/stop",
                                        headers={"Authorization": f"Bearer {token}"})
                assert status == 200
        # once stopped, new ones may be created again
        status, out = await _post(http, f"{base}/sessions/token", json=GOOD, headers=key)
        assert status == 200, out
        await _post(http, f"{base}/sessions/stop",
                    headers={"Authorization": f"Bearer {out['data']['session_token']}"})
        # stopped sessions are remembered in bounded number
        for _ in range(3):
            for _ in range(40):
                status, out = await _post(http, f"{base}/sessions/token", json=GOOD,
                                          headers=key)
                assert status == 200, out
                await _post(http, f"{base}/sessions/stop",
                            headers={"Authorization": f"Bearer {out['data']['session_token']}"})
        async with http.get(f"{base}/sessions", headers=key) as resp:
            listed = (await resp.json())["data"]["sessions"]
        assert len(listed) <= 100, len(listed)
