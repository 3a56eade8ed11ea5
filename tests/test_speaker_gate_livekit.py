"""The speaker gate behind pipecat's LiveKit input, on a real livekit-server.

Two participants publish microphones at once; the bot (pipecat's LiveKitTransport
+ SpeakerGate following the room metadata) passes only the current speaker's
audio, and follows a change of "speaker" in the room metadata live.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import numpy as np
from livekit import api, rtc
from pipecat.frames.frames import UserAudioRawFrame
from pipecat.transports.livekit.transport import LiveKitParams, LiveKitTransport

from broadcaster.bot.speaker_gate import SpeakerGate
from broadcaster.frames import SpeakerChangedFrame
from broadcaster.roles import Role, mint_token
from tests.helpers.speech import run_pipeline

ROOM = "gate-live"


async def publish_tone(settings, identity: str, freq: float) -> tuple[rtc.Room, asyncio.Task]:
    """Join as ``identity`` and publish a continuous tone as the microphone."""
    room = rtc.Room()
    await room.connect(
        settings.effective_livekit_url, mint_token(settings, Role.PRESENTER, ROOM, identity)
    )
    source = rtc.AudioSource(48_000, 1)
    track = rtc.LocalAudioTrack.create_audio_track("mic", source)
    options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    await room.local_participant.publish_track(track, options)

    async def feed() -> None:
        n = 480  # 10 ms
        t = np.arange(n) / 48_000
        phase = 0
        while True:
            samples = (np.sin(2 * np.pi * freq * (t + phase / 48_000)) * 8000).astype(np.int16)
            phase += n
            frame = rtc.AudioFrame(samples.tobytes(), 48_000, 1, n)
            await source.capture_frame(frame)

    return room, asyncio.create_task(feed())


async def test_only_the_metadata_speaker_reaches_the_pipeline(livekit):
    s = livekit
    async with api.LiveKitAPI(s.livekit_http_url, s.livekit_api_key, s.livekit_api_secret) as lk:
        meta = {"title": "gate", "speaker": "alice", "state": "live"}
        await lk.room.create_room(api.CreateRoomRequest(name=ROOM, metadata=json.dumps(meta)))
        alice, alice_feed = await publish_tone(s, "alice", 440)
        bob, bob_feed = await publish_tone(s, "bob", 660)
        try:
            transport = LiveKitTransport(
                s.effective_livekit_url,
                mint_token(s, Role.BOT, ROOM, s.bot_identity),
                ROOM,
                params=LiveKitParams(audio_in_enabled=True, audio_out_enabled=False),
            )
            gate = SpeakerGate()
            gate.follow_transport(transport)
            marks: dict[str, int] = {}

            async def script(worker, sink):
                def seconds(who: str) -> float:
                    frames = [f for f in sink.of(UserAudioRawFrame) if f.user_id == who]
                    return sum(len(f.audio) for f in frames) / (2 * 16_000)

                await sink.wait_for(lambda: seconds("alice") >= 1.0, 20)
                marks["before"] = len(sink.frames)
                meta["speaker"] = "bob"
                await lk.room.update_room_metadata(
                    api.UpdateRoomMetadataRequest(room=ROOM, metadata=json.dumps(meta))
                )
                await sink.wait_for(lambda: gate.speaker == "bob", 10)
                await sink.wait_for(lambda: seconds("bob") >= 1.0, 10)

            sink = await run_pipeline([transport.input(), gate], script, timeout=60)
        finally:
            for feed in (alice_feed, bob_feed):
                feed.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await feed
            await alice.disconnect()
            await bob.disconnect()

    audio = [(i, f) for i, (_, f) in enumerate(sink.frames) if isinstance(f, UserAudioRawFrame)]
    changes = [
        (i, f) for i, (_, f) in enumerate(sink.frames) if isinstance(f, SpeakerChangedFrame)
    ]
    # the initial speaker comes from the metadata at connect, then the live change
    assert [(f.previous, f.speaker) for _, f in changes] == [(None, "alice"), ("alice", "bob")]
    change = changes[1][0]
    before = {f.user_id for i, f in audio if i < change}
    after = {f.user_id for i, f in audio if i > change}
    assert before == {"alice"}
    assert after == {"bob"}
    assert change >= marks["before"]
    assert gate.dropped_frames >= 20  # bob's before, alice's after: both really sent
