"""Direct mode: with ``livekit_config`` the avatar joins the CALLER's room with the
caller's token, the way LiveAvatar joins a customer's LiveKit room. Checked from a
real LiveKit subscriber in that room, with H264 and the portrait avatar."""

from __future__ import annotations

import asyncio

import aiohttp
from livekit import api, rtc
from pipecat.services.heygen.api_liveavatar import LiveAvatarSessionResponse

from broadcaster.config import Settings
from broadcaster.protocol import AVATAR_IDENTITY
from broadcaster.roles import Role, mint_token

ROOM = "stage-direct"


async def test_direct_mode_publishes_into_the_callers_room(
    avatar_service: str, avatar_settings: Settings
) -> None:
    s = avatar_settings
    body = {
        "mode": "LITE",
        "avatar_id": "local-presenter-portrait",
        "video_settings": {"encoding": "H264", "quality": "medium"},
        "livekit_config": {
            "livekit_url": s.effective_livekit_url,
            "livekit_room": ROOM,
            "livekit_client_token": mint_token(s, Role.BOT, ROOM, AVATAR_IDENTITY),
        },
    }
    viewer = rtc.Room()
    frames: asyncio.Queue[rtc.VideoFrame] = asyncio.Queue()

    @viewer.on("track_subscribed")
    def _on_track(track, publication, participant) -> None:
        if participant.identity != AVATAR_IDENTITY:
            return
        if track.kind == rtc.TrackKind.KIND_VIDEO:
            async def pump() -> None:
                async for event in rtc.VideoStream(track):
                    frames.put_nowait(event.frame)
            asyncio.ensure_future(pump())

    left = asyncio.Event()

    @viewer.on("participant_disconnected")
    def _on_left(participant) -> None:
        if participant.identity == AVATAR_IDENTITY:
            left.set()

    await viewer.connect(s.effective_livekit_url, mint_token(s, Role.VIEWER, ROOM, "alice"))
    async with aiohttp.ClientSession() as http:
        try:
            async with http.post(f"{avatar_service}/sessions/token", json=body,
                                 headers={"X-API-KEY": s.avatar_api_key}) as resp:
                out = await resp.json()
                assert resp.status == 200, out
            token = out["data"]["session_token"]
            bearer = {"authorization": f"Bearer {token}"}
            async with http.post(f"{avatar_service}/sessions/start", headers=bearer) as resp:
                out = await resp.json()
                assert resp.status == 200, out
            data = LiveAvatarSessionResponse.model_validate(out).data
            assert data.livekit_url == s.effective_livekit_url
            assert data.livekit_agent_token == ""
            claims = api.TokenVerifier(s.livekit_api_key, s.livekit_api_secret).verify(
                data.livekit_client_token
            )
            assert claims.video.room == ROOM and not claims.video.can_publish

            frame = await asyncio.wait_for(frames.get(), 15)
            for _ in range(10):  # past any start-up frames
                frame = await asyncio.wait_for(frames.get(), 5)
            assert (frame.width, frame.height) == (720, 1280)
            avatar = viewer.remote_participants[AVATAR_IDENTITY]
            kinds = {p.kind: p for p in avatar.track_publications.values()}
            assert set(kinds) == {rtc.TrackKind.KIND_VIDEO, rtc.TrackKind.KIND_AUDIO}
            assert kinds[rtc.TrackKind.KIND_VIDEO].mime_type.lower() == "video/h264"
            assert kinds[rtc.TrackKind.KIND_VIDEO].simulcasted is False

            async with http.post(f"{avatar_service}/sessions/stop", headers=bearer,
                                 json={"session_id": data.session_id}) as resp:
                assert resp.status == 200
            await asyncio.wait_for(left.wait(), 10)
            # The caller's room is the caller's: the service does not delete it.
            async with api.LiveKitAPI(s.livekit_http_url, s.livekit_api_key,
                                      s.livekit_api_secret) as lk:
                rooms = await lk.room.list_rooms(api.ListRoomsRequest(names=[ROOM]))
                assert [r.name for r in rooms.rooms] == [ROOM]
        finally:
            await viewer.disconnect()
