"""The local avatar service: the aiohttp app and ``serve()`` for the CLI and supervisor.

``broadcaster serve avatar`` (and ``python -m broadcaster.avatar``) run
:func:`serve` until cancelled. Readiness: ``GET /healthz`` answers 200.

aiohttp's access log is off on purpose: the control socket's URL carries its
secret in the query string, and an access log would write it to disk.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from loguru import logger

from broadcaster.avatar import api, control
from broadcaster.avatar.sessions import SessionRegistry
from broadcaster.config import Settings
from broadcaster.netutil import server_limits


def build_app(settings: Settings, registry: SessionRegistry | None = None) -> web.Application:
    """Build the LiveAvatar-compatible application (routes under ``/v1`` like HeyGen's)."""
    app = web.Application(middlewares=[api.json_errors])
    app[api.SETTINGS_KEY] = settings
    app[api.REGISTRY_KEY] = registry or SessionRegistry(settings)
    app.router.add_post("/v1/sessions/token", api.create_token)
    app.router.add_post("/v1/sessions/start", api.start_session)
    app.router.add_post("/v1/sessions/stop", api.stop_session)
    app.router.add_get("/v1/sessions", api.list_sessions)
    app.router.add_get("/v1/ws/{session_id}", control.websocket)
    app.router.add_get("/healthz", api.healthz)

    async def on_startup(app: web.Application) -> None:
        app[api.REGISTRY_KEY].start_reaper()

    async def on_shutdown(app: web.Application) -> None:
        # Close sessions (and their sockets) before aiohttp waits for handlers to end.
        await app[api.REGISTRY_KEY].aclose()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    return app


async def serve(settings: Settings) -> None:
    """Run the service on ``avatar_host:avatar_port`` until cancelled, then stop cleanly."""
    if not settings.avatar_api_key:
        raise ValueError("avatar_api_key is empty: load Settings with generate_secrets=True")
    app = build_app(settings)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, **server_limits(settings))
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.avatar_host, settings.avatar_port)
        await site.start()
        logger.info(
            "local avatar service on http://{}:{} (API {}), LiveKit {}",
            settings.avatar_host, settings.avatar_port,
            f"http://{settings.avatar_host}:{settings.avatar_port}/v1",
            settings.effective_livekit_url,
        )
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        logger.info("local avatar service stopped")
