"""Record the broadcast as viewers see it: one MP4 (H.264 + AAC) written with PyAV.

:class:`Recorder` is a pipecat ``FrameProcessor`` for the end of the pipeline::

    ... → HeyGenVideoService → LiveKitRepublisher(forward_media=True) → Recorder

It records

- the avatar's video (``OutputImageRawFrame``; :class:`~broadcaster.frames.I420AvatarFrame`
  planes go to the encoder as they are: no RGB, no copy),
- the avatar's speech (``SpeechOutputAudioRawFrame``, 48 kHz mono) and any other
  ``OutputAudioRawFrame`` that reaches it (e.g. TTS audio in a pipeline with no avatar),
- the current speaker's voice (``InputAudioRawFrame`` / ``UserAudioRawFrame``: the
  speaker gate lets only the speaker's audio through, and pipecat's STT passes audio
  on by default), resampled to 48 kHz and mixed with the avatar's.

Timing: every frame is stamped with ``time.monotonic()`` when it reaches the recorder
(one clock for audio and video, so the file keeps the sync the republisher publishes
with). Video goes on a constant-rate grid at ``fps`` (:class:`VideoClock`: snapped to
the nearest slot within half a frame, re-anchored after a gap, frames faster than
``fps`` dropped); each audio source is laid on a continuous sample timeline
(:class:`AudioMixer`: jitter absorbed, silence in gaps, sources summed). Time 0 of
the file is the first video frame.

Encoding runs in a worker thread behind a bounded queue: the pipeline never waits
for the encoder; when it falls behind, new frames are dropped and counted
(:class:`RecorderStats`). ``EndFrame`` / ``CancelFrame`` drain the queue and close
the file (moov atom written). The file is written as ``<name>.mp4.part`` and renamed
to ``<name>.mp4`` when complete, with a ``<name>.json`` sidecar (wall-clock start,
duration, counters) and a ``<name>.vtt`` of the session's captions when a captions
file is given.

See docs/recording.md for the design and the measurements.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import soxr
from loguru import logger
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
    OutputImageRawFrame,
    SpeechOutputAudioRawFrame,
    UserAudioRawFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from broadcaster.frames import I420

AUDIO_RATE = 48_000
VIDEO_TIME_BASE = Fraction(1, 90_000)
AUDIO_TIME_BASE = Fraction(1, AUDIO_RATE)
_PACKED_FORMATS = {"RGB": ("rgb24", 3), "RGBA": ("rgba", 4), "BGRA": ("bgra", 4),
                   "ARGB": ("argb", 4)}


# --------------------------------------------------------------------------------------
# Counters
# --------------------------------------------------------------------------------------


@dataclass
class RecorderStats:
    """Counters (plain attributes; written by the event loop and the worker thread)."""

    video_frames_in: int = 0
    video_frames_encoded: int = 0
    """Frames handed to the encoder (the final hold frame included)."""
    video_frames_dropped_rate: int = 0
    """Arrived faster than ``fps`` (more than half a frame ahead of the next slot)."""
    video_frames_dropped_backlog: int = 0
    """The encoder had fallen ``max_backlog_seconds`` behind: dropped, never queued."""
    video_frames_unsupported: int = 0
    video_frames_rescaled: int = 0
    """Frames whose size differed from the first frame's (scaled to it)."""
    video_gaps: int = 0
    """Times the video grid was re-anchored after a pause (the last frame is held)."""
    audio_chunks_in: int = 0
    audio_chunks_before_start: int = 0
    """Audio before the first video frame (time 0 of the file): not recorded."""
    audio_chunks_dropped_backlog: int = 0
    audio_chunks_dropped_lead: int = 0
    """Live audio arriving faster than real time by more than ``max_audio_lead``."""
    audio_realigned: int = 0
    """Times a live audio source's timeline was moved back onto its arrivals."""
    audio_late_ms: float = 0.0
    """Audio that arrived after its part of the timeline had been encoded (lost)."""
    queue_high_water: int = 0
    encode_ms_total: float = 0.0
    """Worker wall time spent converting + encoding + muxing video frames."""
    encode_ms_max: float = 0.0
    duration_s: float = 0.0
    size_bytes: int = 0
    error: str | None = None

    @property
    def encode_ms_per_frame(self) -> float:
        frames = self.video_frames_encoded
        return self.encode_ms_total / frames if frames else 0.0


