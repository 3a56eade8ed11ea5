"""The aiohttp application: middlewares, app keys, routes, startup and shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from loguru import logger

from broadcaster.config import Settings, http_url
from broadcaster.netutil import server_limits
from broadcaster.roles import InvalidInput
from broadcaster.web import (
    routes_audience,
    routes_bans,
    routes_host,
    routes_livekit,
    routes_metrics,
    routes_pages,
    routes_public,
    routes_recordings,
    routes_rehearsal,
)
from broadcaster.web.access_log import AccessLogger, log_path
from broadcaster.web.audience import Audience
from broadcaster.web.auth import host_guard
from broadcaster.web.bot_control import BotLauncher, rehearsal_command
from broadcaster.web.errors import ApiError, json_error
from broadcaster.web.floor import FloorGuard
from broadcaster.web.keys import (
    AUDIENCE,
    BOTS,
    FLOOR,
    HOST_KEY_FAILURES,
    HOST_KEY_LOG,
    LIVEKIT,
    REHEARSALS,
    SETTINGS,
    STORE,
    VENDOR_JS,
    WEBHOOK_IDS,
    WEBINARS,
)
from broadcaster.web.livekit_admin import LiveKitAdmin, LiveKitError
from broadcaster.web.rate_limit import LogThrottle, RecentIds, TokenBuckets
from broadcaster.web.store import Store
from broadcaster.web.webinars import Webinars

MAX_BODY_BYTES = 64 * 1024
DEMO_TITLE = "Demo webinar"


def content_security_policy(settings: Settings) -> str:
    """Only our own origin, plus the LiveKit server the pages connect to."""
    browser = settings.browser_livekit_url
    livekit = f"{browser} {http_url(browser)}"
    return "; ".join([
        "default-src 'self'",
        f"connect-src 'self' {livekit}",
        "media-src 'self' blob: mediastream:",
        "img-src 'self' data: blob:",
        "script-src 'self'",
        "style-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


def _security_headers(csp: str) -> Middleware:
    @web.middleware
    async def security_headers(
        request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        response = await handler(request)
        h = response.headers
        h["Content-Security-Policy"] = csp
        h["Referrer-Policy"] = "no-referrer"
        h["X-Content-Type-Options"] = "nosniff"
        h["X-Frame-Options"] = "DENY"
        h["Cross-Origin-Opener-Policy"] = "same-origin"
        h["Permissions-Policy"] = "microphone=(self), camera=(), geolocation=()"
        if request.path.startswith("/api/") or request.path in ("/healthz", "/readyz"):
            h["Cache-Control"] = "no-store"
        return response

    return security_headers


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure, ours or aiohttp's (404, 405, 413...), as ``{"error": reason}``."""
    try:
        return await handler(request)
    except ApiError as exc:
        return json_error(exc.status, exc.reason, headers=exc.headers)
    except InvalidInput as exc:
        return json_error(422, str(exc))
    except web.HTTPRequestEntityTooLarge:
        return json_error(413, f"request body too large (max {MAX_BODY_BYTES} bytes)")
    except web.HTTPMethodNotAllowed as exc:
        allow = ", ".join(sorted(exc.allowed_methods))
        return json_error(405, f"method {exc.method} not allowed (allowed: {allow})",
                          headers={"Allow": allow})
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return json_error(exc.status, exc.reason.lower())
    except LiveKitError as exc:
        logger.warning("{} {}: {}", request.method, log_path(request), exc)
        return json_error(502, str(exc))
    except Exception as exc:  # (CancelledError is not an Exception: cancellation passes)
        # A bug, not bad input (that is a 4xx above). One line, no traceback with local
        # variables: a log must not grow by a hundred lines per request anyone can send.
        logger.error("{} {} failed: {} at {}", request.method, log_path(request),
                     type(exc).__name__, _where(exc))
        return json_error(500, "internal error")


