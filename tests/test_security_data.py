"""Issue 11, finding 2: the audience publishes nothing into the room, not even data.

Captions travel as LiveKit text streams on ``lk.transcription``; a viewer (or the
presenter, or someone the host promoted) who could publish data could put words in
the avatar's mouth on every screen. livekit-server drops data from anyone whose grant
lacks ``canPublishData``; these tests watch a real second viewer receive nothing.
"""

from __future__ import annotations

import asyncio

from livekit import api, rtc

from broadcaster.protocol import (
    AVATAR_CAPTION_SPEAKER,
    CAPTION_FINAL_ATTR,
    CAPTION_SPEAKER_ATTR,
    CAPTION_TOPIC,
)
from broadcaster.roles import Role, mint_token
from tests.fixtures_web import WebClient, connect, wait_until
from tests.test_web_livekit import joined, server_view

FORGED = {CAPTION_SPEAKER_ATTR: AVATAR_CAPTION_SPEAKER, CAPTION_FINAL_ATTR: "true",
          "lk.segment_id": "seg-1"}


class Inbox:
    """What one viewer receives: text streams on the caption topic and data packets."""

    def __init__(self, room: rtc.Room) -> None:
        self.captions: list[tuple[str, str]] = []
        self.packets: list[tuple[str, bytes]] = []
        self._tasks: set[asyncio.Task[None]] = set()

        def on_stream(reader: rtc.TextStreamReader, sender: str) -> None:
            task = asyncio.create_task(self._read(reader, sender))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        room.register_text_stream_handler(CAPTION_TOPIC, on_stream)
        room.on("data_received", lambda p: self.packets.append(
            (p.participant.identity if p.participant else "", bytes(p.data))))

    async def _read(self, reader: rtc.TextStreamReader, sender: str) -> None:
        self.captions.append((sender, await reader.read_all()))


async def test_finding2_nobody_in_the_audience_can_send_captions_or_data(
    web_client: WebClient, lkapi: api.LiveKitAPI,
) -> None:
    c, s = web_client, web_client.settings
    w = await c.new_webinar("No forged captions")
    room = w["room"]
    mallory = await joined(c, room, "mallory")
    viewer = await joined(c, room, "vera")
    pres = await joined(c, room, "pat", "presenter", code=w["presenter_code"])
    promoted = await joined(c, room, "gus")
    m = await connect(mallory["url"], mallory["token"])
    v = await connect(viewer["url"], viewer["token"])
    p = await connect(pres["url"], pres["token"])
    g = await connect(promoted["url"], promoted["token"])
    bot = await connect(s.effective_livekit_url, mint_token(s, Role.BOT, room, s.bot_identity))
    inbox = Inbox(v)
    try:
        reply = await c.host("POST", f"/api/host/webinars/{room}/participants/gus/promote")
        assert reply.status == 200, reply.text
        assert await wait_until(
            lambda: _speaking(lkapi, room, "gus"), timeout=5)
        for who in (m, p, g):
            assert not who.local_participant.permissions.can_publish_data
            for identity in ("mallory", "pat", "gus"):
                assert not (await server_view(lkapi, room, identity)).permission.can_publish_data
            # the SDK may raise or not; either way nothing may reach the other viewer
            for attempt in (
                who.local_participant.send_text("I am the avatar: send me your passwords",
                                                topic=CAPTION_TOPIC, attributes=FORGED),
                who.local_participant.send_text("x" * 200_000, topic=CAPTION_TOPIC,
                                                attributes=FORGED),
                who.local_participant.publish_data(b"forged", reliable=True),
            ):
                try:
                    await asyncio.wait_for(attempt, 3)
                except Exception:
                    pass
        # the bot's own caption still arrives, so the viewer was listening all along
        await bot.local_participant.send_text("Welcome!", topic=CAPTION_TOPIC,
                                              attributes={**FORGED, "lk.segment_id": "seg-2"})
        assert await wait_until(lambda: _has(inbox, "Welcome!"), timeout=5)
        await asyncio.sleep(0.5)
        assert inbox.captions == [(s.bot_identity, "Welcome!")], inbox.captions[:3]
        assert inbox.packets == []
    finally:
        await asyncio.gather(m.disconnect(), v.disconnect(), p.disconnect(), g.disconnect(),
                             bot.disconnect())


async def _speaking(lkapi: api.LiveKitAPI, room: str, identity: str) -> bool:
    return (await server_view(lkapi, room, identity)).permission.can_publish


async def _has(inbox: Inbox, text: str) -> bool:
    return any(t == text for _, t in inbox.captions)
