"""The recorder as a pipecat processor: media frames in, queued for the encoder thread.

It stamps every frame with ``time.monotonic()`` on arrival (one clock for audio and
video, so the file keeps the sync the republisher publishes with), places video on
the :class:`VideoClock` grid, starts the encoder thread at the first video frame and
closes the file at ``EndFrame`` / ``CancelFrame``.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Hashable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import av
from loguru import logger
from pipecat.frames.frames import (
    AudioRawFrame,
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

from broadcaster.bot.recorder.clock import VideoClock
from broadcaster.bot.recorder.files import (
    RecordingFile,
    continued_recording,
    new_recording_path,
    recording_dir,
)
from broadcaster.bot.recorder.queue import (
    AudioItem,
    CutItem,
    EncodeQueue,
    EndItem,
    Item,
    VideoItem,
)
from broadcaster.bot.recorder.stats import RecorderStats
from broadcaster.bot.recorder.worker import EncodeWorker
from broadcaster.bot.recorder.writer import RecordingOptions


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
        self._audio_window = audio_window
        self._gap_tolerance = gap_tolerance
        self._max_audio_lead = max_audio_lead
        self._captions_path = Path(captions_path) if captions_path else None
        self._metadata = dict(metadata or {})
        self._finalize_timeout = finalize_timeout

        self.stats = RecorderStats()
        self.clock = VideoClock(self.options.fps)
        self.file: RecordingFile | None = None
        """The recording (set when the first video frame arrives)."""
        self._queue = EncodeQueue(max(2, math.ceil(max_backlog_seconds * self.options.fps)),
                                  max(100, math.ceil(max_backlog_seconds * 400)), self.stats)
        self._thread: threading.Thread | None = None
        self._finished = False
        self._last_media_at = 0.0

        self._register_event_handler("on_recording_started")
        self._register_event_handler("on_recording_finished")

    @classmethod
    def for_session(cls, settings: Any, room: str, **kwargs: Any) -> Recorder:
        """``<recordings_dir>/<room>/<UTC>.mp4`` at the stream's fps, captions beside it."""
        from broadcaster.bot.captions import captions_path

        kwargs.setdefault("options", RecordingOptions(fps=float(settings.video_fps),
                                                      fragmented=True, continuous=True))
        kwargs.setdefault("captions_path", captions_path(settings, room))
        kwargs.setdefault("metadata", {"title": f"broadcaster: {room}"})
        return cls(directory=recording_dir(settings.recordings_dir, room), **kwargs)

    @property
    def path(self) -> Path | None:
        """The finished file (set when recording starts; complete once finished)."""
        return self.file.path if self.file else None

    @property
    def partial_path(self) -> Path | None:
        """Where the file is written until it is complete."""
        return self.file.partial_path if self.file else None

    # ---------------------------------------------------------------- frames
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Queue media for the encoder, close the file at the end; pass the rest on."""
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
                self._put(CutItem(time.monotonic() - self.clock.t0))
        await self.push_frame(frame, direction)

    async def cleanup(self) -> None:
        """Close the file if the pipeline ends without an EndFrame."""
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
        if not self._put(VideoItem(pts, frame)):
            stats.video_frames_dropped_backlog += 1

    def _offer_audio(self, frame: AudioRawFrame, now: float, source: Hashable,
                     live: bool) -> None:
        stats = self.stats
        stats.audio_chunks_in += 1
        if self._finished:
            return
        t0 = self.clock.t0
        if t0 is None:
            stats.audio_chunks_before_start += 1
            return
        self._last_media_at = now
        if not self._put(AudioItem(now - t0, source, live, frame)):
            stats.audio_chunks_dropped_backlog += 1

    def _put(self, item: Item) -> bool:
        return self._thread is not None and self._queue.put(item)

    # ---------------------------------------------------------------- lifecycle
    def _begin(self, frame: OutputImageRawFrame, now: float) -> None:
        started = datetime.now(UTC) - timedelta(seconds=time.monotonic() - now)
        width, height = frame.size
        size = (width & ~1, height & ~1)
        origin, offset = started, 0.0
        if self._fixed_path is not None:
            path = self._fixed_path
        else:
            assert self._directory is not None
            path = new_recording_path(self._directory, started)
            if self.options.fragmented and self.options.continuous:
                self._directory.mkdir(parents=True, exist_ok=True, mode=0o700)
                found = continued_recording(self._directory, size)
                if found is not None:
                    path, origin = found
                    if path.exists():  # finished by an earlier run: being written again
                        path.replace(path.with_name(path.name + ".part"))
                else:  # a new file: its name (to the second) is its time 0
                    origin = started.replace(microsecond=0)
                offset = (started - origin).total_seconds()
        rec = self.file = RecordingFile(path, origin, size, self.options, self._captions_path,
                                        offset)
        metadata = {"creation_time": started.isoformat(timespec="microseconds"),
                    "encoder": f"broadcaster recorder (PyAV {av.__version__})",
                    **self._metadata}
        worker = EncodeWorker(self, rec, self._queue, self.stats, t0=now, width=width,
                              height=height, metadata=metadata,
                              audio_window=self._audio_window,
                              gap_tolerance=self._gap_tolerance,
                              max_audio_lead=self._max_audio_lead)
        self._thread = threading.Thread(target=worker.run, name="recorder", daemon=True)
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
        self._queue.put(EndItem(end))
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
