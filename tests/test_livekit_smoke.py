"""The livekit-server fixture really runs and accepts our tokens."""

from livekit import api, rtc

from broadcaster.roles import Role, mint_token


async def test_server_lists_rooms_and_accepts_a_viewer(livekit):
    s = livekit
    async with api.LiveKitAPI(s.livekit_http_url, s.livekit_api_key, s.livekit_api_secret) as lk:
        await lk.room.create_room(api.CreateRoomRequest(name="smoke"))
        rooms = await lk.room.list_rooms(api.ListRoomsRequest(names=["smoke"]))
        assert [r.name for r in rooms.rooms] == ["smoke"]
        room = rtc.Room()
        await room.connect(s.effective_livekit_url, mint_token(s, Role.VIEWER, "smoke", "alice"))
        try:
            parts = await lk.room.list_participants(api.ListParticipantsRequest(room="smoke"))
            assert [p.identity for p in parts.participants] == ["alice"]
        finally:
            await room.disconnect()
