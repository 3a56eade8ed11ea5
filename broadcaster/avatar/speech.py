"""The avatar's speech: a playout buffer of 48 kHz audio and the mouth envelope it drives.

Why a buffer and not a pass-through: pipecat's LiveAvatar client sends the first
~3 s of an utterance at once and then one 1 s chunk per second, so up to about
4.4 s are queued at any moment, and an ``agent.interrupt`` must drop all of it at
once. Audio arrives as PCM16 mono 24 kHz (LiveAvatar's wire format) and leaves as
48 kHz (what WebRTC/Opus runs at, and what the client reads), resampled with
soxr in one stream per utterance so chunk edges never click.

Lip sync: :class:`MouthTrack` records, for every block handed to the audio
source, the instant that block will actually be heard (now + the source's queue
depth) and its loudness. The video loop asks for the openness *at the frame's
instant*, so the mouth follows the audio being played then, not the audio being
queued.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import soxr

IN_RATE = 24_000
OUT_RATE = 48_000
BLOCK_SAMPLES = OUT_RATE // 100  # 10 ms: WebRTC's own audio frame size
BLOCK_SECONDS = BLOCK_SAMPLES / OUT_RATE

#: loudness (dBFS of a 10 ms block) mapped to a closed / fully open mouth
SILENT_DB = -48.0
LOUD_DB = -14.0
#: how fast the mouth may close per 10 ms block: fully open to shut in 50 ms
RELEASE_PER_BLOCK = 0.2


class BufferFull(Exception):
    """More speech was queued than the buffer holds; the chunk was dropped."""


@dataclass
class _Segment:
    event_id: str | None
    audio: np.ndarray  # int16 at OUT_RATE
    pos: int = 0

    @property
    def left(self) -> int:
        return self.audio.size - self.pos


@dataclass
class Played:
    """What one :meth:`SpeechBuffer.read` call played."""

    voiced: int = 0
    """Samples of speech in the block (the rest is silence)."""
    started: list[str | None] = field(default_factory=list)
    """Events whose first sample is in this block."""
    finished: list[str | None] = field(default_factory=list)
    """Events that were ended (speak_end) and whose last sample is in this block."""


class SpeechBuffer:
    """Queue of utterances at 48 kHz, read in real time by the audio publisher.

    Not thread-safe: everything runs on the service's event loop.
    """

    def __init__(self, max_seconds: float = 120.0) -> None:
        self.max_samples = int(max_seconds * OUT_RATE)
        self._segments: deque[_Segment] = deque()
        self._queued = 0
        self._resampler: soxr.ResampleStream | None = None
        self._resampler_event: str | None = None
        self._ended: set[str | None] = set()
        self._started: set[str | None] = set()
        self.total_in_samples = 0
        self.total_out_samples = 0

    # ------------------------------------------------------------------ input
    def push(self, pcm: bytes, event_id: str | None) -> None:
        """Queue PCM16 LE mono 24 kHz audio of ``event_id``; raises BufferFull or ValueError."""
        if len(pcm) % 2:
            raise ValueError("audio has an odd number of bytes; PCM16 needs two per sample")
        if not pcm:
            return
        samples = np.frombuffer(pcm, dtype="<i2")
        if self._queued + 2 * samples.size > self.max_samples:
            raise BufferFull(
                f"speech buffer holds at most {self.max_samples / OUT_RATE:.0f} s; chunk dropped"
            )
        if self._resampler is None or self._resampler_event != event_id:
            self._flush_resampler()
            self._resampler = soxr.ResampleStream(IN_RATE, OUT_RATE, 1, dtype="int16")
            self._resampler_event = event_id
        self._append(event_id, self._resampler.resample_chunk(samples))
        self.total_in_samples += samples.size

    def end(self, event_id: str | None) -> bool:
        """Mark the utterance complete: play what is queued, then report it finished.

        Returns False when nothing of ``event_id`` is queued or playing (nothing to end).
        """
        if self._resampler_event == event_id:
            self._flush_resampler()
        known = event_id in self._started or any(s.event_id == event_id for s in self._segments)
        if known:
            self._ended.add(event_id)
        return known

    def end_started(self) -> None:
        """End every utterance already playing (its sender went quiet without speak_end)."""
        for event_id in list(self._started):
            self.end(event_id)

    def flush(self) -> list[str | None]:
        """Drop everything queued (interrupt). Returns the started events cut short."""
        cut = list(self._started)
        self._segments.clear()
        self._queued = 0
        self._resampler = None
        self._resampler_event = None
        self._ended.clear()
        self._started.clear()
        return cut

    # ----------------------------------------------------------------- output
    @property
    def queued_seconds(self) -> float:
        """Seconds of speech queued for playout."""
        return self._queued / OUT_RATE

    @property
    def active(self) -> bool:
        """True while an utterance is queued or started and not yet finished."""
        return bool(self._segments) or bool(self._started)

    def read(self, out: np.ndarray) -> Played:
        """Fill ``out`` (int16) with the next samples of speech, then silence."""
        played = Played()
        n = out.size
        filled = 0
        while filled < n and self._segments:
            seg = self._segments[0]
            if seg.pos == 0 and seg.event_id not in self._started:
                self._started.add(seg.event_id)
                played.started.append(seg.event_id)
            take = min(n - filled, seg.left)
            out[filled : filled + take] = seg.audio[seg.pos : seg.pos + take]
            seg.pos += take
            filled += take
            self._queued -= take
            if seg.left == 0:
                self._segments.popleft()
        if filled < n:
            out[filled:] = 0
        played.voiced = filled
        self.total_out_samples += filled
        # An utterance is finished once it was ended and none of it is left to play.
        for event_id in list(self._started):
            pending = any(s.event_id == event_id for s in self._segments)
            if event_id in self._ended and not pending and self._resampler_event != event_id:
                self._started.discard(event_id)
                self._ended.discard(event_id)
                played.finished.append(event_id)
        return played

    # --------------------------------------------------------------- helpers
    def _append(self, event_id: str | None, audio: np.ndarray) -> None:
        if audio.size == 0:
            return
        self._segments.append(_Segment(event_id, np.ascontiguousarray(audio, dtype=np.int16)))
        self._queued += audio.size

    def _flush_resampler(self) -> None:
        """Emit the resampler's tail (its filter delay) into the current utterance."""
        if self._resampler is not None:
            tail = self._resampler.resample_chunk(np.zeros(0, np.int16), last=True)
            self._append(self._resampler_event, tail)
        self._resampler = None
        self._resampler_event = None


