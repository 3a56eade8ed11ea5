"""Audio from several sources on one continuous 48 kHz timeline (pure logic, samples).

Each source's chunks are laid end to end from their arrival times; live sources
(a microphone, the avatar's stream) are kept on their arrivals, playout sources
(TTS) queue up like a player would. See :class:`AudioMixer`.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import soxr

AUDIO_RATE = 48_000


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
        """Return the end of everything queued (sample index)."""
        ends = [s.chunks[-1][0] + len(s.chunks[-1][1]) for s in self.sources.values() if s.chunks]
        return max(ends, default=self.flushed)

    def mix(self, until: int) -> np.ndarray | None:
        """Mix samples [flushed, until) (float32); None if there are none."""
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
