"""One bot's metrics: the republisher's counters, reply latency by stage, avatar state.

The republisher's counters are read from its ``RepublisherStats`` by a collector at
scrape time (the frame hot path is not touched); per-stage reply latencies come from
:class:`broadcaster.bot.latency.LatencyObserver`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    StateSetMetricFamily,
)
from prometheus_client.registry import Collector

#: reply stages, in order; their sum is the reply latency (speaker stops -> frame out);
#: docs/metrics.md says where each begins and ends
STAGES = ("endpointing", "transcription", "responder", "tts", "avatar", "publish")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0,
                   1.2, 1.5, 2.0, 3.0, 5.0, 10.0)
HOP_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08,
               0.16, 0.32)
AVATAR_STATES = ("starting", "live", "stalled")


class RepublisherCollector(Collector):
    """Reads a ``LiveKitRepublisher``'s ``stats`` at scrape time."""

    COUNTERS = (
        ("frames_in", "broadcaster_republisher_frames_in",
         "Avatar video frames that reached the republisher"),
        ("frames_published", "broadcaster_republisher_frames_published",
         "Real avatar frames captured into LiveKit"),
        ("frames_repeated", "broadcaster_republisher_frames_repeated",
         "Last frame re-captured to hold the frame rate while the avatar was late"),
        ("frames_slate", "broadcaster_republisher_frames_slate",
         "Slate frames captured (avatar stalled or not started)"),
        ("frames_dropped", "broadcaster_republisher_frames_dropped",
         "Frames replaced by a newer one before their turn (arrived faster than fps)"),
        ("frames_unsupported", "broadcaster_republisher_frames_unsupported",
         "Frames in a format the republisher cannot publish"),
        ("audio_frames_in", "broadcaster_republisher_audio_frames_in",
         "Audio frames that reached the republisher"),
        ("audio_frames_published", "broadcaster_republisher_audio_frames_published",
         "Audio frames captured into LiveKit"),
        ("audio_frames_dropped", "broadcaster_republisher_audio_frames_dropped",
         "Avatar speech frames dropped to keep audio within max_audio_lag of video"),
        ("audio_frames_muted", "broadcaster_republisher_audio_frames_muted",
         "Avatar speech frames published as silence (the tail of an interrupted answer)"),
        ("stalls", "broadcaster_avatar_stalls",
         "Times the avatar's video stopped long enough for the slate"),
    )

    def __init__(self, republisher: Any, room: str) -> None:
        self.republisher = republisher
        self.room = room

    def describe(self) -> Iterable[Metric]:
        """Describe nothing up front: the families are collected lazily."""
        return []  # collected lazily; no name clash checks needed at registration

    def collect(self) -> Iterable[Metric]:
        """Read the republisher's counters now."""
        stats = self.republisher.stats
        for attr, name, doc in self.COUNTERS:
            c = CounterMetricFamily(name, doc, labels=["room"])
            c.add_metric([self.room], float(getattr(stats, attr, 0)))
            yield c
        frames = CounterMetricFamily(
            "broadcaster_republisher_frames_out",
            "Video frames captured into LiveKit, by kind (real + repeat + slate)",
            labels=["room", "kind"])
        for kind, attr in (("real", "frames_published"), ("repeat", "frames_repeated"),
                           ("slate", "frames_slate")):
            frames.add_metric([self.room, kind], float(getattr(stats, attr, 0)))
        yield frames
        for attr, name, doc in (
            ("last_hop_ms", "broadcaster_republisher_last_hop_seconds",
             "Last real frame: entry into the republisher -> capture_frame returned"),
            ("last_source_age_ms", "broadcaster_republisher_last_source_age_seconds",
             "Last avatar frame: decoded in the bot -> captured into LiveKit"),
            ("last_audio_lag_ms", "broadcaster_republisher_last_audio_lag_seconds",
             "Last audio frame: entry -> handed to LiveKit, plus LiveKit's queue"),
        ):
            g = GaugeMetricFamily(name, doc, labels=["room"])
            g.add_metric([self.room], float(getattr(stats, attr, 0.0)) / 1e3)
            yield g
        yield avatar_state_family(self.room, avatar_state(stats))


def avatar_state_family(room: str, current: str) -> StateSetMetricFamily:
    """Make the avatar-session state set with ``current`` on."""
    state = StateSetMetricFamily(
        "broadcaster_avatar_session_state",
        "The avatar source: starting (no frame yet), live, stalled (slate shown; in "
        "direct mode: the avatar left the stage room)", labels=["room"])
    state.add_metric([room], {s: s == current for s in AVATAR_STATES})
    return state


class AvatarPresenceCollector(Collector):
    """The avatar's state in direct mode, where no frame passes the bot.

    Set ``state`` as the avatar joins ("live") and leaves ("stalled") the stage room.
    """

    def __init__(self, room: str) -> None:
        self.room = room
        self.state = "starting"

    def collect(self) -> Iterable[Metric]:
        """Report the avatar's state as last set."""
        yield avatar_state_family(self.room, self.state)


def avatar_state(stats: Any) -> str:
    """Return the avatar source's state from republisher counters."""
    if getattr(stats, "stalled", False):
        return "stalled"
    return "live" if getattr(stats, "frames_published", 0) else "starting"


