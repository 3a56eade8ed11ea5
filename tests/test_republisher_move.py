"""The republisher keeps publishing when the stage room is joined again (issue 14).

When the stage room's node dies, the bot's StageKeeper joins the room again with a
fresh ``rtc.Room``, moves the lost room's event handlers onto it (pipecat's transport
and the republisher follow them) and calls ``LiveKitRepublisher.move_to``. Here the same
steps run against a real livekit-server with a real viewer: stamped avatar frames go
in before and after the move, and the viewer must see them at the published rate on
the new tracks, which must stay published (a presenter who joined again once got no
avatar at all: the republisher took its own new tracks for someone else's and
unpublished them).
"""

from __future__ import annotations

import asyncio
import time

import pytest
from livekit import rtc
from pipecat.frames.frames import CancelFrame

from broadcaster.bot.republisher import LiveKitRepublisher, RepublishEncoding
from broadcaster.config import Settings
from broadcaster.frames import I420AvatarFrame
from broadcaster.roles import Role, mint_token
from broadcaster.room_connect import connect_room
from broadcaster.sdk_internals import give_room_handlers, take_room_handlers
from tests.helpers.pipeline import start_pipeline
from tests.helpers.republish import FrameMaker, Subscriber, wait_for

pytestmark = pytest.mark.timeout(90)

#: frames the viewer must see per second after the move (25 are sent; a busy box
#: drops some, a lost track gives 0)
MIN_FPS = 15.0
#: the viewer sees the moved tracks' frames within this after ``move_to`` returned
BACK_WITHIN_S = 3.0


async def test_moved_tracks_stay_published_and_reach_a_viewer(livekit: Settings) -> None:
    s = livekit
    room_name = "stage-move"
    token = mint_token(s, Role.BOT, room_name, s.bot_identity)
    old = rtc.Room()
    await connect_room(old, s.effective_livekit_url, token, seconds=15)
    rep = LiveKitRepublisher(room=old, encoding=RepublishEncoding.from_settings(s))
    viewer = await Subscriber.joined(s, room_name, "viewer-move")
    worker, run = await start_pipeline(rep)
    make = FrameMaker(s.video_width, s.video_height)
    sent = 0

    async def feed() -> None:
        nonlocal sent
        while True:
            sent += 1
            await worker.queue_frame(I420AvatarFrame.wrap(make.i420(sent),
                                                          time.monotonic_ns() // 1000))
            await asyncio.sleep(1 / s.video_fps)

    feeding = asyncio.create_task(feed())
    new: rtc.Room | None = None
    try:
        await wait_for(lambda: any(v.stamp for v in viewer.video), 15, "frames before the move")
        # --- what StageKeeper does: handlers onto a fresh room, join, move the media --
        handlers = take_room_handlers(old)
        new = rtc.Room()
        give_room_handlers(new, handlers)
        await connect_room(new, s.effective_livekit_url, token, seconds=15)
        await old.disconnect()
        await rep.move_to(new)
        moved = time.monotonic()
        first_after = sent
        await wait_for(lambda: any(v.stamp and v.stamp > first_after for v in viewer.video),
                       BACK_WITHIN_S, "the avatar's frames after the move")
        back = next(v.t for v in viewer.video if v.stamp and v.stamp > first_after) - moved
        await asyncio.sleep(3.0)
        t0, t1 = time.monotonic() - 2.0, time.monotonic()
        fps = len({v.stamp for v in viewer.between(t0, t1) if v.stamp}) / (t1 - t0)
        kinds = sorted(p.kind for p in new.local_participant.track_publications.values())
        print(f"republisher moved: frames again {back:.2f} s after move_to, {fps:.1f} "
              f"distinct fps; published {kinds}")
        assert fps >= MIN_FPS, f"{fps:.1f} distinct fps after the move"
        assert kinds == sorted([rtc.TrackKind.KIND_AUDIO, rtc.TrackKind.KIND_VIDEO]), kinds
        assert rep.room is new
    finally:
        feeding.cancel()
        await worker.queue_frame(CancelFrame())
        await asyncio.wait_for(run, 20)
        await viewer.leave()
        for room in (old, new):
            if room is not None:
                await room.disconnect()
