"""The web app's metrics: audience per room, live webinars, bot processes.

Refreshed from the LiveKit server API when scraped (viewers are ``hidden``, so the
server API is the only place that counts them).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from loguru import logger
from prometheus_client import CollectorRegistry, Counter, Gauge

#: the stage room's own audience; audience shard rooms (scale-out) add their own series
STAGE_SHARD = "stage"


class WebMetrics:
    """The web app's metrics; :meth:`refresh` before rendering."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.viewers = Gauge(
            "broadcaster_viewers", "Viewers connected, from the LiveKit server API",
            ["room", "shard"], registry=r)
        self.participants = Gauge(
            "broadcaster_room_participants",
            "Everyone in the LiveKit room (viewers, speaker, bot, host)",
            ["room", "shard"], registry=r)
        self.webinars_live = Gauge(
            "broadcaster_webinars_live", "Webinars not ended", registry=r)
        self.bot_up = Gauge(
            "broadcaster_bot_up", "1 while the room's bot process runs, else 0",
            ["room"], registry=r)
        self.bot_restarts = Gauge(
            "broadcaster_bot_restarts_recent",
            "Automatic bot restarts in the launcher's restart window (120 s)",
            ["room"], registry=r)
        self.audience_errors = Counter(
            "broadcaster_audience_errors",
            "Audience look-ups (LiveKit server API) that failed during a scrape",
            registry=r)
        self.scrape_seconds = Gauge(
            "broadcaster_metrics_refresh_seconds",
            "Time the last /metrics refresh took (LiveKit API calls)", registry=r)
        self.floor_guard = Counter(
            "broadcaster_floor_guard_actions",
            "Times the floor guard acted on a LiveKit webhook: 'demoted' (could publish "
            "without the floor), 'removed' (rejoined an ended webinar)",
            ["room", "action"], registry=r)
        self.questions_refused = Counter(
            "broadcaster_questions_refused",
            "Questions refused by the per-participant rate limit (HTTP 429)",
            ["room"], registry=r)
        self._counted: dict[tuple[str, ...], int] = {}

    async def refresh(self, webinars: Any, bots: Any = None, room_timeout: float = 5.0) -> None:
        """Re-read audience counts (cached by ``Webinars.audience``) and bot states."""
        started = time.monotonic()
        live = [w for w in webinars.store.webinars() if w.ended_at is None]
        self.webinars_live.set(len(live))

        async def one(room: str) -> tuple[str, dict[str, int] | None]:
            try:
                return room, await asyncio.wait_for(webinars.audience(room), room_timeout)
            except Exception as exc:  # LiveKit down or slow: skip the room this time
                logger.debug("metrics: audience of {} failed: {}", room, exc)
                self.audience_errors.inc()
                return room, None

        results = await asyncio.gather(*(one(w.room) for w in live))
        self.viewers.clear()
        self.participants.clear()
        for room, counts in results:
            if counts is None:
                continue
            self.viewers.labels(room=room, shard=STAGE_SHARD).set(counts.get("viewers", 0))
            self.participants.labels(room=room, shard=STAGE_SHARD).set(
                counts.get("participants", 0))
        self.bot_up.clear()
        self.bot_restarts.clear()
        if bots is not None:
            for w in live:
                status = bots.status(w.room)
                self.bot_up.labels(room=w.room).set(1 if status.get("state") == "running" else 0)
                bot = getattr(bots, "_bots", {}).get(w.room)
                self.bot_restarts.labels(room=w.room).set(len(getattr(bot, "restarts", ())))
        self._catch_up("guard", self.floor_guard, ("room", "action"), webinars.guard_actions)
        self._catch_up("refused", self.questions_refused, ("room",), webinars.questions_refused)
        self.scrape_seconds.set(time.monotonic() - started)

    def _catch_up(self, name: str, counter: Counter, labels: tuple[str, ...],
                  totals: dict[Any, int]) -> None:
        """Advance ``counter`` to the app's running totals (kept where they happen)."""
        for key, total in totals.items():
            values = key if isinstance(key, tuple) else (key,)
            seen = self._counted.get((name, *values), 0)
            if total > seen:
                counter.labels(**dict(zip(labels, values, strict=True))).inc(total - seen)
                self._counted[(name, *values)] = total
