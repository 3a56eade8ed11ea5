"""Publish a pipecat pipeline's avatar video and speech into a LiveKit room.

Why not pipecat's ``LiveKitTransport`` output: it wants RGB frames (so the avatar's
I420 frames are converted to RGB and back: 1.2-1.4 ms CPU per 720p frame with the
copies and its executor hop, bench/republish_hop.py, plus page faults), resizes with
PIL when sizes differ (10+ ms), publishes with SDK default encodings, and freezes the
track whenever the avatar stalls. This processor:

- captures :class:`~broadcaster.bot.avatar_frames.I420AvatarFrame` with zero copies
  and zero conversions (``rtc.VideoSource.capture_frame(video_frame)``), and plain
  RGB/RGBA/BGRA/ARGB/I420 ``OutputImageRawFrame`` too, so it works in any pipeline;
- publishes a CAMERA track and a MICROPHONE track with explicit encoding
  (:class:`RepublishEncoding`);
- holds a steady frame rate: frames are captured the moment they arrive, at most
  ``fps`` per second (a backlog collapses to its newest frame instead of being
  fast-forwarded); when the source stalls the last frame is repeated at ``fps``,
  and after ``slate_after`` seconds a precomputed "Reconnecting" slate is shown;
- keeps audio and video in sync by capturing both directly as they arrive (the
  avatar delivers them in sync) and bounding the audio queue of continuous speech
  streams (``max_audio_lag``); see docs/republisher.md for the measurements;
- stamps every published frame with LiveKit frame metadata (``frame_id`` = publish
  sequence number, ``user_timestamp`` = wall-clock microseconds when the frame
  entered the republisher) so receivers can measure age and losses.

See docs/republisher.md for an example of dropping it into a pipeline.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import math
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
from livekit import rtc
from livekit.rtc._proto.video_frame_pb2 import FrameMetadata, VideoBufferType
from loguru import logger
from pipecat.audio.utils import create_stream_resampler, is_silence
from pipecat.frames.frames import (
    BotSpeakingFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    EndFrame,
    Frame,
    InterruptionFrame,
    LLMFullResponseStartFrame,
    OutputAudioRawFrame,
    OutputImageRawFrame,
    OutputTransportReadyFrame,
    SpeechOutputAudioRawFrame,
    StartFrame,
    TTSStartedFrame,
    TTSTextFrame,
    VADUserStartedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor, FrameProcessorSetup

from broadcaster.bot.avatar_frames import I420, I420AvatarFrame
from broadcaster.bot.vad import SpeechOnsetCancelledFrame, SpeechOnsetFrame

# --------------------------------------------------------------------------------------
# glibc malloc tuning
# --------------------------------------------------------------------------------------

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 16 * 1024 * 1024
TRIM_THRESHOLD_BYTES = 64 * 1024 * 1024
_malloc_tuned: bool | None = None


def tune_malloc() -> bool:
    """Stop glibc from mmap()ing and unmapping every video-frame-sized buffer.

    A 720p I420 frame is 1.38 MB, RGB24 2.76 MB: above glibc's default mmap
    threshold, so each allocation is a fresh mapping whose pages fault in on first
    touch (~10x the cost of the copy itself; see bench/republish_hop.py). Raising
    the mmap threshold to 16 MiB and the trim threshold to 64 MiB keeps those
    buffers in the heap and reuses them. ``mallopt`` works at run time, so no
    re-exec or ``MALLOC_*_`` environment is needed (both have the same effect).
    Idempotent; returns False where glibc is not available.
    """
    global _malloc_tuned
    if _malloc_tuned is not None:
        return _malloc_tuned
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
            libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
        )
    except (OSError, AttributeError):
        ok = False
    _malloc_tuned = ok
    if not ok:
        logger.debug("mallopt not available; video buffers may page-fault (not glibc?)")
    return ok


# --------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RepublishEncoding:
    """What the republished video track looks like on the wire.

    Default: ONE layer at the full size, ``max_bitrate`` 1.7 Mbps, ``max_framerate``
    = fps. Every viewer gets the full resolution from its first frame (with simulcast
    the SFU starts new viewers on the lowest layer and its bandwidth estimate can drop
    them to 360p on a busy host), and encoding costs ~25% less CPU.
    ``simulcast=True`` publishes the SDK's three layers for 16:9 instead: full size
    (capped at ``max_bitrate``), 640x360 and 320x180, so the SFU can serve viewers on
    weak links (bench/republish_cpu.py measures both).
    """

    width: int = 1280
    height: int = 720
    fps: float = 25.0
    codec: str = "VP8"
    max_bitrate: int = 1_700_000
    simulcast: bool = False
    scalability_mode: str = ""
    """SVC (``video_svc``, e.g. "L3T1"): one VP9 stream with spatial layers."""

    @classmethod
    def from_settings(cls, settings: Any, *, simulcast: bool = False) -> RepublishEncoding:
        """From ``broadcaster.config.Settings`` (video_width/height/fps/codec/max_bitrate/
        svc)."""
        svc = getattr(settings, "video_svc", "")
        return cls(
            width=settings.video_width,
            height=settings.video_height,
            fps=float(settings.video_fps),
            codec="VP9" if svc else settings.video_codec.upper(),
            max_bitrate=settings.video_max_bitrate,
            simulcast=simulcast,
            scalability_mode=svc,
        )

    def video_options(self) -> rtc.TrackPublishOptions:
        options = rtc.TrackPublishOptions(
            source=rtc.TrackSource.SOURCE_CAMERA,
            video_codec=rtc.VideoCodec.Value(self.codec.upper()),
            video_encoding=rtc.VideoEncoding(
                max_bitrate=self.max_bitrate, max_framerate=self.fps
            ),
            simulcast=self.simulcast,
        )
        if self.scalability_mode:
            options.scalability_mode = self.scalability_mode
        options.frame_metadata_features.extend(
            [rtc.FrameMetadataFeature.FMF_FRAME_ID, rtc.FrameMetadataFeature.FMF_USER_TIMESTAMP]
        )
        return options


def audio_options() -> rtc.TrackPublishOptions:
    """Microphone source; Opus with the SDK's defaults (as pipecat's own output)."""
    return rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)


# --------------------------------------------------------------------------------------
# Slate
# --------------------------------------------------------------------------------------

SLATE_RGB = (22, 27, 38)


def make_slate(width: int, height: int, text: str = "Reconnecting…") -> rtc.VideoFrame:
    """A plain card with ``text``, as an I420 frame (computed once, then reused)."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (width, height), SLATE_RGB)
    draw = ImageDraw.Draw(img)
    try:
        font: Any = ImageFont.load_default(size=max(12, height // 12))
    except TypeError:  # Pillow < 10.1 has no scalable default font
        font = ImageFont.load_default()
    draw.text((width / 2, height / 2), text, fill=(230, 230, 235), font=font, anchor="mm")
    rgb = rtc.VideoFrame(width, height, VideoBufferType.RGB24, img.tobytes())
    return rgb.convert(VideoBufferType.I420)


# --------------------------------------------------------------------------------------
# Pacing
# --------------------------------------------------------------------------------------


class Kind(Enum):
    REAL = "real"
    REPEAT = "repeat"
    SLATE = "slate"


@dataclass
class PacedFrame:
    """A frame waiting for (or past) its capture, with when it entered the republisher."""

    video: rtc.VideoFrame
    entered_ns: int
    entered_wall_us: int
    received_ns: int


class VideoPacer:
    """When to capture which frame; pure logic on a caller-supplied clock (seconds).

    - A frame that arrives is captured at once if a token is available (token bucket
      at ``fps``, capacity 2 frames: a frame that comes up to one interval early or a
      pair bunched by a hiccup pass without delay or loss, and the long-run rate never
      exceeds ``fps``).
    - Otherwise it waits as *pending*; a newer arrival replaces it (counted dropped),
      so a backlog collapses to its newest frame instead of being fast-forwarded (the
      viewer would show fast-forwarded frames for a millisecond each anyway).
    - With nothing captured for ``hold_frames`` intervals, the last frame is repeated
      every interval; ``slate_after`` seconds after the last real frame (or before the
      first one) the slate is shown instead. Repeats use no tokens but keep real frames
      at least half an interval apart from them.
    """

    CAPACITY = 2.0
    MIN_GAP_FRAMES = 0.5

    def __init__(self, fps: float, *, hold_frames: float = 2.0, slate_after: float = 2.0):
        self.interval = 1.0 / fps
        self.fps = fps
        self.hold = hold_frames * self.interval
        self.slate_after = slate_after
        self.tokens = self.CAPACITY
        self._refilled_at: float | None = None
        self.last_capture_at = -math.inf
        self.last_kind: Kind | None = None
        self.last_real_at: float | None = None
        self.last_real: PacedFrame | None = None
        self.pending: PacedFrame | None = None
        self.dropped = 0

    def _refill(self, now: float) -> None:
        if self._refilled_at is not None:
            self.tokens = min(self.CAPACITY, self.tokens + (now - self._refilled_at) * self.fps)
        self._refilled_at = now

    def _real_ready_at(self) -> float:
        need = max(0.0, 1.0 - self.tokens) * self.interval
        base = self._refilled_at if self._refilled_at is not None else -math.inf
        if self.last_kind is Kind.REAL:
            return base + need
        return max(base + need, self.last_capture_at + self.MIN_GAP_FRAMES * self.interval)

    def offer(self, item: PacedFrame, now: float) -> bool:
        """Queue a new frame; True when it should be captured right now."""
        self._refill(now)
        if self.pending is not None:
            self.dropped += 1
        self.pending = item
        return self._real_ready_at() <= now

    def next_due(self, now: float) -> float:
        """Monotonic time at which :meth:`poll` has something to do."""
        if self.pending is not None:
            self._refill(now)
            return self._real_ready_at()
        gap = self.hold if self.last_kind is Kind.REAL else self.interval
        return self.last_capture_at + gap

    def poll(self, now: float) -> tuple[Kind, PacedFrame | None] | None:
        """What to capture now, if anything: (kind, item); item None means the slate."""
        self._refill(now)
        if self.pending is not None:
            if self._real_ready_at() > now + 1e-4:
                return None
            item, self.pending = self.pending, None
            self.tokens -= 1.0
            self.last_real, self.last_real_at = item, now
            self._mark(now, Kind.REAL)
            return Kind.REAL, item
        if now + 1e-4 < self.next_due(now):
            return None
        if self.last_real is None or now - (self.last_real_at or now) >= self.slate_after:
            self._mark(now, Kind.SLATE)
            return Kind.SLATE, None
        self._mark(now, Kind.REPEAT)
        return Kind.REPEAT, self.last_real

    def _mark(self, now: float, kind: Kind) -> None:
        self.last_capture_at = now
        self.last_kind = kind


# --------------------------------------------------------------------------------------
# Counters
# --------------------------------------------------------------------------------------


@dataclass
class RepublisherStats:
    """Counters for metrics (plain attributes, read them any time)."""

    frames_in: int = 0
    frames_published: int = 0
    """Real frames captured (not repeats or slates)."""
    frames_repeated: int = 0
    frames_slate: int = 0
    frames_dropped: int = 0
    """Frames replaced by a newer one before their turn (backlog, faster than fps)."""
    frames_unsupported: int = 0
    audio_frames_in: int = 0
    audio_frames_published: int = 0
    audio_frames_dropped: int = 0
    """Continuous-speech frames dropped to keep audio within ``max_audio_lag`` of video."""
    audio_frames_muted: int = 0
    """Avatar speech frames published as silence: the tail of an interrupted answer."""
    last_hop_ms: float = 0.0
    """Last real frame: entry into the republisher -> capture_frame returned."""
    last_source_age_ms: float = 0.0
    """Last I420AvatarFrame: decoded frame reached Python (avatar client) -> captured;
    the whole in-process hop, pipeline transit included."""
    last_audio_lag_ms: float = 0.0
    """Last audio frame: entry -> handed to LiveKit, plus what LiveKit still queues."""
    stalled: bool = False
    """The source has not delivered a frame for ``slate_after`` seconds (slate shown)."""
    stalls: int = 0

    @property
    def frames_captured(self) -> int:
        return self.frames_published + self.frames_repeated + self.frames_slate


# --------------------------------------------------------------------------------------
# The processor
# --------------------------------------------------------------------------------------

RoomLike = Any  # rtc.Room | LiveKitTransport | Callable[[], rtc.Room]
_BUFFER_TYPES = {
    "RGB": (VideoBufferType.RGB24, 3.0),
    "RGBA": (VideoBufferType.RGBA, 4.0),
    "BGRA": (VideoBufferType.BGRA, 4.0),
    "ARGB": (VideoBufferType.ARGB, 4.0),
    I420: (VideoBufferType.I420, 1.5),
}
BOT_VAD_STOP_SECS = 0.35  # same as pipecat's output transport
BOT_SPEAKING_PERIOD = 0.2


def livekit_room(transport: Any) -> rtc.Room:
    """The ``rtc.Room`` of a pipecat ``LiveKitTransport`` (valid once it is set up).

    pipecat has no public accessor; ``transport._client.room`` is its client's room
    property (pipecat-ai 1.14).
    """
    return transport._client.room


class LiveKitRepublisher(FrameProcessor):
    """Publishes ``OutputImageRawFrame`` as a camera track and ``OutputAudioRawFrame``
    as a microphone track of one LiveKit participant.

    Args:
        room: the room to publish in, already connected (or connected by the time the
            StartFrame arrives): an ``rtc.Room``, a pipecat ``LiveKitTransport`` (its
            room is looked up at start, so the bot stays ONE participant), or a
            zero-argument callable returning the room.
        url, token: instead of ``room``, connect a room of our own (``setup`` connects,
            cleanup disconnects).
        encoding: video size/fps/codec/bitrate/simulcast; default 720p25 VP8 1.7 Mbps,
            one layer (``RepublishEncoding.from_settings(settings)`` for ours).
        hold_frames: repeat the last frame after this many frame intervals without one.
        slate_after: seconds without a real frame before the slate replaces the repeats;
            also fires ``on_video_stalled`` / ``on_video_resumed`` event handlers.
        slate_text: text of the slate card.
        audio_sample_rate, audio_channels: of the published audio (frames in other
            formats are resampled / remixed).
        max_audio_lag: bound (s) on how far continuous speech audio
            (``SpeechOutputAudioRawFrame``, the avatar's) may lag behind video before
            frames are dropped to restore lip sync; None disables. TTS audio
            (bursty, faster than real time) is never dropped.
        forward_media: also push the image/audio frames downstream (for a recorder);
            off by default so a downstream pipecat output does not publish them twice.
        bot_speaking_frames: emit Bot{Started,Stopped}SpeakingFrame (both directions)
            and BotSpeakingFrame (upstream, every 0.2 s) from the published audio, as
            pipecat's output transport would (default: when ``forward_media`` is off).
        exclusive_sources: unpublish any other camera/microphone track of the local
            participant (e.g. the silent "pipecat-audio" track every LiveKitTransport
            publishes) so viewers see exactly one of each.
        announce_ready: push ``OutputTransportReadyFrame`` upstream once published
            (``HeyGenVideoService`` drops avatar frames until one passes it).
        malloc_tuning: call :func:`tune_malloc` (process-wide) on construction.
        mute_on_speech_start: barge-in as early as the VAD allows. The avatar's speech
            ducks (published as silence) at a ``SpeechOnsetFrame`` and comes back at a
            ``SpeechOnsetCancelledFrame`` (a noise costs viewers ~50 ms of it); it is
            muted at a ``VADUserStartedSpeakingFrame`` rather than at pipecat's
            ``InterruptionFrame``, which goes round the pipeline task first (~40 ms
            later on 2 cores). Only for pipelines where every VAD start interrupts (a
            VAD user-turn start strategy, as in ours); with other strategies the
            avatar would go on mouthing a muted answer.
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
        self._video_track_name = video_track_name
        self._audio_track_name = audio_track_name
        self._slate_text = slate_text
        self._slates: dict[tuple[int, int], rtc.VideoFrame] = {}
        self._audio_rate = audio_sample_rate
        self._audio_channels = audio_channels
        self._audio_queue_ms = audio_queue_ms
        self._max_audio_lag = max_audio_lag
        self._forward = forward_media
        self._speaking_frames = (not forward_media) if bot_speaking_frames is None else (
            bot_speaking_frames
        )
        self._exclusive = exclusive_sources
        self._announce_ready = announce_ready
        self._mute_on_speech_start = mute_on_speech_start
        self._connect_timeout = connect_timeout
        if malloc_tuning:
            tune_malloc()

        self.stats = RepublisherStats()
        self.pacer = VideoPacer(self.encoding.fps, hold_frames=hold_frames,
                                slate_after=slate_after)
        self._video_source: rtc.VideoSource | None = None
        self._audio_source: rtc.AudioSource | None = None
        self._publications: list[rtc.LocalTrackPublication] = []
        self._metadata = FrameMetadata()
        self._frame_id = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = math.inf
        self._loop: asyncio.AbstractEventLoop | None = None
        self._audio_queue: asyncio.Queue[tuple[OutputAudioRawFrame, float]] | None = None
        self._audio_task: asyncio.Task | None = None
        self._audio_idle = False
        self._resampler = create_stream_resampler()
        self._speaking = False
        self._muted = False
        self._ducked = False
        self._speech_last = 0.0
        self._speaking_frame_at = 0.0
        self._warned_sizes: set[tuple[int, int]] = set()
        self._running = False
        self._listening = False

        self._register_event_handler("on_video_stalled")
        self._register_event_handler("on_video_resumed")

    # ---------------------------------------------------------------- properties
    @property
    def room(self) -> rtc.Room | None:
        return self._room

    @property
    def video_source(self) -> rtc.VideoSource | None:
        return self._video_source

    @property
    def audio_source(self) -> rtc.AudioSource | None:
        return self._audio_source

    def bind_sources(
        self, video_source: rtc.VideoSource, audio_source: rtc.AudioSource | None = None
    ) -> None:
        """Capture into sources you publish yourself, without a room (benchmarks, tests).

        Call from the event loop; frames offered with :meth:`offer_video` are then paced
        and captured exactly as when publishing.
        """
        self._loop = asyncio.get_running_loop()
        self._video_source = video_source
        self._audio_source = audio_source
        self._running = True

    # ---------------------------------------------------------------- lifecycle
    async def setup(self, setup: FrameProcessorSetup) -> None:
        await super().setup(setup)
        if self._url and self._token:
            self._own_room = rtc.Room()
            await self._own_room.connect(
                self._url, self._token, options=rtc.RoomOptions(auto_subscribe=False)
            )
            logger.info(f"{self}: connected to {self._own_room.name} as "
                        f"{self._own_room.local_participant.identity}")

    async def cleanup(self) -> None:
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
        if hasattr(arg, "_client"):  # pipecat LiveKitTransport
            return livekit_room(arg)
        if callable(arg):
            return arg()
        raise TypeError(f"room= must be an rtc.Room, a LiveKitTransport or a callable: {arg!r}")

    async def _connected_room(self) -> rtc.Room:
        """The room, once it exists and is connected (a transport may still be setting up)."""
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
        self._loop = asyncio.get_running_loop()
        room = self._room = await self._connected_room()
        enc = self.encoding
        self._video_source = rtc.VideoSource(enc.width, enc.height)
        self._audio_source = rtc.AudioSource(
            self._audio_rate, self._audio_channels, queue_size_ms=self._audio_queue_ms
        )
        video_track = rtc.LocalVideoTrack.create_video_track(
            self._video_track_name, self._video_source
        )
        audio_track = rtc.LocalAudioTrack.create_audio_track(
            self._audio_track_name, self._audio_source
        )
        participant = room.local_participant
        # publish_track hangs (does not raise) without the grant: bound it
        for track, options in ((video_track, enc.video_options()), (audio_track, audio_options())):
            pub = await asyncio.wait_for(
                participant.publish_track(track, options), timeout=self._connect_timeout
            )
            self._publications.append(pub)
        if self._exclusive:
            await self._unpublish_others()
            room.on("local_track_published", self._on_local_track_published)
            self._listening = True
        self._audio_queue = asyncio.Queue()
        self._audio_task = self.create_task(self._audio_loop(), f"{self}::audio")
        self._running = True
        self._arm(self._loop.time())  # slate until the first frame: the track is never empty
        logger.info(
            f"{self}: publishing {enc.width}x{enc.height}@{enc.fps:g} {enc.codec} "
            f"max {enc.max_bitrate} bps simulcast={enc.simulcast} + audio "
            f"{self._audio_rate} Hz as {participant.identity} in {room.name}"
        )
        if self._announce_ready:
            await self.push_frame(OutputTransportReadyFrame(), FrameDirection.UPSTREAM)

    def _ours(self, sid: str) -> bool:
        return any(p.sid == sid for p in self._publications)

    async def _unpublish_others(self) -> None:
        assert self._room is not None
        wanted = (rtc.TrackSource.SOURCE_CAMERA, rtc.TrackSource.SOURCE_MICROPHONE)
        for sid, pub in list(self._room.local_participant.track_publications.items()):
            if not self._ours(sid) and pub.source in wanted:
                logger.info(f"{self}: unpublishing {pub.name!r} ({sid}): the avatar's replaces it")
                await self._room.local_participant.unpublish_track(sid)

    def _on_local_track_published(self, publication: rtc.LocalTrackPublication, _: Any) -> None:
        if self._running and not self._ours(publication.sid):
            self.create_task(self._unpublish_others(), f"{self}::unpublish")

    async def _stop(self, *, graceful: bool) -> None:
        if graceful and self._running and self._audio_queue is not None:
            try:  # let queued speech play out, bounded
                async with asyncio.timeout(3.0):
                    while not self._audio_queue.empty():
                        await asyncio.sleep(0.02)
                    if self._audio_source is not None:
                        await self._audio_source.wait_for_playout()
            except TimeoutError:
                pass
        await self._teardown()

    async def _teardown(self) -> None:
        self._running = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._audio_task is not None:
            await self.cancel_task(self._audio_task)
            self._audio_task = None
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
        if isinstance(frame, EndFrame):
            await self._stop(graceful=True)
            await self.push_frame(frame, direction)
            return
        if isinstance(frame, CancelFrame):
            await self._stop(graceful=False)
            await self.push_frame(frame, direction)
            return
        if direction is FrameDirection.DOWNSTREAM:
            if isinstance(frame, OutputImageRawFrame):
                self.offer_video(frame)
                if self._forward:
                    await self.push_frame(frame, direction)
                return
            if isinstance(frame, OutputAudioRawFrame):
                self.stats.audio_frames_in += 1
                queue = self._audio_queue
                if (self._muted or self._ducked) and isinstance(frame,
                                                                SpeechOutputAudioRawFrame):
                    # The tail of an interrupted answer: published (and recorded) as
                    # silence, not left out. Without packets a viewer's jitter buffer
                    # conceals the gap by stretching the last speech (~50 ms more voice).
                    self.stats.audio_frames_muted += 1
                    frame = SpeechOutputAudioRawFrame(
                        audio=bytes(len(frame.audio)), sample_rate=frame.sample_rate,
                        num_channels=frame.num_channels)
                if self._running and queue is not None:
                    if self._audio_idle and queue.empty() and self._audio_fits(frame):
                        await self._publish_audio(frame, time.monotonic())  # no task hop
                    else:  # keep order behind what is queued; never block video on audio
                        queue.put_nowait((frame, time.monotonic()))
                if self._forward:
                    await self.push_frame(frame, direction)
                return
            if isinstance(frame, InterruptionFrame) or (
                self._mute_on_speech_start and isinstance(frame, VADUserStartedSpeakingFrame)
            ):
                self._interrupt(frame)
            elif self._mute_on_speech_start and isinstance(frame, SpeechOnsetFrame):
                # The speaker may be barging in: silence what is about to play. Our own
                # queue (TTS bursts, not the avatar's real-time speech) is kept until
                # the VAD decides.
                self._ducked = True
                if self._audio_source is not None:
                    self._audio_source.clear_queue()
            elif isinstance(frame, SpeechOnsetCancelledFrame):
                self._ducked = False
            elif isinstance(frame, (LLMFullResponseStartFrame, TTSStartedFrame, TTSTextFrame)):
                self._muted = False
        await self.push_frame(frame, direction)

    # ---------------------------------------------------------------- video
    def _to_livekit(self, frame: OutputImageRawFrame) -> rtc.VideoFrame | None:
        if isinstance(frame, I420AvatarFrame) and frame.video_frame is not None:
            return frame.video_frame
        buffer = _BUFFER_TYPES.get(frame.format or "")
        width, height = frame.size
        if buffer is None or len(frame.image) != int(width * height * buffer[1]):
            # LiveKit reads w*h*bpp bytes without checking: a short buffer would crash
            self.stats.frames_unsupported += 1
            if self.stats.frames_unsupported == 1:
                logger.error(f"{self}: unsupported image {frame.format!r} {frame.size} "
                             f"({len(frame.image)} bytes); dropping such frames")
            return None
        return rtc.VideoFrame(width, height, buffer[0], frame.image)

    def offer_video(self, frame: OutputImageRawFrame) -> None:
        """Hand a frame to the pacer; captured right away unless over the frame rate."""
        self.stats.frames_in += 1
        video = self._to_livekit(frame)
        if video is None or not self._running or self._loop is None:
            return
        size = (video.width, video.height)
        if size != (self.encoding.width, self.encoding.height) and size not in self._warned_sizes:
            self._warned_sizes.add(size)  # published as is: scaling would cost 10+ ms/frame
            logger.warning(f"{self}: source frames are {size[0]}x{size[1]}, configured "
                           f"{self.encoding.width}x{self.encoding.height}; publishing as is")
        received = frame.received_ns if isinstance(frame, I420AvatarFrame) else 0
        item = PacedFrame(video, time.monotonic_ns(), time.time_ns() // 1000, received)
        now = self._loop.time()
        if self.pacer.offer(item, now):
            self._poll(now)
        else:
            self._arm(self.pacer.next_due(now))
        self.stats.frames_dropped = self.pacer.dropped

    def _arm(self, when: float) -> None:
        """Make sure the timer fires no later than ``when`` (loop time)."""
        if self._loop is None or not self._running:
            return
        if self._timer is not None and self._timer_when <= when + 1e-4:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(when, self._on_timer)
        self._timer_when = when

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_when = math.inf
        if not self._running or self._loop is None:
            return
        now = self._loop.time()
        self._poll(now)
        self._arm(self.pacer.next_due(now))

    def _poll(self, now: float) -> None:
        decision = self.pacer.poll(now)
        if decision is None:
            return
        kind, item = decision
        try:
            self._capture(kind, item)
        except Exception as e:  # never let one capture kill the timer chain
            logger.error(f"{self}: capture failed: {e}")
        was_stalled = self.stats.stalled
        if kind is Kind.SLATE and self.pacer.last_real is not None and not was_stalled:
            self.stats.stalled = True
            self.stats.stalls += 1
            logger.warning(f"{self}: no avatar video for {self.pacer.slate_after:g}s: slate")
            self._fire("on_video_stalled")
        elif kind is Kind.REAL and was_stalled:
            self.stats.stalled = False
            logger.info(f"{self}: avatar video resumed")
            self._fire("on_video_resumed")

    def _fire(self, event: str) -> None:
        try:
            self.create_task(self._call_event_handler(event), f"{self}::{event}")
        except Exception as e:  # not set up in a pipeline (bind_sources): no handlers
            logger.debug(f"{self}: {event} not dispatched: {e}")

    def _capture(self, kind: Kind, item: PacedFrame | None) -> None:
        source = self._video_source
        if source is None:
            return
        self._frame_id += 1
        meta = self._metadata
        meta.frame_id = self._frame_id
        if kind is Kind.SLATE or item is None:
            video = self._slate()
            meta.user_timestamp = time.time_ns() // 1000
        else:
            video = item.video
            meta.user_timestamp = (
                item.entered_wall_us if kind is Kind.REAL else time.time_ns() // 1000
            )
        source.capture_frame(video, metadata=meta)
        stats = self.stats
        if kind is Kind.REAL and item is not None:
            stats.frames_published += 1
            done_ns = time.monotonic_ns()
            stats.last_hop_ms = (done_ns - item.entered_ns) / 1e6
            if item.received_ns:
                stats.last_source_age_ms = (done_ns - item.received_ns) / 1e6
        elif kind is Kind.REPEAT:
            stats.frames_repeated += 1
        else:
            stats.frames_slate += 1

    def _slate(self) -> rtc.VideoFrame:
        last = self.pacer.last_real
        size = (last.video.width, last.video.height) if last else (
            self.encoding.width, self.encoding.height)
        slate = self._slates.get(size)
        if slate is None:
            slate = self._slates[size] = make_slate(size[0], size[1], self._slate_text)
        return slate

    # ---------------------------------------------------------------- audio
    def _interrupt(self, frame: Frame) -> None:
        """Stop the avatar's speech for viewers: drop what is queued and mute.

        The avatar keeps sending the interrupted answer for a moment (audio in flight);
        viewers must not hear it, so speech stays muted until the next answer starts."""
        if not self._muted and (self._speaking or not self._speaking_frames):
            logger.info(f"{self}: {type(frame).__name__}: the avatar's speech is muted "
                        "until its next answer")
        self._clear_audio()
        self._muted, self._ducked = True, False

    def _clear_audio(self) -> None:
        if self._audio_queue is not None:
            while not self._audio_queue.empty():
                self._audio_queue.get_nowait()
        if self._audio_source is not None:
            self._audio_source.clear_queue()

    async def _pcm_for_source(self, frame: OutputAudioRawFrame) -> bytes:
        audio = frame.audio
        if frame.num_channels != self._audio_channels:
            samples = np.frombuffer(audio, np.int16).reshape(-1, frame.num_channels)
            mono = samples.mean(axis=1).astype(np.int16)
            audio = np.repeat(mono[:, None], self._audio_channels, axis=1).tobytes()
        if frame.sample_rate != self._audio_rate:
            audio = await self._resampler.resample(audio, frame.sample_rate, self._audio_rate)
        return audio

    async def _audio_loop(self) -> None:
        """Publishes what could not go inline (TTS bursts that fill LiveKit's queue)."""
        assert self._audio_queue is not None
        while True:
            self._audio_idle = True
            frame, entered = await self._audio_queue.get()
            self._audio_idle = False
            await self._publish_audio(frame, entered)

    def _audio_fits(self, frame: OutputAudioRawFrame) -> bool:
        """LiveKit's audio queue takes this frame without waiting (so it can go inline)."""
        source = self._audio_source
        if source is None or frame.sample_rate <= 0:
            return False
        duration = frame.num_frames / frame.sample_rate
        return source.queued_duration + duration < self._audio_queue_ms / 1000 - 0.05

    async def _publish_audio(self, frame: OutputAudioRawFrame, entered: float) -> None:
        source = self._audio_source
        if source is None:
            return
        lag = time.monotonic() - entered + source.queued_duration
        self.stats.last_audio_lag_ms = lag * 1e3
        if (
            self._max_audio_lag is not None
            and isinstance(frame, SpeechOutputAudioRawFrame)
            and lag > self._max_audio_lag
        ):
            self.stats.audio_frames_dropped += 1
            return
        if frame.sample_rate == self._audio_rate and frame.num_channels == self._audio_channels:
            pcm = frame.audio  # the avatar's 48 kHz mono: as is
        else:
            pcm = await self._pcm_for_source(frame)
        samples = len(pcm) // (2 * self._audio_channels)
        if samples == 0:
            return
        try:
            await source.capture_frame(
                rtc.AudioFrame(pcm, self._audio_rate, self._audio_channels, samples)
            )
        except Exception as e:
            logger.error(f"{self}: audio capture failed: {e}")
            return
        self.stats.audio_frames_published += 1
        if self._speaking_frames:
            signal = self._speaking_signal(pcm)
            if signal is BotSpeakingFrame:
                # 5 per second: upstream only, where its consumers are (the worker's
                # idle timer, user-turn strategies); halves its pipeline cost
                await self.push_frame(BotSpeakingFrame(), FrameDirection.UPSTREAM)
            elif signal is not None:
                await self.broadcast_frame(signal)

    def _speaking_signal(self, pcm: bytes) -> type[Frame] | None:
        """pipecat's output-transport bot-speaking signals, from what we publish."""
        now = time.monotonic()
        if not is_silence(pcm):
            self._speech_last = now
            if not self._speaking:
                self._speaking = True
                return BotStartedSpeakingFrame
            if now - self._speaking_frame_at >= BOT_SPEAKING_PERIOD:
                self._speaking_frame_at = now
                return BotSpeakingFrame
        elif self._speaking and now - self._speech_last > BOT_VAD_STOP_SECS:
            self._speaking = False
            return BotStoppedSpeakingFrame
        return None