def block_level(block: np.ndarray) -> float:
    """Mouth openness 0..1 that a block of int16 audio calls for (loudness in dB)."""
    if block.size == 0:
        return 0.0
    power = float(np.dot(block.astype(np.float32), block.astype(np.float32))) / block.size
    if power <= 0.0:
        return 0.0
    db = 10.0 * math.log10(power / (32768.0 * 32768.0))
    return min(1.0, max(0.0, (db - SILENT_DB) / (LOUD_DB - SILENT_DB)))


class MouthTrack:
    """Mouth openness over time, keyed by when each audio block is actually heard."""

    def __init__(self, horizon: int = 200) -> None:
        self._times: deque[float] = deque(maxlen=horizon)
        self._levels: deque[float] = deque(maxlen=horizon)
        self._last = 0.0

    def add(self, play_at: float, raw_level: float) -> None:
        """Record the block heard from ``play_at`` (monotonic seconds) on."""
        level = max(raw_level, self._last - RELEASE_PER_BLOCK)
        if level < 0.02:
            level = 0.0
        self._last = level
        self._times.append(play_at)
        self._levels.append(level)

    def at(self, t: float) -> float:
        """Return the openness of the block being heard at ``t``; 0 before any audio."""
        times = self._times
        if not times or t < times[0]:
            return 0.0
        # Newest first: the frame instant is nearly always within the last few blocks.
        for i in range(len(times) - 1, -1, -1):
            if times[i] <= t:
                return self._levels[i]
        return 0.0

    def close(self, now: float) -> None:
        """Interrupt: nothing queued will be heard, so the mouth shuts from ``now``."""
        while self._times and self._times[-1] > now:
            self._times.pop()
            self._levels.pop()
        self._last = 0.0
        self._times.append(now)
        self._levels.append(0.0)
