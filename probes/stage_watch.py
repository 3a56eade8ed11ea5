"""What a viewer sees on the stage: the live avatar or the slate, frame by frame.

The republisher's slate is a flat card (``SLATE_RGB``) with one line of text in
the middle; the avatar is a figure in a scene. A frame whose lower half is flat
and of the slate's colour is the slate. Used by the recovery tests and
bench/faults.py to time "slate shown after" and "live avatar back after" a fault,
at a real viewer.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np
from livekit import rtc

from broadcaster.bot.picture_match import grids_apart, luma_grid
from probes.viewer import RoomViewer

#: a frame-to-frame change (mean |Δ luma| on the sample) above a codec's noise on a
#: repeated frame: the picture moved (the idle avatar's sway of a pixel is ~0.3-0.9)
MOVED = 0.2
#: BT.601 luma of the slate's colour (22, 27, 38)
SLATE_LUMA = 16 + (65.481 * 22 + 128.553 * 27 + 24.966 * 38) / 255


class Seen(NamedTuple):
    """One decoded frame at the viewer."""

    t: float
    slate: bool
    key: int
    """Tells pictures apart (a hash of a sparse sample of the luma plane)."""
    track: int
    """Which subscribed track (0, 1, ...: a restarted bot publishes new ones)."""
    wall: float = 0.0
    """time.time() at arrival (to match the bot's log lines)."""
    change: float = 0.0
    """Mean absolute luma difference from the previous frame of its track (0-255, on
    the same sparse sample): how far the picture moved; a jump shows here."""
    entered_us: int = 0
    """The republisher's stamp: wall-clock µs the frame entered it (0: none)."""


def is_slate(y: np.ndarray) -> bool:
    """Whether a luma plane (height x width) is the slate card."""
    low = y[y.shape[0] * 2 // 3:: 4, :: 4].astype(np.float32)
    return bool(abs(float(low.mean()) - SLATE_LUMA) < 6 and float(low.std()) < 4)


class StageWatcher(RoomViewer):
    """Records, for every frame of the bot's camera, its time and whether it is the slate."""

    def __init__(self, bot: str) -> None:
        super().__init__(from_identity=bot, want_audio=False)
        self.seen: list[Seen] = []
        self._tracks = 0
        self._last: dict[int, np.ndarray] = {}

    async def _video(self, stream: rtc.VideoStream) -> None:
        track, self._tracks = self._tracks, self._tracks + 1
        async for event in stream:
            self.classify(event, track)

    def classify(self, event: rtc.VideoFrameEvent, track: int = 0) -> None:
        """Classify the frame as it arrives."""
        f = event.frame
        if f.type != rtc.VideoBufferType.I420:
            f = f.convert(rtc.VideoBufferType.I420)
        y = np.frombuffer(f.data, np.uint8, count=f.width * f.height).reshape(f.height, f.width)
        grid = luma_grid(y)  # the bot's own measure (rollover switches on it)
        key = hash(grid.tobytes())
        last = self._last.get(track)
        change = (grids_apart(grid, last) if last is not None else None) or 0.0
        self._last[track] = grid
        entered = event.metadata.user_timestamp if event.metadata is not None else 0
        self.seen.append(Seen(time.monotonic(), is_slate(y), key, track, time.time(), change,
                              entered))

    def live_now(self, window: float = 1.0) -> bool:
        """Whether the last ``window`` seconds showed the avatar (frames, none a slate)."""
        now = time.monotonic()
        recent = [s for s in self.seen if s.t >= now - window]
        return len(recent) >= 5 and not any(s.slate for s in recent)

    def slate_after(self, t0: float) -> float | None:
        """Seconds from ``t0`` to the first slate frame (None: none yet)."""
        return next((s.t - t0 for s in self.seen if s.t >= t0 and s.slate), None)

    def live_after(self, t0: float) -> float | None:
        """Return the seconds from ``t0`` to the avatar's return.

        That is its first frame after a slate that followed ``t0``, or on a track that
        appeared after ``t0`` (a new bot).

        The avatar counts as back once frames that are not the slate keep coming on
        that track for half a second (a single stray frame does not).
        """
        after = [s for s in self.seen if s.t >= t0]
        old_tracks = {s.track for s in self.seen if s.t < t0}
        slate_seen = False
        for i, s in enumerate(after):
            if s.slate:
                slate_seen = True
                continue
            if not slate_seen and s.track in old_tracks:
                continue
            run = [x for x in after[i:] if x.track == s.track and x.t <= s.t + 0.5]
            if not any(x.slate for x in run) and after[-1].t >= s.t + 0.5:
                return s.t - t0
        return None

    def moving_after(self, t0: float, moved: float = MOVED) -> float | None:
        """Seconds from ``t0`` to the first frame that moved, at or after :meth:`live_after`.

        A held last frame looks live but does not move (``change`` below ``moved``). An
        upper bound: the idle avatar stands still for a moment at times.
        """
        live = self.live_after(t0)
        if live is None:
            return None
        return next((s.t - t0 for s in self.seen
                     if s.t >= t0 + live and not s.slate and s.change >= moved), None)

    def longest_gap(self, t0: float, t1: float) -> float:
        """Return the longest time without any frame in [t0, t1] (a frozen picture)."""
        ts = [t0, *(s.t for s in self.seen if t0 <= s.t <= t1), t1]
        return max(b - a for a, b in zip(ts, ts[1:], strict=False))

    def longest_freeze(self, t0: float, t1: float) -> float:
        """Return the longest time the picture did not change in [t0, t1] (held frames)."""
        seen = [s for s in self.seen if t0 <= s.t <= t1]
        longest, since = 0.0, seen[0] if seen else None
        for prev, s in zip(seen, seen[1:], strict=False):
            if since is not None and s.key != prev.key:
                longest = max(longest, prev.t - since.t)
                since = s
        if since is not None and seen:
            longest = max(longest, seen[-1].t - since.t)
        return longest

    def slate_frames(self, t0: float, t1: float) -> int:
        """Slate frames received in [t0, t1]."""
        return sum(1 for s in self.seen if t0 <= s.t <= t1 and s.slate)