# --------------------------------------------------------------------------------------
# Timing (pure logic, seconds)
# --------------------------------------------------------------------------------------


class VideoClock:
    """Presentation times for video frames on a constant-rate grid, from arrival times.

    The first frame defines time 0. A frame arriving within half a frame of the next
    slot takes that slot (a steady stream with jitter becomes exactly ``fps``); one
    arriving later than that starts a new grid at its arrival time (a pause: players
    hold the previous frame, as the republisher repeats it); one arriving more than
    half a frame before the next slot is dropped (faster than ``fps``). A frame's time
    is therefore never more than half a frame from its arrival.
    """

    def __init__(self, fps: float) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.fps = fps
        self.interval = 1.0 / fps
        self.t0: float | None = None
        self._anchor = 0.0
        self._slot = 0
        self.last: float | None = None
        self.dropped = 0
        self.gaps = 0

    def place(self, t: float) -> float | None:
        """Seconds since time 0 for a frame that arrived at monotonic ``t``; None: drop."""
        if self.t0 is None:
            self.t0 = t
            self.last = 0.0
            return 0.0
        rel = t - self.t0
        half = 0.5 * self.interval
        nxt = self._anchor + (self._slot + 1) * self.interval
        if rel < nxt - half:
            self.dropped += 1
            return None
        if rel <= nxt + half:
            self._slot += 1
            pts = nxt
        else:
            self.gaps += 1
            self._anchor, self._slot = rel, 0
            pts = rel
        self.last = pts
        return pts


def _resampler(in_rate: int) -> Any:
    if in_rate == AUDIO_RATE:
        return None
    return soxr.ResampleStream(in_rate, AUDIO_RATE, 1, dtype="float32", quality="HQ")


class _Source:
    """One audio stream on the mixer's timeline."""

    def __init__(self, live: bool, in_rate: int) -> None:
        self.live = live
        self.in_rate = in_rate
        self.cursor: int | None = None
        """Where the source's next sample goes (sample index)."""
        self.chunks: deque[tuple[int, np.ndarray]] = deque()
        self.resampler = _resampler(in_rate)
        self.last_seen = 0
        self.window_start = 0
        self.window_min: int | None = None


