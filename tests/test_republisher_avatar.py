"""End to end: FastHeyGenVideoService (pipecat's client, I420 frames) -> LiveKitRepublisher.

The local LiveAvatar-compatible service plays the avatar; the republisher publishes
into a separate "stage" room, where a viewer checks what arrives. Also checks the
shared-room mode: the republisher reusing a pipecat LiveKitTransport's room, so the
bot stays one participant with exactly one camera and one microphone track.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import numpy as np
import pytest
from livekit import rtc
from loguru import logger
from pipecat.frames.frames import TTSAudioRawFrame, TTSStartedFrame, TTSStoppedFrame
from pipecat.services.heygen.api_liveavatar import (
    LiveAvatarApi,
    LiveAvatarNewSessionRequest,
    VideoEncoding,
    VideoSettings,
)
from pipecat.services.heygen.client import ServiceType
from pipecat.transports.livekit.transport import LiveKitParams, LiveKitTransport

from broadcaster.bot.avatar_service import FastHeyGenVideoService
from broadcaster.bot.republisher import LiveKitRepublisher, RepublishEncoding
from broadcaster.config import Settings
from broadcaster.frames import I420AvatarFrame
from broadcaster.roles import Role, mint_token
from broadcaster.sdk_internals import transport_room
from tests.fixtures_avatar import SPEECH_RATE
from tests.helpers.pipeline import start_pipeline
from tests.helpers.republish import Subscriber, Tap, wait_for

pytestmark = pytest.mark.timeout(120)


async def test_avatar_frames_reach_the_stage_without_rgb(
    avatar_service: str, avatar_settings: Settings, speech_clip: np.ndarray
) -> None:
    s = avatar_settings
    stage = "stage-e2e"
    LiveAvatarApi.BASE_URL = avatar_service  # pipecat reads the class attribute per request
    sub = await Subscriber.joined(s, stage)
    rep = LiveKitRepublisher(
        url=s.effective_livekit_url,
        token=mint_token(s, Role.BOT, stage, s.bot_identity),
        encoding=RepublishEncoding.from_settings(s),
        forward_media=True,  # so the tap can check the frame type
    )
    tap = Tap()
    async with aiohttp.ClientSession() as http:
        avatar = FastHeyGenVideoService(
            api_key=s.avatar_api_key,
            session=http,
            service_type=ServiceType.LIVE_AVATAR,
            session_request=LiveAvatarNewSessionRequest(
                avatar_id=s.effective_avatar_id,
                video_settings=VideoSettings(encoding=VideoEncoding.VP8),
            ),
        )
        worker, run = await start_pipeline(avatar, rep, tap)  # no OutputTransportReadyFrame:
        try:  # the republisher announces readiness itself
            await wait_for(lambda: rep.stats.frames_published > 25, 30, "avatar frames")
            await asyncio.sleep(1.0)
            p0, t0 = rep.stats.frames_published, time.monotonic()
            n0 = len(sub.video)
            await worker.queue_frames(
                [TTSStartedFrame()]
                + [TTSAudioRawFrame(audio=speech_clip[i : i + 480].tobytes(),
                                    sample_rate=SPEECH_RATE, num_channels=1)
                   for i in range(0, speech_clip.size, 480)]
                + [TTSStoppedFrame()]
            )
            await asyncio.sleep(4.0)
            t1 = time.monotonic()
            rate = (rep.stats.frames_published - p0) / (t1 - t0)
            seen = sub.video[n0:]
            ids = {v.frame_id for v in seen}
            sizes = {v.size for v in seen}
            loud = [rms for t, rms in sub.audio if t0 <= t < t1 and rms > 300]
            kinds = {type(f) for f in tap.frames if hasattr(f, "image")}
            logger.info(f"avatar -> stage: {rate:.1f} fps published, {len(ids) / (t1 - t0):.1f} "
                        f"distinct/s received, sizes {sizes}, {len(loud)} loud audio frames, "
                        f"stats {rep.stats}")
            assert kinds == {I420AvatarFrame}, kinds  # no RGB frame was ever made
            assert rate >= 0.9 * s.video_fps, rate
            assert len(ids) / (t1 - t0) >= 0.9 * s.video_fps
            assert sizes == {(s.video_width, s.video_height)}
            assert loud, "the avatar's speech did not reach the stage"
            assert 0 < rep.stats.last_source_age_ms < 50  # decoded -> captured, in-process
            assert rep.stats.frames_slate < 60  # only before the avatar's first frame
        finally:
            await worker.cancel()
            await asyncio.wait_for(run, 20)
            await sub.leave()


async def test_shared_transport_room_one_camera_one_microphone(livekit: Settings) -> None:
    """Reusing LiveKitTransport's room: its silent 'pipecat-audio' track is replaced."""
    s = livekit
    room = "stage-shared"
    transport = LiveKitTransport(
        s.effective_livekit_url, mint_token(s, Role.BOT, room, s.bot_identity), room,
        params=LiveKitParams(audio_in_enabled=False, audio_out_enabled=True),
    )
    rep = LiveKitRepublisher(room=transport, encoding=RepublishEncoding.from_settings(s))
    viewer = await Subscriber.joined(s, room)
    worker, run = await start_pipeline(transport.input(), rep, transport.output())
    try:
        await wait_for(lambda: len(viewer.video) > 10, 20, "slate frames at the viewer")
        await asyncio.sleep(0.5)
        bot = viewer.room.remote_participants[s.bot_identity]
        tracks = sorted((p.source, p.name) for p in bot.track_publications.values())
        local = transport_room(transport).local_participant  # the same participant
        assert rep.room is transport_room(transport)
        logger.info(f"bot tracks seen by the viewer: {tracks}")
        assert tracks == sorted([(rtc.TrackSource.SOURCE_CAMERA, "avatar-video"),
                                 (rtc.TrackSource.SOURCE_MICROPHONE, "avatar-audio")])
        assert len(local.track_publications) == 2
        assert {v.size for v in viewer.video} == {(s.video_width, s.video_height)}
    finally:
        await worker.cancel()
        await asyncio.wait_for(run, 20)
        await viewer.leave()
