"""Serving a bot's metrics over HTTP, and the text exposition both processes use."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

from loguru import logger
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from broadcaster.metrics.bot import BotMetrics
from broadcaster.netutil import is_local_host_header


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    """Return the text exposition of ``registry`` and its content type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST


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
                             state_dir: str | os.PathLike[str] | None = None
                             ) -> AsyncIterator[int | None]:
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
        # loopback only, and only when Host names this machine: a page a browser was
        # tricked into loading from a DNS-rebinding domain names that domain instead
        if not is_local_host_header(request.headers.get("Host"), host):
            return web.json_response({"error": "Host must name this machine"}, status=421)
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
