"""A steady frame clock: ticks at ``t0 + k * period``, never drifts, never bursts.

Why not ``asyncio.sleep(period)`` in a loop: that drifts by every iteration's
work and lateness, so 25 fps becomes 24.x and the avatar's video slowly falls
behind its audio. And why not "catch up" after a stall: a burst of frames
rendered in a row shows the same instant several times and floods the encoder.
Missed ticks are skipped (and counted) instead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class SteadyTicker:
    """Absolute-deadline ticker on the monotonic clock."""

    def __init__(
        self,
        period: float,
        *,
        start: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if period <= 0:
            raise ValueError("period must be positive")
        self.period = period
        self._clock = clock
        self.t0 = clock() if start is None else start
        self._next = 0
        self.ticks = 0
        """Ticks delivered."""
        self.skipped = 0
        """Ticks dropped because the loop was late by a whole period or more."""

    def _due(self) -> tuple[int, float, float]:
        """(tick index, its deadline, seconds to wait) after skipping missed ticks."""
        k = self._next
        deadline = self.t0 + k * self.period
        now = self._clock()
        late = now - deadline
        if late >= self.period:
            missed = int(late // self.period)
            k += missed
            self.skipped += missed
            deadline = self.t0 + k * self.period
        return k, deadline, deadline - now

    async def tick(self) -> tuple[int, float]:
        """Wait for the next tick; returns (tick index, its scheduled monotonic time)."""
        k, deadline, wait = self._due()
        if wait > 0:
            await asyncio.sleep(wait)
        self._next = k + 1
        self.ticks += 1
        return k, deadline
