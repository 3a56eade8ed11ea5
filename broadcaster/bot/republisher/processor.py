"""The republisher as a pipecat processor: frames in, one LiveKit participant's tracks out.

It finds (or connects) the room, publishes the two tracks, routes frames to the
video and audio sides and turns barge-in frames into ducking and muting.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from livekit import rtc
from loguru import logger
from pipecat.frames.frames import (
    BotSpeakingFrame,
    CancelFrame,
    EndFrame,
    Frame,
    InterruptionFrame,
    LLMFullResponseStartFrame,
    OutputAudioRawFrame,
    OutputImageRawFrame,
    OutputTransportReadyFrame,
    StartFrame,
    TTSStartedFrame,
    TTSTextFrame,
    VADUserStartedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor, FrameProcessorSetup
from pipecat.transports.livekit.transport import LiveKitTransport

from broadcaster.bot.republisher.audio import AudioOut
from broadcaster.bot.republisher.encoding import RepublishEncoding
from broadcaster.bot.republisher.malloc import tune_malloc
from broadcaster.bot.republisher.pacer import VideoPacer
from broadcaster.bot.republisher.sources import close_later, new_sources, publish_tracks
from broadcaster.bot.republisher.stats import RepublisherStats
from broadcaster.bot.republisher.video import VideoOut
from broadcaster.frames import SpeechOnsetCancelledFrame, SpeechOnsetFrame
from broadcaster.room_connect import connect_room
from broadcaster.sdk_internals import transport_room

RoomLike = Any  # rtc.Room | LiveKitTransport | Callable[[], rtc.Room]
CONNECT_SECONDS = 20.0  # joining our own room (url + token)


class LiveKitRepublisher(FrameProcessor):
    """Publishes the pipeline's video and speech as one LiveKit participant's tracks.

    ``OutputImageRawFrame`` become a camera track (:class:`VideoOut`),
    ``OutputAudioRawFrame`` a microphone track (:class:`AudioOut`).

    Args:
        room: the room to publish in, already connected (or connected by the time the
            StartFrame arrives): an ``rtc.Room``, a pipecat ``LiveKitTransport`` (its
            room is looked up at start, so the bot stays ONE participant), or a
            zero-argument callable returning the room.
        url, token: instead of ``room``, a room of our own (joined at setup, left at cleanup).
        encoding: video size/fps/codec/bitrate/simulcast; default 720p25 VP8 1.7 Mbps,
            one layer (``RepublishEncoding.from_settings(settings)`` for ours).
        hold_frames: repeat the last frame after this many frame intervals without one.
        slate_after: seconds without a real frame before the slate (``slate_text``)
            replaces the repeats; also fires ``on_video_stalled`` / ``on_video_resumed``.
        audio_sample_rate, audio_channels: of the published audio (others are converted).
        max_audio_lag: bound (s) on how far the avatar's continuous speech may lag video
            before frames are dropped for lip sync; None: never. TTS audio is never dropped.
        forward_media: also push image/audio frames downstream (a recorder); off by default.
        bot_speaking_frames: emit Bot{Started,Stopped}SpeakingFrame (both directions)
            and BotSpeakingFrame (upstream, every 0.2 s) from the published audio, as
            pipecat's output transport would (default: when ``forward_media`` is off).
        exclusive_sources: unpublish the participant's other camera/microphone tracks
            (e.g. LiveKitTransport's silent "pipecat-audio"): viewers see one of each.
        announce_ready: push ``OutputTransportReadyFrame`` up once published (HeyGen waits).
        malloc_tuning: call :func:`tune_malloc` (process-wide) on construction.
        connect_timeout: bound (s) on waiting for the room and on each track publication.
        mute_on_speech_start: barge-in as early as the VAD allows: speech ducks at a
            ``SpeechOnsetFrame``, returns at ``SpeechOnsetCancelledFrame``, is muted at
            ``VADUserStartedSpeakingFrame`` (~40 ms before pipecat's ``InterruptionFrame``);
            only where every VAD start interrupts (ours), or the avatar mouths a muted answer.
    """

    def __init__(
        self,
        *,
        room: RoomLike | None = None,
        url: str | None = None,
        token: str | None = None,
        encoding: RepublishEncoding | None = None,
        video_track_name: str = "avatar-video",
        audio_track_name: str = "avatar-audio",
        hold_frames: float = 2.0,
        slate_after: float = 2.0,
        slate_text: str = "Reconnecting…",
        audio_sample_rate: int = 48000,
        audio_channels: int = 1,
        audio_queue_ms: int = 500,
        max_audio_lag: float | None = 0.08,
        forward_media: bool = False,
        bot_speaking_frames: bool | None = None,
        exclusive_sources: bool = True,
        announce_ready: bool = True,
        malloc_tuning: bool = True,
        mute_on_speech_start: bool = False,
        connect_timeout: float = 20.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (room is None) == (url is None or token is None):
            raise ValueError("give either room= or url= and token=")
        self._room_arg = room
        self._url, self._token = url, token
        self._own_room: rtc.Room | None = None
        self._room: rtc.Room | None = None
        self.encoding = encoding or RepublishEncoding()
        self._video_track_name, self._audio_track_name = video_track_name, audio_track_name
        self._forward = forward_media
        self._exclusive = exclusive_sources
        self._announce_ready = announce_ready
        self._mute_on_speech_start = mute_on_speech_start
        self._connect_timeout = connect_timeout
        if malloc_tuning:
            tune_malloc()

        self.stats = RepublisherStats()
        self._video = VideoOut(
            self, self.encoding, self.stats, hold_frames=hold_frames, slate_after=slate_after,
            slate_text=slate_text, on_stalled=lambda: self._fire("on_video_stalled"),
            on_resumed=lambda: self._fire("on_video_resumed"))
        self._audio = AudioOut(
            self, self.stats, sample_rate=audio_sample_rate, channels=audio_channels,
            queue_ms=audio_queue_ms, max_lag=max_audio_lag,
            speaking_frames=(not forward_media) if bot_speaking_frames is None
            else bot_speaking_frames,
            signal=self._signal)
        self._video_source: rtc.VideoSource | None = None
        self._audio_source: rtc.AudioSource | None = None
        self._publications: list[rtc.LocalTrackPublication] = []
        self._audio_task: asyncio.Task[None] | None = None
        self._running = False
        self._listening = False
        self._publishing = False  # LiveKit announces a track before publish_track returns

        self._register_event_handler("on_video_stalled")
        self._register_event_handler("on_video_resumed")

    @property
    def room(self) -> rtc.Room | None:
        """The room the tracks are published in (None before start)."""
        return self._room

    @property
    def video_source(self) -> rtc.VideoSource | None:
        """The video track's source (None before start)."""
        return self._video_source

    @property
    def audio_source(self) -> rtc.AudioSource | None:
        """The audio track's source (None before start)."""
        return self._audio_source

    @property
    def pacer(self) -> VideoPacer:
        """The video pacer (what was captured when, what waits)."""
        return self._video.pacer

    @property
    def last_frame_id(self) -> int:
        """The ``frame_id`` of the last captured frame (publish sequence number)."""
        return self._video.frame_id

    def bind_sources(self, video_source: rtc.VideoSource,
                     audio_source: rtc.AudioSource | None = None) -> None:
        """Capture into sources you publish yourself, no room (benchmarks, tests; loop only)."""
        self._video_source = video_source
        self._audio_source = audio_source
        self._video.start(video_source, slate_first=False)
        self._running = True

    def tap(self, video: Callable[[rtc.VideoFrame], None] | None,
            audio: Callable[[rtc.AudioFrame], None] | None) -> None:
        """Hand every captured video and audio frame to these too (audience shards)."""
        self._video.tap, self._audio.tap = video, audio

    def show_slate(self) -> None:
        """Show the slate at once (the avatar session is known dead; fires on_video_stalled)."""
        self._video.source_gone()

    def offer_video(self, frame: OutputImageRawFrame) -> None:
        """Hand a frame to the pacer; captured right away unless over the frame rate.

        Every video frame enters here: bench/relay.py overrides it to tie republished
        frames to their sources (``pacer.pending or pacer.last_real`` is then this frame).
        """
        self._video.offer(frame)

    # ---------------------------------------------------------------- lifecycle
    async def setup(self, setup: FrameProcessorSetup) -> None:  # type: ignore[override]
        """Connect our own room when given ``url`` and ``token``."""
        await super().setup(setup)
        if self._url and self._token:
            self._own_room = rtc.Room()
            await connect_room(self._own_room, self._url, self._token, seconds=CONNECT_SECONDS,
                               options=rtc.RoomOptions(auto_subscribe=False))
            logger.info(f"{self}: connected to {self._own_room.name}")

    async def cleanup(self) -> None:
        """Unpublish, close the sources, disconnect our own room."""
        await super().cleanup()
        await self._teardown()
        if self._own_room is not None:
            await self._own_room.disconnect()
            self._own_room = None

    def _resolve_room(self) -> rtc.Room:
        if self._own_room is not None:
            return self._own_room
        arg = self._room_arg
        if isinstance(arg, rtc.Room):
            return arg
        if isinstance(arg, LiveKitTransport):
            return transport_room(arg)
        if callable(arg):
            return arg()
        raise TypeError(f"room= must be an rtc.Room, a LiveKitTransport or a callable: {arg!r}")

    async def _connected_room(self) -> rtc.Room:
        """Wait for the room to exist and connect (a transport may still be setting up)."""
        deadline = time.monotonic() + self._connect_timeout
        while True:
            try:
                room = self._resolve_room()
                if room.isconnected():
                    return room
            except TypeError:
                raise
            except Exception as e:  # e.g. the transport's room does not exist yet
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self}: no room after {self._connect_timeout}s") from e
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self}: room not connected after {self._connect_timeout}s")
            await asyncio.sleep(0.05)

    async def _start(self, frame: StartFrame) -> None:
        room = self._room = await self._connected_room()
        enc, audio = self.encoding, self._audio
        self._video_source, self._audio_source = new_sources(enc, audio)
        await self._publish(room)
        audio.start(self._audio_source)
        self._audio_task = self.create_task(audio.run(), f"{self}::audio")
        self._running = True
        self._video.start(self._video_source)  # slate until the first frame
        logger.info(
            f"{self}: publishing {enc.width}x{enc.height}@{enc.fps:g} {enc.codec} "
            f"max {enc.max_bitrate} bps simulcast={enc.simulcast} + audio "
            f"{audio.sample_rate} Hz as {room.local_participant.identity} in {room.name}"
        )
        if self._announce_ready:
            await self.push_frame(OutputTransportReadyFrame(), FrameDirection.UPSTREAM)

    async def _publish(self, room: rtc.Room) -> None:
        """Publish tracks of our two sources in ``room`` (at start, again after a move)."""
        assert self._video_source is not None and self._audio_source is not None
        self._publishing = True
        try:
            self._publications += await publish_tracks(
                room, self._video_source, self._audio_source, (self._video_track_name,
                self._audio_track_name), self.encoding.video_options(), self._connect_timeout)
        finally:
            self._publishing = False
        if self._exclusive:
            await self._unpublish_others()
            room.on("local_track_published", self._on_local_track_published)
            self._listening = True

    async def move_to(self, room: rtc.Room) -> None:
        """Publish in ``room`` (the stage room joined again: StageKeeper) from new sources."""
        if self._room is not None and self._listening:
            self._room.off("local_track_published", self._on_local_track_published)
            self._listening = False
        self._publications.clear()
        self._room = room
        if not self._running:
            return
        old = [src for src in (self._video_source, self._audio_source) if src is not None]
        self._video_source, self._audio_source = new_sources(self.encoding, self._audio)
        self._video.source, self._audio.source = self._video_source, self._audio_source
        await self._publish(room)  # (a source whose track was lost sends into no new track)
        for src in old:
            self.create_task(close_later(src), f"{self}::close_source")
        logger.info(f"{self}: published again in {room.name} (the stage room came back)")

    def _ours(self, sid: str) -> bool:
        return any(p.sid == sid for p in self._publications)

    async def _unpublish_others(self) -> None:
        assert self._room is not None
        if self._publishing:  # after a move the listener is on the room already: our
            return            # tracks, not yet returned, looked like others' (issue 14)
        wanted = (rtc.TrackSource.SOURCE_CAMERA, rtc.TrackSource.SOURCE_MICROPHONE)
        for sid, pub in list(self._room.local_participant.track_publications.items()):
            if not self._ours(sid) and pub.source in wanted:
                logger.info(f"{self}: unpublishing {pub.name!r} ({sid}): the avatar's replaces it")
                await self._room.local_participant.unpublish_track(sid)

    def _on_local_track_published(self, publication: rtc.LocalTrackPublication, _: Any) -> None:
        if self._running and not self._publishing and not self._ours(publication.sid):
            self.create_task(self._unpublish_others(), f"{self}::unpublish")

    async def _stop(self, *, graceful: bool) -> None:
        if graceful and self._running:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(3.0):  # let queued speech play out, bounded
                    await self._audio.drain()
        await self._teardown()

    async def _teardown(self) -> None:
        self._running = False
        self._video.stop()
        if self._audio_task is not None:
            await self.cancel_task(self._audio_task)
            self._audio_task = None
        self._audio.stop()
        if self._room is not None:
            if self._listening:
                self._room.off("local_track_published", self._on_local_track_published)
                self._listening = False
            if self._publications and self._room.isconnected():
                for pub in self._publications:
                    try:
                        await self._room.local_participant.unpublish_track(pub.sid)
                    except Exception as e:  # the room may be going away concurrently
                        logger.debug(f"{self}: unpublish {pub.sid}: {e}")
        self._publications.clear()
        for source in (self._video_source, self._audio_source):
            if source is not None:
                await source.aclose()
        self._video_source = self._audio_source = None

    # ---------------------------------------------------------------- frames
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Publish media frames; follow start, stop and barge-in; pass the rest on."""
        await super().process_frame(frame, direction)

        if isinstance(frame, StartFrame):
            try:
                await self._start(frame)
            except Exception as e:
                await self._teardown()
                await self.push_error(f"republisher could not publish: {e}", exception=e,
                                      force_treat_as_permanent=True)
            await self.push_frame(frame, direction)
            return
        if isinstance(frame, (EndFrame, CancelFrame)):
            await self._stop(graceful=isinstance(frame, EndFrame))
            await self.push_frame(frame, direction)
            return
        if direction is FrameDirection.DOWNSTREAM:
            if isinstance(frame, OutputImageRawFrame):
                self.offer_video(frame)  # the one entry point: subclasses observe it
                if self._forward:
                    await self.push_frame(frame, direction)
                return
            if isinstance(frame, OutputAudioRawFrame):
                frame = await self._audio.offer(frame)
                if self._forward:
                    await self.push_frame(frame, direction)
                return
            self._follow_speech(frame)
        await self.push_frame(frame, direction)

    def _follow_speech(self, frame: Frame) -> None:
        """Mute at an interruption, duck at a possible barge-in, unmute at a new answer."""
        audio = self._audio
        if isinstance(frame, InterruptionFrame) or (
            self._mute_on_speech_start and isinstance(frame, VADUserStartedSpeakingFrame)
        ):
            audio.interrupt(frame)
        elif self._mute_on_speech_start and isinstance(frame, SpeechOnsetFrame):
            audio.duck()
        elif isinstance(frame, SpeechOnsetCancelledFrame):
            audio.ducked = False
        elif isinstance(frame, (LLMFullResponseStartFrame, TTSStartedFrame, TTSTextFrame)):
            audio.muted = False

    async def _signal(self, kind: type[Frame]) -> None:
        if kind is BotSpeakingFrame:
            # 5/s, upstream only (its consumers: idle timer, turn strategies): half the cost
            await self.push_frame(BotSpeakingFrame(), FrameDirection.UPSTREAM)
        else:
            await self.broadcast_frame(kind)

    def _fire(self, event: str) -> None:
        try:
            self.create_task(self._call_event_handler(event), f"{self}::{event}")
        except Exception as e:  # not set up in a pipeline (bind_sources): no handlers
            logger.debug(f"{self}: {event} not dispatched: {e}")

