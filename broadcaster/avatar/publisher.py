"""The avatar participant: joins a LiveKit room and publishes its video and audio.

What pipecat's LiveAvatar client needs from it (see DESIGN.md, "The avatar
source"), and why each choice here:

* identity ``heygen`` (pipecat's HeyGenTransport filters that identity), in the
  room for the whole session: the client never re-attaches to an avatar that left;
* ONE video layer (no simulcast) at the configured size, kept at that size and
  rate (``MAINTAIN_FRAMERATE_AND_RESOLUTION``) so neither the start-up bandwidth
  estimate nor CPU pressure hands the client a smaller frame (it does not resize);
* an audio track at 48 kHz that carries continuous silence when not speaking
  (no DTX), so the client's audio stream is never starved;
* frames on a :class:`SteadyTicker`: no drift, no burst after a stall;
* no pixel copies of our own: the renderer's reused I420 buffer is wrapped once
  in an ``rtc.VideoFrame`` (a memoryview of the same memory) and LiveKit copies
  it once into its encoder buffer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from livekit import rtc
from loguru import logger

from broadcaster.avatar.renderer import FaceRenderer
from broadcaster.avatar.runtime import AvatarRuntime
from broadcaster.avatar.speech import BLOCK_SAMPLES, OUT_RATE
from broadcaster.avatar.ticker import SteadyTicker
from broadcaster.room_connect import connect_room

#: audio queued inside the LiveKit source; lip sync compensates for it
AUDIO_QUEUE_MS = 60
CONNECT_TIMEOUT = 10.0
PUBLISH_TIMEOUT = 8.0
_KEEP_RESOLUTION = rtc.DegradationPreference.MAINTAIN_FRAMERATE_AND_RESOLUTION


@dataclass(frozen=True)
class MediaConfig:
    """What the avatar publishes."""

    width: int = 1280
    height: int = 720
    fps: int = 25
    codec: str = "VP8"
    max_bitrate: int = 1_700_000


class PublishError(RuntimeError):
    """Joining the room or publishing a track failed; the message says which."""


class AvatarPublisher:
    """One avatar participant in one room, publishing until :meth:`stop`."""

    def __init__(
        self,
        config: MediaConfig,
        runtime: AvatarRuntime,
        renderer: FaceRenderer,
        *,
        on_disconnected: Callable[[str], None] | None = None,
        epoch: float | None = None,
    ) -> None:
        if (renderer.width, renderer.height) != (config.width, config.height):
            raise ValueError("renderer size differs from the published size")
        self.config = config
        self.runtime = runtime
        self.renderer = renderer
        self._on_disconnected = on_disconnected
        self.room = rtc.Room()
        self._video = rtc.VideoSource(config.width, config.height)
        self._audio = rtc.AudioSource(OUT_RATE, 1, queue_size_ms=AUDIO_QUEUE_MS)
        self._tasks: list[asyncio.Task[None]] = []
        self._ticker: SteadyTicker | None = None
        self._stopped = False
        self.frames = 0
        self.audio_blocks = 0
        self.started_at = 0.0
        #: the idle motion's clock (monotonic): shared by the sessions of one service, so
        #: a bot switching from one session of an avatar to the next sees no jump
        self.epoch = epoch
        runtime.on_flush = self._audio.clear_queue

        @self.room.on("disconnected")
        def _gone(reason: object) -> None:
            if not self._stopped:
                logger.warning("avatar left its LiveKit room: {}", reason)
                if self._on_disconnected is not None:
                    self._on_disconnected(str(reason))

    # ------------------------------------------------------------- lifecycle
    async def start(self, url: str, token: str) -> None:
        """Join ``url`` with ``token``, publish both tracks, start the media loops."""
        try:
            await connect_room(self.room, url, token, seconds=CONNECT_TIMEOUT,
                               options=rtc.RoomOptions(auto_subscribe=False))
        except Exception as exc:
            raise PublishError(f"could not join the LiveKit room: {exc!s}") from exc
        self.started_at = time.monotonic()
        # Media flows before the tracks are announced, so the first frame a
        # subscriber decodes is a real one.
        self._tasks = [
            asyncio.create_task(self._video_loop(), name="avatar-video"),
            asyncio.create_task(self._audio_loop(), name="avatar-audio"),
        ]
        cfg = self.config
        video_opts = rtc.TrackPublishOptions(
            source=rtc.TrackSource.SOURCE_CAMERA,
            simulcast=False,
            video_codec=rtc.VideoCodec.H264 if cfg.codec == "H264" else rtc.VideoCodec.VP8,
            video_encoding=rtc.VideoEncoding(max_bitrate=cfg.max_bitrate, max_framerate=cfg.fps),
            # livekit types the field by its proto enum; the public IntEnum has its values
            degradation_preference=_KEEP_RESOLUTION,  # type: ignore[arg-type]
        )
        audio_opts = rtc.TrackPublishOptions(
            source=rtc.TrackSource.SOURCE_MICROPHONE, dtx=False, red=True
        )
        video = rtc.LocalVideoTrack.create_video_track("avatar-video", self._video)
        audio = rtc.LocalAudioTrack.create_audio_track("avatar-audio", self._audio)
        try:
            lp = self.room.local_participant
            await asyncio.wait_for(lp.publish_track(video, video_opts), PUBLISH_TIMEOUT)
            await asyncio.wait_for(lp.publish_track(audio, audio_opts), PUBLISH_TIMEOUT)
        except Exception as exc:
            await self.stop()
            raise PublishError(
                f"could not publish the avatar's tracks (does the token allow "
                f"camera and microphone?): {type(exc).__name__} {exc!s}"
            ) from exc

    async def stop(self) -> None:
        """Leave the room and stop the loops; safe to call more than once."""
        if self._stopped:
            return
        self._stopped = True
        self.runtime.on_flush = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        try:
            await asyncio.wait_for(self.room.disconnect(), 5.0)
        except Exception as exc:  # leaving is best effort: the server times us out anyway
            logger.debug("avatar room disconnect: {}", exc)
        for source in (self._video, self._audio):
            try:
                await source.aclose()
            except Exception:
                pass

    # ----------------------------------------------------------------- state
    @property
    def connected(self) -> bool:
        """Whether the avatar is in its room and publishing."""
        return not self._stopped and self.room.isconnected()

    @property
    def remote_participants(self) -> int:
        """Other participants in the avatar's room (0 when not connected)."""
        return len(self.room.remote_participants) if self.connected else 0

    @property
    def frames_skipped(self) -> int:
        """Frame ticks skipped because the loop ran late."""
        return self._ticker.skipped if self._ticker else 0

    def fps(self) -> float:
        """Average frames per second published since start."""
        elapsed = time.monotonic() - self.started_at if self.started_at else 0.0
        return self.frames / elapsed if elapsed > 1.0 else 0.0

    # ----------------------------------------------------------------- loops
    async def _video_loop(self) -> None:
        cfg = self.config
        ticker = self._ticker = SteadyTicker(1.0 / cfg.fps)
        frame: rtc.VideoFrame | None = None
        wrapped: np.ndarray | None = None
        while True:
            _, t = await ticker.tick()
            try:
                mouth, state = self.runtime.visual(t)
                buf = self.renderer.render(t - (self.epoch or ticker.t0), mouth, state)
                if buf is not wrapped:  # the renderer reuses one buffer: wrap it once
                    frame = rtc.VideoFrame(
                        cfg.width, cfg.height, rtc.VideoBufferType.I420, buf.data
                    )
                    wrapped = buf
                assert frame is not None
                self._video.capture_frame(frame)
                self.frames += 1
            except Exception:
                logger.exception("avatar video frame failed")

    async def _audio_loop(self) -> None:
        # The LiveKit source paces us: capture_frame waits while its queue is full,
        # so each block is heard about ``queued_duration`` after it is handed over.
        raw = bytearray(BLOCK_SAMPLES * 2)
        block = np.frombuffer(raw, dtype=np.int16)
        frame = rtc.AudioFrame(raw, OUT_RATE, 1, BLOCK_SAMPLES)
        while True:
            try:
                play_at = time.monotonic() + self._audio.queued_duration
                self.runtime.read_audio(block, play_at)
                await self._audio.capture_frame(frame)
                self.audio_blocks += 1
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("avatar audio block failed")
                await asyncio.sleep(0.01)
