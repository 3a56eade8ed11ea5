"""The encoder thread: takes queued frames, mixes the audio, writes the MP4, closes it.

Time 0 of the file is the first video frame. Audio is mixed only once it can no
longer change: ``audio_window`` behind the newest arrival while catching up on a
backlog, behind the clock when idle.
"""

from __future__ import annotations

import contextlib
import time

from loguru import logger
from pipecat.frames.frames import OutputImageRawFrame

from broadcaster.bot.recorder.convert import pcm_mono, to_av_frame
from broadcaster.bot.recorder.files import RecordingFile
from broadcaster.bot.recorder.mixer import AUDIO_RATE, AudioMixer
from broadcaster.bot.recorder.queue import AudioItem, CutItem, EncodeQueue, EndItem, VideoItem
from broadcaster.bot.recorder.sidecars import write_sidecars
from broadcaster.bot.recorder.stats import RecorderStats
from broadcaster.bot.recorder.writer import Writer


class EncodeWorker:
    """Everything the encoder thread does for one recording; :meth:`run` is its body."""

    def __init__(self, owner: object, rec: RecordingFile, queue: EncodeQueue,
                 stats: RecorderStats, *, t0: float, width: int, height: int,
                 metadata: dict[str, str], audio_window: float, gap_tolerance: float,
                 max_audio_lead: float) -> None:
        self._owner = owner  # for log lines
        self.rec = rec
        self.queue = queue
        self.stats = stats
        self.t0 = t0
        """``time.monotonic()`` of time 0 (the first video frame's arrival)."""
        self.width, self.height = width, height
        self.metadata = metadata
        self.audio_window = audio_window
        self.gap_tolerance = gap_tolerance
        self.max_audio_lead = max_audio_lead

    def run(self) -> None:
        """Encode until an :class:`EndItem`, then close the file and write the sidecars."""
        rec, stats = self.rec, self.stats
        mixer = AudioMixer(gap_tolerance=self.gap_tolerance, max_lead=self.max_audio_lead)
        writer: Writer | None = None
        end = 0.0
        try:
            writer = Writer(rec.partial_path, self.width, self.height, rec.options, stats,
                            self.metadata, rec.run_offset_s)
            latest = 0.0  # arrival time (s since time 0) of the newest item handled
            while True:
                item = self.queue.take(0.05)
                if isinstance(item, EndItem):
                    end = max(item.t, latest)
                    break
                if isinstance(item, VideoItem):
                    latest = max(latest, item.pts)
                    self._encode_frame(writer, item.pts, item.frame)
                elif isinstance(item, AudioItem):
                    latest = max(latest, item.t)
                    mixer.add(item.source, item.t, pcm_mono(item.frame),
                              int(item.frame.sample_rate), live=item.live)
                elif isinstance(item, CutItem):
                    mixer.cut(item.t)
                # Mix what can no longer change: behind the newest arrival while catching
                # up on a backlog, behind the clock when idle.
                now = (time.monotonic() - self.t0) if self.queue.empty() else latest
                self._flush_audio(writer, mixer, round((now - self.audio_window) * AUDIO_RATE))
            # The end: everything that has played by then, and queued playout audio.
            final = max(round(end * AUDIO_RATE), mixer.horizon())
            self._flush_audio(writer, mixer, final)
            stats.audio_late_ms = mixer.late_samples * 1000 / AUDIO_RATE
            stats.audio_chunks_dropped_lead = mixer.dropped_lead
            stats.audio_realigned = mixer.realigned
            writer.close(max(end, final / AUDIO_RATE))
            writer = None
            rec.partial_path.replace(rec.path)
            stats.duration_s = round(max(end, final / AUDIO_RATE), 3)
            stats.size_bytes = rec.path.stat().st_size
            write_sidecars(rec, rec.run_offset_s + stats.duration_s, stats, self._owner)
            logger.info(f"{self._owner}: recorded {stats.duration_s:.1f}s to {rec.path} "
                        f"({stats.size_bytes / 1e6:.1f} MB, {stats.video_frames_encoded} "
                        f"frames, {stats.encode_ms_per_frame:.2f} ms/frame)")
        except Exception as e:
            stats.error = f"{type(e).__name__}: {e}"
            logger.exception(f"{self._owner}: recording failed: {e}")
            if writer is not None:
                with contextlib.suppress(Exception):
                    writer.close(end)
            self.queue.clear()

    def _encode_frame(self, writer: Writer, pts: float, frame: OutputImageRawFrame) -> None:
        started = time.perf_counter()
        vf = to_av_frame(frame)
        if vf is None:
            self.stats.video_frames_unsupported += 1
            if self.stats.video_frames_unsupported == 1:
                logger.error(f"{self._owner}: unsupported image {frame.format!r} {frame.size}; "
                             "such frames are not recorded")
            return
        writer.encode_video(pts, vf)
        ms = (time.perf_counter() - started) * 1e3
        self.stats.encode_ms_total += ms
        self.stats.encode_ms_max = max(self.stats.encode_ms_max, ms)

    @staticmethod
    def _flush_audio(writer: Writer, mixer: AudioMixer, until: int) -> None:
        # In slices of at most 1 s: a long silence is not one huge frame.
        while until > mixer.flushed:
            samples = mixer.mix(min(until, mixer.flushed + AUDIO_RATE))
            if samples is not None:
                writer.encode_audio(samples)
