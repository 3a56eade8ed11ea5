"""Video presentation times on a constant-rate grid (pure logic, seconds)."""

from __future__ import annotations


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
