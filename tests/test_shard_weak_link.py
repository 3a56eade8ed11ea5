"""Viewers on weak links in an audience shard room: a shard viewer behind a 500 kbit/s
link keeps >= 15 fps on a lower layer while a normal shard viewer stays at 1280x720.

All real: a livekit-server of its own listening on a veth pair's host address; the
stage room's avatar video from a publisher with the bot's stage encoding
(``bench.plain_publisher`` as ``bot_identity``, ``video_svc="L3T1"``: VP9, three spatial
layers, numbered frames); the bot's own ``ShardFanout`` (broadcaster/bot/shard_fanout.py,
``audience_shards=1``) putting the avatar into the shard room ``weak--a1`` the way the
product does (with ``shard_video`` at its default); two libwebrtc viewers
(bench/frame_recorder.py) in that shard, one inside a network namespace whose link
carries ``tc tbf rate 500kbit`` (bench/netns.py; deleted afterwards, even on failure).
Without root the namespace cannot be made and the test is skipped, saying why.

The encode-once path (``shard_video="encode_once"``: one VP8 layer) fails this test:
the weak viewer got 0 fps (bench/encode_once.py measures both ways and their cost).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from livekit import rtc

from bench import netns
from bench.weak_link import server_extra
from broadcaster import livekit_server
from broadcaster.bot.republisher import RepublishEncoding
from broadcaster.bot.shard_fanout import ShardFanout
from broadcaster.bot.shard_relay import relay_binary
from broadcaster.config import Settings
from broadcaster.roles import Role, mint_token
from broadcaster.room_connect import connect_room
from broadcaster.shards import shard_rooms
from tests.helpers.weak_link import ROOT, on_link, record_pair

# after its first frame (4-9 s behind the weak link: the SFU steps it down to a layer
# that fits and waits for that layer's keyframe) a viewer settles for SETTLE_S; fps and
# size count over what is left of RECORD_S (>= 8 s)
SETTLE_S, RECORD_S = 10.0, 30.0
STAGE = "weak"


async def _feed(fanout: ShardFanout, s: Settings, url: str) -> None:
    """Hand the fan-out the stage's frames, as the bot's republisher does (encode once)."""
    room = rtc.Room()
    got = asyncio.Event()
    streams: list[rtc.VideoStream] = []

    @room.on("track_subscribed")
    def _on(track: rtc.Track, *_: object) -> None:
        if track.kind == rtc.TrackKind.KIND_VIDEO and not streams:
            streams.append(rtc.VideoStream(track))
            got.set()

    await connect_room(room, url, mint_token(s, Role.VIEWER, STAGE, "feed"), seconds=20)
    try:
        await asyncio.wait_for(got.wait(), 20)
        async for ev in streams[0]:
            fanout.offer_video(ev.frame)
    finally:
        await room.disconnect()


async def test_shard_viewer_on_a_weak_link_keeps_15_fps_on_a_lower_layer(
        settings: Settings, tmp_path: Path) -> None:
    reason = netns.unavailable()
    if reason:
        pytest.skip(f"no network namespace for the weak link: {reason}")
    assert relay_binary(settings), "svcrelay not built: bash relay/svcrelay/build.sh"
    with netns.weak_link(500) as link:
        s = on_link(settings, link, tmp_path, audience_shards=1, avatar_mode="relay")
        (shard,) = shard_rooms(STAGE, 1)
        async with livekit_server.running(s, tmp_path / "livekit.log", extra=server_extra(link)):
            url = s.effective_livekit_url
            with open(tmp_path / "pub.log", "wb") as log:  # the bot's stage encoding, from s
                pub = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "bench.plain_publisher", "--url", url,
                    "--token", mint_token(s, Role.BOT, STAGE, s.bot_identity),
                    "--state", "speaking", cwd=str(ROOT), env={**os.environ, **s.child_env()},
                    stdout=log, stderr=asyncio.subprocess.STDOUT)
            fanout = ShardFanout(s, STAGE, RepublishEncoding.from_settings(s))
            feed = None if fanout.relayed else asyncio.ensure_future(_feed(fanout, s, url))
            fanout.start()
            try:
                await asyncio.sleep(3.0)
                seconds = RECORD_S

                normal, weak, through = await record_pair(
                    link, url, lambda who: mint_token(s, Role.VIEWER, shard, who),
                    seconds=seconds, settle=SETTLE_S, folder=tmp_path)
            finally:
                if feed is not None:
                    feed.cancel()
                await fanout.stop()
                pub.terminate()
                await pub.wait()
    print(f"relayed={fanout.relayed}: normal {normal.get('fps')} fps {normal.get('sizes')}; "
          f"weak {weak.get('fps')} fps {weak.get('sizes')}; link {through:.0f} kbit/s")
    assert through <= 500 * 1.1, f"{through:.0f} kbit/s through a 500 kbit/s link"
    assert normal.get("height") == 720 and normal["fps"] >= 22, normal
    assert weak.get("height") is not None and weak["height"] < 720, weak
    assert weak["fps"] >= 15 and weak["window_s"] >= 5, weak
