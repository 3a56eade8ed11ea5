"""Prometheus metrics of broadcaster, all defined here (docs/metrics.md lists them).

Two processes expose ``/metrics``:

- the web app (:class:`WebMetrics`): audience per room, live webinars, bot processes;
  refreshed from the LiveKit server API when scraped (viewers are ``hidden``, so the
  server API is the only place that counts them);
- each bot (:class:`BotMetrics`): the republisher's frame counters, read from its
  ``RepublisherStats`` by a collector at scrape time (the frame hot path is not
  touched), the republish hop, per-stage reply latencies (from
  :class:`broadcaster.bot.latency.LatencyObserver`), avatar-session state and LiveKit
  reconnects. :func:`bot_metrics_server` serves them on ``bot_metrics_port``.

Every instance has its own ``CollectorRegistry`` (no process-global state), so tests
and benchmarks can build as many as they like.

Modules: ``web`` (WebMetrics), ``bot`` (BotMetrics and its collectors), ``server`` (the
bot's HTTP endpoint, the text exposition).
"""

from prometheus_client import disable_created_metrics

disable_created_metrics()  # no *_created series: they only add noise to every scrape

from broadcaster.metrics.bot import STAGES, BotMetrics  # noqa: E402
from broadcaster.metrics.server import bot_metrics_server, metrics_port_file, render  # noqa: E402
from broadcaster.metrics.web import WebMetrics  # noqa: E402

__all__ = [
    "STAGES",
    "BotMetrics",
    "WebMetrics",
    "bot_metrics_server",
    "metrics_port_file",
    "render",
]