class AudioMixer:
    """Lays audio chunks from several sources on one continuous 48 kHz timeline.

    Each chunk comes with its arrival time (seconds since time 0). A source's chunks
    follow each other without gaps, so arrival jitter and short stalls of the
    pipeline (the backlog then arrives in a burst) leave no trace; a chunk arriving
    more than ``gap_tolerance`` after the source's timeline starts where it arrived
    (silence in between: the source paused).

    Live sources (a microphone, the avatar's stream) play in real time, so their
    timeline is kept on their arrivals: once per ``servo_window`` of arrivals, the
    smallest (arrival - position) of its chunks measures how far the source has
    drifted (a pause shorter than ``gap_tolerance``, a backlog placed after a long
    stall, clock drift); beyond ``deadband`` the source's timeline is moved by that
    much (silence inserted, or the newest samples dropped). Live chunks more than
    ``max_lead`` ahead of their arrival are dropped at once.

    Playout sources (TTS audio, delivered faster than real time) queue up behind each
    other like a player would; :meth:`cut` drops what they have queued beyond a point
    (an interruption).

    :meth:`mix` returns the sum of all sources up to a sample index, as float32
    clipped to [-1, 1], with silence wherever nothing played.
    """

    def __init__(self, *, gap_tolerance: float = 1.0, max_lead: float = 1.0,
                 servo_window: float = 1.0, deadband: float = 0.03,
                 forget_after: float = 30.0) -> None:
        self.gap_tolerance = round(gap_tolerance * AUDIO_RATE)
        self.max_lead = round(max_lead * AUDIO_RATE)
        self.servo_window = round(servo_window * AUDIO_RATE)
        self.deadband = round(deadband * AUDIO_RATE)
        self.forget_after = round(forget_after * AUDIO_RATE)
        self.sources: dict[Any, _Source] = {}
        self.flushed = 0
        """Samples [0, flushed) have been mixed and handed out."""
        self.late_samples = 0
        self.dropped_lead = 0
        self.realigned = 0
        """Servo corrections of live sources."""

    def add(self, key: Any, t: float, pcm: np.ndarray, in_rate: int, *, live: bool) -> None:
        """Add mono int16 ``pcm`` at ``in_rate`` Hz that arrived ``t`` s after time 0."""
        src = self.sources.get(key)
        if src is None or src.in_rate != in_rate:
            src = self.sources[key] = _Source(live, in_rate)
        arrival = round(t * AUDIO_RATE)
        src.last_seen = arrival
        if src.cursor is None or arrival - src.cursor > self.gap_tolerance:
            if src.cursor is not None:
                src.resampler = _resampler(in_rate)  # no old tail in the new spurt
            src.cursor = max(arrival, self.flushed)
            src.window_start, src.window_min = arrival, None
        elif src.live and src.cursor - arrival > self.max_lead:
            self.dropped_lead += 1
            return
        samples = pcm.astype(np.float32) * (1.0 / 32768.0)
        if src.resampler is not None:
            # soxr holds back ~20 ms; the output stays contiguous from the first
            # arrival, so positions are unaffected
            samples = src.resampler.resample_chunk(samples)
        n = len(samples)
        start = src.cursor
        if src.live:
            offset = arrival - start
            src.window_min = offset if src.window_min is None else min(src.window_min, offset)
        if n:
            src.cursor = start + n
            if start < self.flushed:
                self.late_samples += min(n, self.flushed - start)
            if start + n > self.flushed:
                src.chunks.append((start, samples))
        if src.live and arrival - src.window_start >= self.servo_window:
            drift = src.window_min or 0
            if abs(drift) > self.deadband:
                self._move(src, drift)
            src.window_start, src.window_min = arrival, None

    def _move(self, src: _Source, by: int) -> None:
        """Move a source's timeline by ``by`` samples (>0: later, silence; <0: earlier)."""
        assert src.cursor is not None
        target = max(src.cursor + by, self.flushed)
        if target < src.cursor:
            self._truncate(src, target)
        src.cursor = target
        self.realigned += 1

    @staticmethod
    def _truncate(src: _Source, at: int) -> None:
        while src.chunks:
            start, data = src.chunks[-1]
            if start >= at:
                src.chunks.pop()
                continue
            if start + len(data) > at:
                src.chunks[-1] = (start, data[: at - start])
            break

    def cut(self, t: float) -> None:
        """Drop what playout sources have queued after ``t`` s (an interruption)."""
        at = max(round(t * AUDIO_RATE), self.flushed)
        for src in self.sources.values():
            if src.live or src.cursor is None or src.cursor <= at:
                continue
            self._truncate(src, at)
            src.cursor = at

    def horizon(self) -> int:
        """The end of everything queued (sample index)."""
        ends = [s.chunks[-1][0] + len(s.chunks[-1][1]) for s in self.sources.values() if s.chunks]
        return max(ends, default=self.flushed)

    def mix(self, until: int) -> np.ndarray | None:
        """Samples [flushed, until) of the mix (float32), or None if there are none."""
        n = until - self.flushed
        if n <= 0:
            return None
        out = np.zeros(n, np.float32)
        base = self.flushed
        for key, src in list(self.sources.items()):
            chunks = src.chunks
            while chunks:
                start, data = chunks[0]
                end = start + len(data)
                if start >= until:
                    break
                lo, hi = max(start, base), min(end, until)
                if hi > lo:
                    out[lo - base : hi - base] += data[lo - start : hi - start]
                if end > until:
                    break
                chunks.popleft()
            if not chunks and until - src.last_seen > self.forget_after:
                del self.sources[key]  # e.g. a former speaker
        self.flushed = until
        np.clip(out, -1.0, 1.0, out=out)
        return out


# --------------------------------------------------------------------------------------
# Frames → PyAV
# --------------------------------------------------------------------------------------


