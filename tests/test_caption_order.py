"""Issue 13 item 7: at a viewer, a segment's final caption line is the last one it shows.

Real livekit-server, the bot's CaptionPublisher sending, a real SDK viewer reading the
text streams the way tests/helpers/people.py and bench viewers do (one task per stream).
"""

from __future__ import annotations

import asyncio

from livekit import api, rtc

from broadcaster.bot.captions import SEGMENT_ATTR, CaptionPublisher
from broadcaster.protocol import CAPTION_FINAL_ATTR, CAPTION_SEQ_ATTR, CAPTION_TOPIC
from broadcaster.roles import Role, mint_token

ROOM = "captions-order"


async def test_a_final_line_is_never_followed_by_its_interim_at_a_viewer(livekit):
    s = livekit
    async with api.LiveKitAPI(s.livekit_http_url, s.livekit_api_key, s.livekit_api_secret) as lk:
        await lk.room.create_room(api.CreateRoomRequest(name=ROOM))
    viewer, bot = rtc.Room(), rtc.Room()
    seen: list[tuple[str, int, str, bool]] = []  # in the order the viewer completes them
    tasks: set[asyncio.Task] = set()

    async def read(reader: rtc.TextStreamReader) -> None:
        text = await reader.read_all()
        attrs = reader.info.attributes or {}
        seen.append((attrs.get(SEGMENT_ATTR, ""), int(attrs.get(CAPTION_SEQ_ATTR) or 0), text,
                     attrs.get(CAPTION_FINAL_ATTR) == "true"))

    def on_stream(reader: rtc.TextStreamReader, _sender: str) -> None:
        task = asyncio.create_task(read(reader))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    viewer.register_text_stream_handler(CAPTION_TOPIC, on_stream)
    url = s.effective_livekit_url
    await viewer.connect(url, mint_token(s, Role.VIEWER, ROOM, "order-viewer"))
    await bot.connect(url, mint_token(s, Role.BOT, ROOM, s.bot_identity))
    publisher = CaptionPublisher(lambda: bot)
    n = 40
    try:
        for i in range(n):  # a reply's last interim line and its final, back to back
            text = f"Line {i} of the avatar's answer."
            for final in (False, True):
                await publisher.publish(text, speaker="avatar", final=final, segment=f"s{i}",
                                        source="avatar")
        for _ in range(200):
            if len(seen) >= 2 * n:
                break
            await asyncio.sleep(0.05)
    finally:
        await viewer.disconnect()
        await bot.disconnect()
    assert len(seen) == 2 * n
    # Streams sent back to back may complete out of order at this viewer (one task per
    # stream, as the SDK hands them out); each line carries its number in the segment,
    # and a viewer that keeps the newest line per segment shows the final one last.
    assert sorted(seq for seg, seq, _, _ in seen if seg == "s0") == [1, 2]
    shown: dict[str, tuple[int, str, bool]] = {}
    closed: set[str] = set()
    for segment, seq, text, final in seen:
        assert seq > 0, "a caption line without its number"
        if seq <= shown.get(segment, (0, "", False))[0]:
            continue  # older than what is shown
        assert segment not in closed, f"{text!r} (final={final}) after its segment's final line"
        shown[segment] = (seq, text, final)
        if final:
            closed.add(segment)
    assert all(final for _, _, final in shown.values()) and len(shown) == n
    reordered = sum(1 for a, b in zip(seen, seen[1:], strict=False) if a[0] == b[0] and a[1] > b[1])
    print(f"\nCAPTIONS completed out of order at the viewer: {reordered} of {n} segments")
