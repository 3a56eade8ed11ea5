"""When to capture which video frame: a steady rate from an unsteady source.

Pure logic on a caller-supplied clock (seconds), so it is tested without a loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

from livekit import rtc


class Kind(Enum):
    """What a capture shows."""

    REAL = "real"
    """A frame from the source, captured for the first time."""
    REPEAT = "repeat"
    """The last real frame again: the source is late."""
    SLATE = "slate"
    """The slate: the source has stalled (or not started)."""


@dataclass
class PacedFrame:
    """A frame waiting for (or past) its capture, with when it entered the republisher."""

    video: rtc.VideoFrame
    entered_ns: int
    entered_wall_us: int
    received_ns: int


class Capture(NamedTuple):
    """A decision of :meth:`VideoPacer.poll`: capture ``frame`` (None: the slate) now."""

    kind: Kind
    frame: PacedFrame | None


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

    def __init__(self, fps: float, *, hold_frames: float = 2.0,
                 slate_after: float = 2.0) -> None:
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

    def poll(self, now: float) -> Capture | None:
        """Decide what to capture now, if anything."""
        self._refill(now)
        if self.pending is not None:
            if self._real_ready_at() > now + 1e-4:
                return None
            item, self.pending = self.pending, None
            self.tokens -= 1.0
            self.last_real, self.last_real_at = item, now
            self._mark(now, Kind.REAL)
            return Capture(Kind.REAL, item)
        if now + 1e-4 < self.next_due(now):
            return None
        if self.last_real is None or now - (self.last_real_at or now) >= self.slate_after:
            self._mark(now, Kind.SLATE)
            return Capture(Kind.SLATE, None)
        self._mark(now, Kind.REPEAT)
        return Capture(Kind.REPEAT, self.last_real)

    def source_gone(self, now: float) -> None:
        """Forget the dead source's frames: the slate from the next poll on, no repeats."""
        self.pending = None
        if self.last_real_at is not None:
            self.last_real_at = min(self.last_real_at, now - self.slate_after)
        self.last_capture_at = min(self.last_capture_at, now - self.interval)

    def _mark(self, now: float, kind: Kind) -> None:
        self.last_capture_at = now
        self.last_kind = kind
