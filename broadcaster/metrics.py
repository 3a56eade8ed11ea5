"""Prometheus metrics of broadcaster, all defined here (docs/metrics.md lists them).

Two processes expose ``/metrics``:

- the web app (:class:`WebMetrics`): audience per room, live webinars, bot processes;
  refreshed from the LiveKit server API when scraped (viewers are ``hidden``, so the
  server API is the only place that counts them);
- each bot (:class:`BotMetrics`): the republisher's frame counters, read from its
  ``RepublisherStats`` by a collector at scrape time (the frame hot path is not
  touched), the republish hop, per-stage reply latencies (from
  :class:`broadcaster.bot.latency.LatencyObserver`), avatar-session state and LiveKit
  reconnects. :func:`start_bot_metrics_server` serves them on ``bot_metrics_port``.

Every instance has its own ``CollectorRegistry`` (no process-global state), so tests
and benchmarks can build as many as they like.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from loguru import logger
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    StateSetMetricFamily,
)
from prometheus_client.registry import Collector

disable_created_metrics()  # no *_created series: they only add noise to every scrape

#: reply stages, in order; their sum is the reply latency (speaker stops -> frame out)
STAGES = ("endpointing", "transcription", "responder", "tts", "avatar", "publish")
STAGE_HELP = {
    "endpointing": "speaker's last word -> VAD calls the utterance over (VAD stop_secs)",
    "transcription": "VAD stop -> final transcript",
    "responder": "transcript -> first responder (LLM) text",
    "tts": "responder text -> first TTS audio",
    "avatar": "first TTS audio -> first avatar speech audio out of HeyGenVideoService "
              "(the avatar's mouth opens)",
    "publish": "avatar speech -> first avatar video frame captured into LiveKit after it",
}
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0,
                   1.2, 1.5, 2.0, 3.0, 5.0, 10.0)
HOP_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08,
               0.16, 0.32)
AVATAR_STATES = ("starting", "live", "stalled")
#: the stage room's own audience; audience shard rooms (scale-out) add their own series
STAGE_SHARD = "stage"


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The text exposition of ``registry`` and its content type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST


# --------------------------------------------------------------------------------------
# Web app
# --------------------------------------------------------------------------------------


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

    async def refresh(self, webinars: Any, bots: Any = None, timeout: float = 5.0) -> None:
        """Re-read audience counts (cached by ``Webinars.audience``) and bot states."""
        started = time.monotonic()
        live = [w for w in webinars.store.webinars() if w.ended_at is None]
        self.webinars_live.set(len(live))

        async def one(room: str) -> tuple[str, dict[str, int] | None]:
            try:
                return room, await asyncio.wait_for(webinars.audience(room), timeout)
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


def is_local_request(remote: str | None, headers: Any) -> bool:
    """A direct loopback connection (a reverse proxy adds X-Forwarded-For / Forwarded)."""
    if not remote or "X-Forwarded-For" in headers or "Forwarded" in headers:
        return False
    try:
        return ipaddress.ip_address(remote.split("%", 1)[0]).is_loopback
    except ValueError:
        return remote == "unix"


# --------------------------------------------------------------------------------------
# Bot
# --------------------------------------------------------------------------------------


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
        return []  # collected lazily; no name clash checks needed at registration

    def collect(self) -> Iterable[Metric]:
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
    state = StateSetMetricFamily(
        "broadcaster_avatar_session_state",
        "The avatar source: starting (no frame yet), live, stalled (slate shown; in "
        "direct mode: the avatar left the stage room)", labels=["room"])
    state.add_metric([room], {s: s == current for s in AVATAR_STATES})
    return state


class AvatarPresenceCollector(Collector):
    """The avatar's state in direct mode, where no frame passes the bot: set ``state``
    as the avatar joins ("live") and leaves ("stalled") the stage room."""

    def __init__(self, room: str) -> None:
        self.room = room
        self.state = "starting"

    def collect(self) -> Iterable[Metric]:
        yield avatar_state_family(self.room, self.state)


def avatar_state(stats: Any) -> str:
    if getattr(stats, "stalled", False):
        return "stalled"
    return "live" if getattr(stats, "frames_published", 0) else "starting"


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


def metrics_port_file(state_dir: str | os.PathLike[str], room: str) -> Path:
    """Where a bot writes the port its /metrics listens on."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in room)
    return Path(state_dir) / "metrics" / f"bot-{safe}.port"


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(16)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


@contextlib.asynccontextmanager
async def bot_metrics_server(metrics: BotMetrics, host: str, port: int,
                             state_dir: str | os.PathLike[str] | None = None) -> Any:
    """Serve ``metrics`` at ``http://host:port/metrics`` while the context is open.

    ``port`` 0 turns the server off (yields None). A taken port (a second bot on the
    same machine) falls back to a free one; the port in use is written to
    :func:`metrics_port_file` either way. Yields the port.
    """
    if port <= 0:
        yield None
        return
    from aiohttp import web

    async def handler(request: web.Request) -> web.Response:
        body, ctype = render(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": ctype})

    app = web.Application()
    app.router.add_get("/metrics", handler)
    try:
        sock = _bind(host, port)
    except OSError as exc:
        try:
            sock = _bind(host, 0)
        except OSError as exc2:
            logger.warning(f"bot metrics off: cannot listen on {host}: {exc2}")
            yield None
            return
        logger.info(f"bot metrics port {port} is taken ({exc.strerror}); "
                    f"using {sock.getsockname()[1]}")
    actual = sock.getsockname()[1]
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    sampler = asyncio.ensure_future(metrics.sample_hops())
    port_file = metrics_port_file(state_dir, metrics.room) if state_dir else None
    try:
        await web.SockSite(runner, sock).start()
        if port_file is not None:
            port_file.parent.mkdir(parents=True, exist_ok=True)
            port_file.write_text(f"{actual}\n")
        logger.info(f"bot metrics on http://{host}:{actual}/metrics")
        yield actual
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
        if port_file is not None:
            with contextlib.suppress(OSError):
                port_file.unlink()
        await runner.cleanup()