class ResponderCollector(Collector):
    """Replies by where they came from, read from the responder's ``outcomes`` at scrape."""

    ORIGINS = ("notes", "fallback", "conversation", "llm")

    def __init__(self, responder: Any, room: str) -> None:
        self.responder, self.room = responder, room

    def collect(self) -> Iterable[Metric]:
        """Report every origin, the ones never seen as 0 (dashboards see the series)."""
        family = CounterMetricFamily(
            "broadcaster_bot_replies",
            "Replies to the speaker by where they came from: a topic of the notes, the "
            "fallback (the notes did not answer), a conversational reply, or the LLM",
            labels=["room", "source"])
        for origin in self.ORIGINS:
            family.add_metric([self.room, origin], self.responder.outcomes.get(origin, 0))
        yield family


class KeeperCollector(Collector):
    """The avatar keeper's in-place session restarts."""

    def __init__(self, keeper: Any, room: str) -> None:
        self.keeper, self.room = keeper, room

    def collect(self) -> Iterable[Metric]:
        """Report the restarts so far."""
        family = CounterMetricFamily(
            "broadcaster_avatar_session_restarts",
            "Attempts to reopen the avatar session in place after one died or ended",
            labels=["room"])
        family.add_metric([self.room], self.keeper.restarts)
        yield family


class BotMetrics:
    """One bot's metrics. Build once per bot; hand it to the observer and the server."""

    def __init__(self, room: str) -> None:
        self.room = room
        r = self.registry = CollectorRegistry()
        self.stage_seconds = Histogram(
            "broadcaster_bot_stage_seconds",
            "Reply latency by stage (see docs/metrics.md for the stage boundaries)",
            ["room", "stage"], buckets=LATENCY_BUCKETS, registry=r)
        self.reply_seconds = Histogram(
            "broadcaster_bot_reply_seconds",
            "Speaker stops talking -> first avatar video frame of the answer captured "
            "into LiveKit (sum of the stages)",
            ["room"], buckets=LATENCY_BUCKETS, registry=r)
        self.turns = Counter(
            "broadcaster_bot_turns", "Answered turns, by outcome (complete / abandoned)",
            ["room", "outcome"], registry=r)
        self.hop_seconds = Histogram(
            "broadcaster_republish_hop_seconds",
            "Republish hop, frame entry -> LiveKit capture (sampled once per second)",
            ["room"], buckets=HOP_BUCKETS, registry=r)
        self.source_age_seconds = Histogram(
            "broadcaster_republish_source_age_seconds",
            "Avatar frame decoded in the bot -> LiveKit capture (sampled once per second)",
            ["room"], buckets=HOP_BUCKETS, registry=r)
        self.reconnects = Counter(
            "broadcaster_bot_livekit_reconnects",
            "Times the bot's LiveKit connection resumed after a network interruption",
            ["room"], registry=r)
        self.started = Gauge(
            "broadcaster_bot_start_time_seconds",
            "Unix time this bot process started (a change means the bot restarted)",
            ["room"], registry=r)
        self.started.labels(room=room).set(time.time())
        self._republisher: Any = None
        self._rooms: list[Any] = []
        for stage in STAGES:  # export zero series up front so dashboards see every stage
            self.stage_seconds.labels(room=room, stage=stage)
        self.reply_seconds.labels(room=room)
        for outcome in ("complete", "abandoned"):
            self.turns.labels(room=room, outcome=outcome)
        self.reconnects.labels(room=room)

    def watch_republisher(self, republisher: Any) -> None:
        """Export ``republisher.stats`` (read at scrape time) and sample its hop."""
        self._republisher = republisher
        self.registry.register(RepublisherCollector(republisher, self.room))

    def watch_responder(self, responder: Any) -> None:
        """Export the responder's replies by origin (read at scrape time)."""
        self.registry.register(ResponderCollector(responder, self.room))

    def watch_keeper(self, keeper: Any) -> None:
        """Export how many avatar sessions the keeper reopened in place (read at scrape)."""
        self.registry.register(KeeperCollector(keeper, self.room))

    def watch_avatar_presence(self) -> AvatarPresenceCollector:
        """Direct mode: export the avatar's state as the caller sets it."""
        collector = AvatarPresenceCollector(self.room)
        self.registry.register(collector)
        return collector

    def watch_room(self, room: Any) -> None:
        """Count reconnects of an ``rtc.Room`` (call once it exists)."""
        if any(r is room for r in self._rooms):
            return
        self._rooms.append(room)
        room.on("reconnected", lambda *_: self.reconnects.labels(room=self.room).inc())

    def observe_stages(self, stages: dict[str, float], total: float | None) -> None:
        """Record one turn: its stages and, if complete, its total."""
        for stage, seconds in stages.items():
            self.stage_seconds.labels(room=self.room, stage=stage).observe(max(0.0, seconds))
        if total is not None:
            self.reply_seconds.labels(room=self.room).observe(max(0.0, total))
            self.turns.labels(room=self.room, outcome="complete").inc()
        else:
            self.turns.labels(room=self.room, outcome="abandoned").inc()

    async def sample_hops(self, period: float = 1.0) -> None:
        """Observe the republisher's last hop each ``period`` while new frames flow."""
        seen = -1
        while True:
            await asyncio.sleep(period)
            rep = self._republisher
            if rep is None:
                continue
            stats = rep.stats
            if stats.frames_published != seen and stats.frames_published > 0:
                seen = stats.frames_published
                self.hop_seconds.labels(room=self.room).observe(stats.last_hop_ms / 1e3)
                if stats.last_source_age_ms > 0:
                    self.source_age_seconds.labels(room=self.room).observe(
                        stats.last_source_age_ms / 1e3)
