"""The avatar into every audience shard room: video encoded once, voice and captions copied.

With ``audience_shards`` > 0 viewers watch in shard rooms that LiveKit places on its
nodes (docs/scaling.md). The bot joins each shard as ``bot_identity`` and publishes the
same media there as in the stage room. Video is encoded ONCE (PyAV's libvpx, VP8
realtime) and the same access units go into every shard through
``rtc.EncodedVideoSource`` (one layer: the SDK's pre-encoded path has no simulcast);
bench/encode_once.py measured +0.009 core per extra room against +0.111 core for a
re-encode per room. A keyframe request from any shard makes the next frame a keyframe.

With the stage's video in VP9 SVC layers (``video_svc`` = L3T1) the video goes into
each shard through ``broadcaster.bot.shard_relay`` instead (``shard_video``): a relay
copies the stage's layered stream, so a shard viewer on a weak link gets a lower layer;
the bot then publishes only the voice into the shards and encodes nothing for them.

Each shard connection is kept up by its own task: when a shard's node dies, the task
joins again until LiveKit has re-homed the room on a live node (``retry_seconds``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av
import numpy as np
from livekit import api, rtc
from loguru import logger

from broadcaster.bot.republisher import RepublishEncoding, audio_options
from broadcaster.bot.shard_relay import SvcRelay, use_relay
from broadcaster.config import Settings
from broadcaster.roles import Role, mint_token
from broadcaster.room_connect import connect_room
from broadcaster.shards import shard_rooms

#: seconds between two joins of a lost shard (a dead node's rooms move within ~5 s)
RETRY_SECONDS = 0.5
#: one join attempt (joins fail fast while LiveKit still counts a dead node as up)
CONNECT_SECONDS = 4.0
#: how often (and how long) the bot asks LiveKit whether it is still in each shard
WATCH_SECONDS = 1.0
#: missed answers in a row that count as a lost shard
WATCH_MISSES = 2
#: between two shards' first joins: LiveKit's node stats interval (2 s) and a margin
JOIN_GAP_SECONDS = 2.5
#: a shard's audio queue deeper than this drops frames (a stuck shard must not grow it)
MAX_AUDIO_QUEUE_S = 0.5


@dataclass
class _Shard:
    name: str
    room: rtc.Room | None = None
    video: rtc.EncodedVideoSource | None = None
    audio: rtc.AudioSource | None = None
    joins: int = 0
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    published: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def live(self) -> bool:
        return self.room is not None and self.room.isconnected() and self.audio is not None


class VP8Once:
    """One libvpx VP8 encoder (realtime) for the shards' single layer."""

    def __init__(self, encoding: RepublishEncoding) -> None:
        self.width, self.height, self.fps = encoding.width, encoding.height, encoding.fps
        ctx: Any = av.CodecContext.create("libvpx", "w")
        ctx.width, ctx.height, ctx.pix_fmt = self.width, self.height, "yuv420p"
        ctx.time_base = Fraction(1, round(self.fps))
        ctx.framerate = Fraction(round(self.fps), 1)
        ctx.bit_rate = encoding.max_bitrate
        ctx.gop_size = 10 * round(self.fps)
        ctx.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0",
                       "error-resilient": "1", "threads": "1"}
        self._ctx = ctx
        self._pts = 0

    def encode(self, frame: rtc.VideoFrame, keyframe: bool) -> list[tuple[bytes, bool]]:
        """I420 ``frame`` -> [(access unit, is keyframe)] (runs in a worker thread)."""
        if frame.type != rtc.VideoBufferType.I420:
            frame = frame.convert(rtc.VideoBufferType.I420)
        plane = np.frombuffer(frame.data, np.uint8).reshape(frame.height * 3 // 2, frame.width)
        pic = av.VideoFrame.from_ndarray(plane, format="yuv420p")
        if (frame.width, frame.height) != (self.width, self.height):
            pic = pic.reformat(self.width, self.height)
        pic.pts = self._pts
        self._pts += 1
        pic.pict_type = (av.video.frame.PictureType.I if keyframe
                         else av.video.frame.PictureType.NONE)
        return [(bytes(p), bool(p.is_keyframe)) for p in self._ctx.encode(pic)]


class ShardFanout:
    """The bot's media in every shard room of ``stage``; ``start`` / ``stop`` from the loop."""

    def __init__(self, settings: Settings, stage: str, encoding: RepublishEncoding) -> None:
        self.settings = settings
        self.encoding = encoding
        self.shards = [_Shard(n) for n in shard_rooms(stage, settings.audience_shards)]
        self.relayed = use_relay(settings)
        self._encoder = None if self.relayed else VP8Once(encoding)
        self.relays = [SvcRelay(settings, stage, s.name, width=encoding.width,
                                height=encoding.height) for s in self.shards]
        self._pending: rtc.VideoFrame | None = None
        self._wake = asyncio.Event()
        self._want_key = True
        self._tasks: list[asyncio.Task[None]] = []
        self.frames_encoded = 0
        self.frames_dropped = 0
        self._audio_tasks: set[asyncio.Future[None]] = set()
        self._t0 = time.monotonic()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Join the shards one by one (in the background) and start the encoder task."""
        self._tasks = [asyncio.ensure_future(self._join_in_turn()),
                       asyncio.ensure_future(self._encode_loop())]

    async def _join_in_turn(self) -> None:
        """Join the shards ``JOIN_GAP_SECONDS`` apart.

        LiveKit places a new room by its nodes' stats (``node_selector``), refreshed
        every 2 s: the gap lets each placement see the rooms placed before it, so the
        shards spread over the nodes.
        """
        for i, shard in enumerate(self.shards):
            if i:
                await asyncio.sleep(JOIN_GAP_SECONDS)
            self._tasks.append(asyncio.ensure_future(self._keep(shard)))
            await shard.published.wait()
            if self.relayed:  # the room exists on its node now: the relay joins it there
                self.relays[i].start()

    async def stop(self) -> None:
        """Leave every shard."""
        await asyncio.gather(*(r.stop() for r in self.relays), return_exceptions=True)
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for s in self.shards:
            if s.room is not None:
                with contextlib.suppress(Exception):
                    await s.room.disconnect()

    async def _keep(self, shard: _Shard) -> None:
        """Be in ``shard`` with the avatar's tracks; join again whenever it is lost."""
        token = mint_token(self.settings, Role.BOT, shard.name, self.settings.bot_identity,
                           name="Avatar")
        url = self.settings.effective_livekit_url
        while True:
            shard.lost.clear()
            room = rtc.Room()
            # a shard's node gone: the SDK would resume against the dead node for a while;
            # a fresh join lets LiveKit re-home the room on a live node at once
            room.on("disconnected", lambda *_: shard.lost.set())
            room.on("reconnecting", lambda *_: shard.lost.set())
            try:
                await connect_room(room, url, token, seconds=CONNECT_SECONDS)
                await self._publish(shard, room)
            except Exception as exc:  # the SDK raises its own errors as well as timeouts
                logger.warning(f"shard {shard.name}: join failed ({exc!r}); again")
                with contextlib.suppress(Exception):
                    await room.disconnect()
                shard.room = shard.video = shard.audio = None
                await asyncio.sleep(RETRY_SECONDS)
                continue
            shard.joins += 1
            shard.published.set()
            logger.info(f"shard {shard.name}: publishing (join {shard.joins})")
            self._want_key = True
            watch = asyncio.ensure_future(self._watch(shard))
            try:
                await shard.lost.wait()
            finally:
                watch.cancel()
            logger.warning(f"shard {shard.name}: connection lost; joining again")
            shard.room = shard.video = shard.audio = None
            with contextlib.suppress(Exception):
                await room.disconnect()
            await asyncio.sleep(RETRY_SECONDS)

    async def _watch(self, shard: _Shard) -> None:
        """Ask LiveKit every second whether the bot is still in ``shard``.

        When a shard's node dies, the SDK's signal connection (through another node)
        stays up and it notices the lost media only after ~10 s; the API call about a
        room on a dead node times out at once. ``WATCH_MISSES`` misses in a row: lost.
        """
        s = self.settings
        misses = 0
        async with api.LiveKitAPI(s.livekit_http_url, s.livekit_api_key,
                                  s.livekit_api_secret) as lk:
            while not shard.lost.is_set():
                await asyncio.sleep(WATCH_SECONDS)
                try:
                    await asyncio.wait_for(lk.room.get_participant(api.RoomParticipantIdentity(
                        room=shard.name, identity=s.bot_identity)), WATCH_SECONDS)
                    misses = 0
                except Exception as exc:  # timeout, not found, node unreachable
                    misses += 1
                    if misses >= WATCH_MISSES:
                        logger.warning(f"shard {shard.name}: LiveKit lost it ({exc!r})")
                        shard.lost.set()

    async def _publish(self, shard: _Shard, room: rtc.Room) -> None:
        enc = self.encoding
        video = None
        if not self.relayed:  # with relays the shard's video comes from the relay
            video = rtc.EncodedVideoSource(enc.width, enc.height)
            options = rtc.TrackPublishOptions(
                source=rtc.TrackSource.SOURCE_CAMERA, video_codec=rtc.VideoCodec.VP8,
                video_encoding=rtc.VideoEncoding(max_bitrate=enc.max_bitrate,
                                                 max_framerate=enc.fps),
                video_encoder=rtc.VideoEncoderBackend.ENCODER_BACKEND_PRE_ENCODED,
                simulcast=False)
            await room.local_participant.publish_track(
                rtc.LocalVideoTrack.create_video_track("avatar-video", video), options)
        audio = rtc.AudioSource(48000, 1, queue_size_ms=1000)
        await room.local_participant.publish_track(
            rtc.LocalAudioTrack.create_audio_track("avatar-audio", audio), audio_options())
        shard.room, shard.video, shard.audio = room, video, audio

    # ------------------------------------------------------------------ media
    def offer_video(self, frame: rtc.VideoFrame) -> None:
        """Take the stage's captured frame; the newest waits for the encoder (older dropped)."""
        if self._encoder is None:  # relayed: the shards get the stage's stream itself
            return
        if self._pending is not None:
            self.frames_dropped += 1
        self._pending = frame
        self._wake.set()

    async def _encode_loop(self) -> None:
        encoder = self._encoder
        if encoder is None:
            return
        while True:
            await self._wake.wait()
            self._wake.clear()
            frame, self._pending = self._pending, None
            live = [s for s in self.shards if s.live]
            if frame is None or not live:
                continue
            if any(s.video is not None and s.video.take_feedback().keyframe_requested
                   for s in live):
                self._want_key = True
            key, self._want_key = self._want_key, False
            try:
                units = await asyncio.to_thread(encoder.encode, frame, key)
            except Exception as exc:  # one bad frame must not stop the shards
                logger.warning(f"shards: encode failed ({exc!r})")
                continue
            ts = int((time.monotonic() - self._t0) * 1e6)
            for data, is_key in units:
                kind = (rtc.EncodedFrameType.ENCODED_FRAME_KEY if is_key
                        else rtc.EncodedFrameType.ENCODED_FRAME_DELTA)
                unit = rtc.EncodedVideoFrame(data, encoder.width, encoder.height,
                                             rtc.VideoCodec.VP8, kind, ts)
                for s in live:
                    if s.video is not None:
                        s.video.capture_frame(unit)
            self.frames_encoded += 1

    def offer_audio(self, frame: rtc.AudioFrame) -> None:
        """Copy the stage's captured audio into every live shard."""
        for s in self.shards:
            if s.live and s.audio is not None and s.audio.queued_duration < MAX_AUDIO_QUEUE_S:
                task = asyncio.ensure_future(_capture(s.audio, frame))
                self._audio_tasks.add(task)
                task.add_done_callback(self._audio_tasks.discard)

    async def send_text(self, text: str, *, topic: str, attributes: dict[str, str]) -> None:
        """Send a caption (or any text stream) into every live shard."""
        rooms = [s.room for s in self.shards if s.live and s.room is not None]
        await asyncio.gather(*(r.local_participant.send_text(
            text, topic=topic, attributes=attributes, compress=False) for r in rooms),
            return_exceptions=True)


async def _capture(source: rtc.AudioSource, frame: rtc.AudioFrame) -> None:
    with contextlib.suppress(Exception):  # a shard going away mid-frame
        await source.capture_frame(frame)