def _where(exc: BaseException) -> str:
    """file:line of the innermost frame of ``exc`` (enough to find the bug)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return "?"
    return f"{Path(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno}"


async def _services(app: web.Application) -> AsyncIterator[None]:
    """Run the services that need the running loop, for the app's lifetime.

    LiveKit's API client needs the running loop, so it lives in a cleanup context; so
    does the floor guard's reconciliation (at start, then every few seconds).
    """
    admin = LiveKitAdmin(app[SETTINGS])
    app[LIVEKIT] = admin
    webinars = app[WEBINARS] = Webinars(app[SETTINGS], app[STORE], admin)
    audience = app[AUDIENCE] = Audience(webinars)
    guard = app[FLOOR] = FloorGuard(webinars)
    guard.observers.append(audience.drop_absent_hands)
    guard.start()
    await app[BOTS].resume(lambda room: webinars.store.webinar(room) is not None)
    try:
        yield
    finally:
        await guard.stop()
        await app[BOTS].stop_all(remember=True)  # the next web app starts them again
        await app[REHEARSALS].stop_all()
        await admin.close()
        app[STORE].close()


def create_app(
    settings: Settings,
    *,
    bots: BotLauncher | None = None,
    vendor_js: Path | None = None,
    rehearsals: BotLauncher | None = None,
) -> web.Application:
    """Build the whole web app; ``bots`` and ``vendor_js`` are injectable for tests."""
    app = web.Application(
        middlewares=[_security_headers(content_security_policy(settings)), json_errors,
                     host_guard],
        client_max_size=MAX_BODY_BYTES,
    )
    app[SETTINGS] = settings
    app[STORE] = Store(settings.db_path)
    app[BOTS] = bots or BotLauncher(
        settings, running_file=Path(settings.state_dir) / "bots-running.json")
    app[REHEARSALS] = rehearsals or BotLauncher(settings, rehearsal_command)
    app[WEBHOOK_IDS] = RecentIds(settings.webhook_dedupe_seconds)
    app[HOST_KEY_FAILURES] = TokenBuckets(settings.host_key_failure_burst,
                                          settings.host_key_failure_rate_per_minute)
    app[HOST_KEY_LOG] = LogThrottle()
    app[VENDOR_JS] = vendor_js or routes_pages.LIVEKIT_CLIENT_JS
    app.cleanup_ctx.append(_services)
    app.add_routes(routes_public.routes)
    app.add_routes(routes_host.routes)
    app.add_routes(routes_recordings.routes)
    app.add_routes(routes_rehearsal.routes)
    app.add_routes(routes_bans.routes)
    app.add_routes(routes_audience.routes)
    app.add_routes(routes_pages.routes)
    app.add_routes(routes_metrics.routes)
    app.add_routes(routes_livekit.routes)
    return app


def make_runner(app: web.Application, settings: Settings) -> web.AppRunner:
    """Build the runner ``serve`` uses: our access log, and idle connections closed.

    Idle or trickling connections close after ``http_idle_timeout_seconds`` (aiohttp's own
    default holds them an hour).
    """
    return web.AppRunner(app, access_log_class=AccessLogger, handle_signals=False,
                         **server_limits(settings))


async def ensure_demo(app: web.Application) -> None:
    """Create ``settings.demo_room`` once so a fresh ``broadcaster up`` is usable at once."""
    settings, svc = app[SETTINGS], app[WEBINARS]
    if not settings.demo_room:
        return
    webinar = svc.store.webinar(settings.demo_room)
    if webinar is None:
        webinar = await svc.create(DEMO_TITLE, settings.demo_room)
    links = svc.links(webinar)
    # the presenter link holds the invite code: it goes to the terminal (``up``) and the
    # host console, never into a log line
    logger.info("viewer link:    {}", links["viewer_url"])
    logger.info("presenter link: in the host console ({}/host)", settings.effective_public_url)


async def serve(settings: Settings) -> None:
    """Run the web app until cancelled, then shut down cleanly.

    The demo webinar is created before the port opens, so once /healthz answers
    its pages answer too.
    """
    app = create_app(settings)
    runner = make_runner(app, settings)
    await runner.setup()
    try:
        try:
            await ensure_demo(app)
        except (LiveKitError, ApiError) as exc:
            logger.warning("demo webinar not created: {}", exc)
        site = web.TCPSite(runner, settings.web_host, settings.web_port)
        try:
            await site.start()
        except OSError as exc:
            raise OSError(
                exc.errno, f"web port {settings.web_host}:{settings.web_port} is taken or "
                f"unusable: {exc.strerror}"
            ) from exc
        logger.info("web app on {} (host console: {}/host)",
                    settings.effective_public_url, settings.effective_public_url)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        logger.info("web app stopped")