def to_av_frame(frame: OutputImageRawFrame) -> av.VideoFrame | None:
    """A PyAV frame over the image's own buffer (no copy), or None if unsupported.

    I420 with even sizes is wrapped as ``yuv420p`` directly (Y, U, V planes back to
    back, as LiveKit and :class:`I420AvatarFrame` lay them out); odd sizes are copied
    plane by plane. RGB/RGBA/BGRA/ARGB are wrapped too (the encoder's scaler converts
    them, at a cost: I420 is the fast path).
    """
    width, height = frame.size
    if width <= 0 or height <= 0:
        return None
    buf = np.frombuffer(frame.image, np.uint8)
    fmt = frame.format or ""
    if fmt == I420:
        cw, ch = (width + 1) // 2, (height + 1) // 2
        if len(buf) != width * height + 2 * cw * ch:
            return None
        if width % 2 == 0 and height % 2 == 0:
            return av.VideoFrame.from_numpy_buffer(
                buf.reshape(height * 3 // 2, width), format="yuv420p"
            )
        vf = av.VideoFrame(width, height, "yuv420p")
        planes = (
            buf[: width * height].reshape(height, width),
            buf[width * height : width * height + cw * ch].reshape(ch, cw),
            buf[width * height + cw * ch :].reshape(ch, cw),
        )
        for plane, src in zip(vf.planes, planes, strict=True):
            dst = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
            dst[: src.shape[0], : src.shape[1]] = src
        return vf
    packed = _PACKED_FORMATS.get(fmt)
    if packed is None or len(buf) != width * height * packed[1]:
        return None
    return av.VideoFrame.from_numpy_buffer(buf.reshape(height, width, packed[1]),
                                           format=packed[0])


def _pcm_mono(frame: Any) -> np.ndarray:
    """int16 mono samples of a pipecat audio frame (channels averaged)."""
    audio = frame.audio
    pcm = np.frombuffer(audio, np.int16, count=len(audio) // 2)
    channels = max(1, int(frame.num_channels or 1))
    if channels > 1:
        pcm = pcm[: len(pcm) // channels * channels].reshape(-1, channels).mean(axis=1)
    return pcm


# --------------------------------------------------------------------------------------
# The writer (worker thread only)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordingOptions:
    """How the MP4 is encoded."""

    fps: float = 25.0
    preset: str = "veryfast"
    crf: int = 23
    threads: int = 1
    """x264 threads (0: x264 decides, 1.5x the cores). One is the least CPU per frame and
    keeps up with 720p25 at ``veryfast`` (about 5 ms a frame) in its own thread."""
    keyframe_seconds: float = 2.0
    audio_bitrate: int = 96_000
    fragmented: bool = False
    """Fragmented MP4 (``frag_keyframe+empty_moov``): the ``.part`` file stays playable
    up to its last fragment even if the process dies before closing it."""


class _Writer:
    """Owns the container and the encoders; every method runs in the worker thread."""

    def __init__(self, path: Path, width: int, height: int, options: RecordingOptions,
                 stats: RecorderStats, metadata: dict[str, str]) -> None:
        self.path = path
        self.options = options
        self.stats = stats
        self.width, self.height = width & ~1, height & ~1
        path.parent.mkdir(parents=True, exist_ok=True)
        container_options = {}
        if options.fragmented:
            container_options["movflags"] = "frag_keyframe+empty_moov+default_base_moof"
        self.container = av.open(str(path), "w", format="mp4", options=container_options)
        for key, value in metadata.items():
            self.container.metadata[key] = value
        rate = Fraction(options.fps).limit_denominator(1001)
        video = self.container.add_stream(
            "libx264", rate=rate, options={"preset": options.preset, "crf": str(options.crf)}
        )
        video.width, video.height = self.width, self.height
        video.pix_fmt = "yuv420p"
        video.time_base = VIDEO_TIME_BASE
        video.codec_context.time_base = VIDEO_TIME_BASE
        video.codec_context.gop_size = max(1, round(options.keyframe_seconds * options.fps))
        # No B-frames: decode order = presentation order, so a pause in the video (or the
        # final hold frame) keeps its length in the MP4 track (see docs/recording.md).
        video.codec_context.max_b_frames = 0
        video.codec_context.thread_count = options.threads
        self.video = video
        audio = self.container.add_stream("aac", rate=AUDIO_RATE)
        audio.codec_context.layout = "mono"
        audio.codec_context.bit_rate = options.audio_bitrate
        audio.time_base = AUDIO_TIME_BASE
        self.audio = audio
        self.last_video: av.VideoFrame | None = None
        self.last_pts = -1
        self.audio_samples = 0

    def encode_video(self, pts_s: float, vf: av.VideoFrame) -> None:
        if (vf.width, vf.height) != (self.width, self.height) or vf.format.name != "yuv420p":
            if (vf.width, vf.height) != (self.width, self.height):
                self.stats.video_frames_rescaled += 1
                if self.stats.video_frames_rescaled == 1:
                    logger.warning(f"recorder: frames are now {vf.width}x{vf.height}; scaling "
                                   f"to the recording's {self.width}x{self.height}")
            vf = vf.reformat(width=self.width, height=self.height, format="yuv420p")
        pts = max(round(pts_s / VIDEO_TIME_BASE), self.last_pts + 1)
        vf.pts = pts
        vf.time_base = VIDEO_TIME_BASE
        self.container.mux(self.video.encode(vf))
        self.last_pts = pts
        self.last_video = vf
        self.stats.video_frames_encoded += 1

    def encode_audio(self, samples: np.ndarray) -> None:
        af = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="fltp", layout="mono")
        af.sample_rate = AUDIO_RATE
        af.pts = self.audio_samples
        af.time_base = AUDIO_TIME_BASE
        self.audio_samples += len(samples)
        self.container.mux(self.audio.encode(af))

    def close(self, end_s: float) -> None:
        """Hold the last picture until ``end_s``, flush both encoders, write the index."""
        interval = 1.0 / self.options.fps
        if self.last_video is not None:
            last_s = float(self.last_pts * VIDEO_TIME_BASE)
            if end_s - last_s > 1.5 * interval:  # one more sample so the track lasts
                self.encode_video(end_s - interval, self.last_video)
        self.container.mux(self.video.encode(None))
        self.container.mux(self.audio.encode(None))
        self.container.close()


# --------------------------------------------------------------------------------------
# The processor
# --------------------------------------------------------------------------------------


def safe_name(room: str) -> str:
    """``room`` as one path component."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", room).strip("._") or "room"


def recording_dir(recordings_dir: str | Path, room: str) -> Path:
    """Where the recordings of ``room`` go: ``<recordings_dir>/<room>/``."""
    return Path(recordings_dir) / safe_name(room)


_VIDEO, _AUDIO, _CUT, _END = "video", "audio", "cut", "end"


class Recorder(FrameProcessor):
    """Records the avatar's video and the mixed avatar + speaker audio to an MP4.

    Args:
        directory: the file is ``<directory>/<UTC start, YYYYmmddTHHMMSSZ>.mp4``.
        path: or this exact file instead (parents created).
        options: encoding (:class:`RecordingOptions`; ``fps`` is the video grid).
        record_input_audio: mix in ``InputAudioRawFrame`` (the speaker's voice).
        record_output_audio: mix in ``OutputAudioRawFrame`` (the avatar's speech).
        forward_media: also push image/audio output frames on downstream (off: the
            recorder is their last stop). Input audio and every other frame always pass.
        max_backlog_seconds: bound on the encoder's queue, in seconds of video; frames
            arriving while it is full are dropped and counted.
        audio_window: how long (s) the audio timeline stays open for late chunks
            before it is mixed and encoded.
        gap_tolerance, max_audio_lead: see :class:`AudioMixer`.
        captions_path: the session's ``captions.jsonl``; its lines within the
            recording are written next to it as ``<name>.vtt``.
        metadata: extra MP4 metadata tags (``title``, ``comment``...).
        finalize_timeout: bound (s) on draining the queue and closing the file.

    Events: ``on_recording_started(recorder, path)``,
    ``on_recording_finished(recorder, path, stats)`` (path None when it failed).
    """

    def __init__(
        self,
        *,
        directory: str | Path | None = None,
        path: str | Path | None = None,
        options: RecordingOptions | None = None,
        record_input_audio: bool = True,
        record_output_audio: bool = True,
        forward_media: bool = False,
        max_backlog_seconds: float = 1.0,
        audio_window: float = 1.5,
        gap_tolerance: float = 1.0,
        max_audio_lead: float = 1.0,
        captions_path: str | Path | None = None,
        metadata: dict[str, str] | None = None,
        finalize_timeout: float = 15.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (directory is None) == (path is None):
            raise ValueError("give either directory= or path=")
        if audio_window <= gap_tolerance:
            raise ValueError("audio_window must be longer than gap_tolerance")
        self._directory = Path(directory) if directory is not None else None
        self._fixed_path = Path(path) if path is not None else None
        self.options = options or RecordingOptions()
        self._record_input = record_input_audio
        self._record_output = record_output_audio
        self._forward = forward_media
        self._max_video_items = max(2, math.ceil(max_backlog_seconds * self.options.fps))
        self._max_audio_items = max(100, math.ceil(max_backlog_seconds * 400))
        self._audio_window = audio_window
        self._gap_tolerance = gap_tolerance
        self._max_audio_lead = max_audio_lead
        self._captions_path = Path(captions_path) if captions_path else None
        self._metadata = dict(metadata or {})
        self._finalize_timeout = finalize_timeout

        self.stats = RecorderStats()
        self.clock = VideoClock(self.options.fps)
        self.path: Path | None = None
        """The finished file (set when recording starts; complete once finished)."""
        self.started_at: datetime | None = None
        """Wall-clock (UTC) time of the file's time 0."""
        self.size = (0, 0)
        """The recording's picture size (the first frame's, rounded down to even)."""
        self._cond = threading.Condition()
        self._items: deque[tuple[Any, ...]] = deque()
        self._video_items = 0
        self._audio_items = 0
        self._thread: threading.Thread | None = None
        self._finished = False
        self._last_media_at = 0.0

        self._register_event_handler("on_recording_started")
        self._register_event_handler("on_recording_finished")

    @classmethod
    def for_session(cls, settings: Any, room: str, **kwargs: Any) -> Recorder:
        """``<recordings_dir>/<room>/<UTC>.mp4`` at the stream's fps, captions beside it."""
        from broadcaster.bot.captions import captions_path

        kwargs.setdefault("options", RecordingOptions(fps=float(settings.video_fps)))
        kwargs.setdefault("captions_path", captions_path(settings, room))
        kwargs.setdefault("metadata", {"title": f"broadcaster: {room}"})
        return cls(directory=recording_dir(settings.recordings_dir, room), **kwargs)

    @property
    def partial_path(self) -> Path | None:
        """Where the file is written until it is complete."""
        return self.path.with_name(self.path.name + ".part") if self.path else None

    @property
    def recording(self) -> bool:
        return self._thread is not None and not self._finished

    # ---------------------------------------------------------------- frames
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, (EndFrame, CancelFrame)):
            await self.finish()
            await self.push_frame(frame, direction)
            return
        if direction is FrameDirection.DOWNSTREAM:
            if isinstance(frame, OutputImageRawFrame):
                self._offer_video(frame, time.monotonic())
                if self._forward:
                    await self.push_frame(frame, direction)
                return
            if isinstance(frame, OutputAudioRawFrame):
                if self._record_output:
                    live = isinstance(frame, SpeechOutputAudioRawFrame)
                    self._offer_audio(frame, time.monotonic(), ("out", live), live)
                if self._forward:
                    await self.push_frame(frame, direction)
                return
            if isinstance(frame, InputAudioRawFrame):
                if self._record_input:
                    user = frame.user_id if isinstance(frame, UserAudioRawFrame) else ""
                    self._offer_audio(frame, time.monotonic(), ("in", user), True)
            elif isinstance(frame, InterruptionFrame) and self.clock.t0 is not None:
                self._put((_CUT, time.monotonic() - self.clock.t0), None)
        await self.push_frame(frame, direction)

    async def cleanup(self) -> None:
        await super().cleanup()
        await self.finish()

    def _offer_video(self, frame: OutputImageRawFrame, now: float) -> None:
        stats = self.stats
        stats.video_frames_in += 1
        if self._finished:
            return
        pts = self.clock.place(now)
        self._last_media_at = now
        if self._thread is None:
            self._begin(frame, now)
        stats.video_frames_dropped_rate = self.clock.dropped
        stats.video_gaps = self.clock.gaps
        if pts is None:
            return
        if not self._put((_VIDEO, pts, frame), _VIDEO):
            stats.video_frames_dropped_backlog += 1

    def _offer_audio(self, frame: Any, now: float, key: Any, live: bool) -> None:
        stats = self.stats
        stats.audio_chunks_in += 1
        if self._finished:
            return
        t0 = self.clock.t0
        if t0 is None:
            stats.audio_chunks_before_start += 1
            return
        self._last_media_at = now
        if not self._put((_AUDIO, now - t0, key, live, frame), _AUDIO):
            stats.audio_chunks_dropped_backlog += 1

    def _put(self, item: tuple[Any, ...], kind: str | None) -> bool:
        if self._thread is None:
            return False
        with self._cond:
            if kind is _VIDEO:
                if self._video_items >= self._max_video_items:
                    return False
                self._video_items += 1
            elif kind is _AUDIO:
                if self._audio_items >= self._max_audio_items:
                    return False
                self._audio_items += 1
            self._items.append(item)
            self.stats.queue_high_water = max(self.stats.queue_high_water, len(self._items))
            self._cond.notify()
        return True

    # ---------------------------------------------------------------- lifecycle
    def _begin(self, frame: OutputImageRawFrame, now: float) -> None:
        started = datetime.now(UTC) - timedelta(seconds=time.monotonic() - now)
        self.started_at = started
        if self._fixed_path is not None:
            path = self._fixed_path
        else:
            assert self._directory is not None
            stem = started.strftime("%Y%m%dT%H%M%SZ")
            path = self._directory / f"{stem}.mp4"
            k = 1
            while path.exists() or path.with_name(path.name + ".part").exists():
                path = self._directory / f"{stem}-{k}.mp4"
                k += 1
        self.path = path
        width, height = frame.size
        self.size = (width & ~1, height & ~1)
        metadata = {"creation_time": started.isoformat(timespec="microseconds"),
                    "encoder": f"broadcaster recorder (PyAV {av.__version__})",
                    **self._metadata}
        self._thread = threading.Thread(
            target=self._run, args=(now, width, height, metadata), name="recorder", daemon=True
        )
        self._thread.start()
        logger.info(f"{self}: recording {width}x{height}@{self.options.fps:g} to {path}")
        self.create_task(self._call_event_handler("on_recording_started", path),
                         f"{self}::started")

    async def finish(self) -> Path | None:
        """Close the file now (also done on EndFrame / CancelFrame); the finished path."""
        if self._finished:
            return self.path if self.stats.error is None else None
        self._finished = True
        thread = self._thread
        if thread is None:
            logger.info(f"{self}: no video arrived; nothing recorded")
            return None
        # The file ends with the media (audio still queued for playout included), not
        # when the EndFrame arrives: a graceful stop upstream may take seconds.
        end = self._last_media_at - (self.clock.t0 or 0.0) + self.clock.interval
        with self._cond:
            self._items.append((_END, end))
            self._cond.notify()
        await asyncio.to_thread(thread.join, self._finalize_timeout)
        if thread.is_alive():
            self.stats.error = self.stats.error or "finalize timed out"
            logger.error(f"{self}: the recording did not close within "
                         f"{self._finalize_timeout:g}s; {self.partial_path} is incomplete")
            return None
        ok = self.stats.error is None
        await self._call_event_handler("on_recording_finished", self.path if ok else None,
                                       self.stats)
        return self.path if ok else None

    # ---------------------------------------------------------------- worker thread
    def _take(self, timeout: float) -> tuple[Any, ...] | None:
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            if not self._items:
                return None
            item = self._items.popleft()
            if item[0] is _VIDEO:
                self._video_items -= 1
            elif item[0] is _AUDIO:
                self._audio_items -= 1
            return item

    def _run(self, t0: float, width: int, height: int, metadata: dict[str, str]) -> None:
        assert self.path is not None and self.partial_path is not None
        stats = self.stats
        mixer = AudioMixer(gap_tolerance=self._gap_tolerance, max_lead=self._max_audio_lead)
        writer: _Writer | None = None
        end = 0.0
        try:
            writer = _Writer(self.partial_path, width, height, self.options, stats, metadata)
            latest = 0.0  # arrival time (s since time 0) of the newest item handled
            while True:
                item = self._take(0.05)
                if item is not None:
                    kind = item[0]
                    if kind is _END:
                        end = max(item[1], latest)
                        break
                    if kind is _VIDEO:
                        latest = max(latest, item[1])
                        self._encode_frame(writer, item[1], item[2])
                    elif kind is _AUDIO:
                        _, t, key, live, frame = item
                        latest = max(latest, t)
                        mixer.add(key, t, _pcm_mono(frame), int(frame.sample_rate), live=live)
                    elif kind is _CUT:
                        mixer.cut(item[1])
                # Mix what can no longer change: behind the newest arrival while catching
                # up on a backlog, behind the clock when idle.
                with self._cond:
                    idle = not self._items
                now = (time.monotonic() - t0) if idle else latest
                self._flush_audio(writer, mixer, round((now - self._audio_window) * AUDIO_RATE))
            # The end: everything that has played by then, and queued playout audio.
            final = max(round(end * AUDIO_RATE), mixer.horizon())
            self._flush_audio(writer, mixer, final)
            stats.audio_late_ms = mixer.late_samples * 1000 / AUDIO_RATE
            stats.audio_chunks_dropped_lead = mixer.dropped_lead
            stats.audio_realigned = mixer.realigned
            writer.close(max(end, final / AUDIO_RATE))
            writer = None
            self.partial_path.replace(self.path)
            stats.duration_s = round(max(end, final / AUDIO_RATE), 3)
            stats.size_bytes = self.path.stat().st_size
            self._write_sidecars(stats.duration_s)
            logger.info(f"{self}: recorded {stats.duration_s:.1f}s to {self.path} "
                        f"({stats.size_bytes / 1e6:.1f} MB, {stats.video_frames_encoded} "
                        f"frames, {stats.encode_ms_per_frame:.2f} ms/frame)")
        except Exception as e:
            stats.error = f"{type(e).__name__}: {e}"
            logger.exception(f"{self}: recording failed: {e}")
            if writer is not None:
                with contextlib.suppress(Exception):
                    writer.close(end)
            self._drain()

    def _encode_frame(self, writer: _Writer, pts: float, frame: OutputImageRawFrame) -> None:
        started = time.perf_counter()
        vf = to_av_frame(frame)
        if vf is None:
            self.stats.video_frames_unsupported += 1
            if self.stats.video_frames_unsupported == 1:
                logger.error(f"{self}: unsupported image {frame.format!r} {frame.size}; "
                             "such frames are not recorded")
            return
        writer.encode_video(pts, vf)
        ms = (time.perf_counter() - started) * 1e3
        self.stats.encode_ms_total += ms
        self.stats.encode_ms_max = max(self.stats.encode_ms_max, ms)

    @staticmethod
    def _flush_audio(writer: _Writer, mixer: AudioMixer, until: int) -> None:
        # In slices of at most 1 s: a long silence is not one huge frame.
        while until > mixer.flushed:
            samples = mixer.mix(min(until, mixer.flushed + AUDIO_RATE))
            if samples is not None:
                writer.encode_audio(samples)

    def _drain(self) -> None:
        with self._cond:
            self._items.clear()
            self._video_items = self._audio_items = 0

    # ---------------------------------------------------------------- sidecars
    def _write_sidecars(self, duration: float) -> None:
        assert self.path is not None and self.started_at is not None
        start = self.started_at
        info = {
            "file": self.path.name,
            "started_at": start.isoformat(timespec="milliseconds"),
            "ended_at": (start + timedelta(seconds=duration)).isoformat(timespec="milliseconds"),
            "duration_s": duration,
            "video": {"codec": "h264", "width": self.size[0], "height": self.size[1],
                      "fps": self.options.fps, "preset": self.options.preset,
                      "crf": self.options.crf},
            "audio": {"codec": "aac", "sample_rate": AUDIO_RATE, "channels": 1,
                      "bitrate": self.options.audio_bitrate},
            "captions": str(self._captions_path) if self._captions_path else None,
            "stats": asdict(self.stats),
        }
        try:
            cues = self._caption_cues(start, duration)
            if cues:
                vtt = self.path.with_suffix(".vtt")
                vtt.write_text(_webvtt(cues, duration), encoding="utf-8")
                info["subtitles"] = vtt.name
            self.path.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n",
                                                      encoding="utf-8")
        except Exception as e:  # sidecars are a convenience: never fail the recording
            logger.warning(f"{self}: could not write the sidecar files: {e}")

    def _caption_cues(self, start: datetime, duration: float) -> list[tuple[float, str]]:
        """(seconds into the recording, "speaker: text") for each caption line in it."""
        path = self._captions_path
        if path is None or not path.exists():
            return []
        cues = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
                at = (datetime.fromisoformat(entry["time"]) - start).total_seconds()
                text = str(entry["text"]).strip()
            except (ValueError, KeyError, TypeError):
                continue
            if 0 <= at <= duration and text:
                cues.append((at, f"{entry.get('speaker') or entry.get('source')}: {text}"))
        return sorted(cues)


def _vtt_time(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def _webvtt(cues: list[tuple[float, str]], duration: float, hold: float = 5.0) -> str:
    """WebVTT text: each cue shown until the next one (at most ``hold`` seconds)."""
    out = ["WEBVTT", ""]
    for i, (at, text) in enumerate(cues):
        end = min(at + hold, cues[i + 1][0] if i + 1 < len(cues) else duration)
        out += [f"{_vtt_time(at)} --> {_vtt_time(max(end, at + 0.5))}", text, ""]
    return "\n".join(out)
