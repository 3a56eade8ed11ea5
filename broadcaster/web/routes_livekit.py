"""``POST /api/livekit/webhook``: livekit-server's events, verified with our API key.

LiveKit checks a token's grants once, at join. A presenter demoted by the host keeps
her old token, and with it could rejoin and publish to every viewer; so whenever
someone joins or publishes, the webinar's floor is applied to them again
(:meth:`broadcaster.web.floor.FloorGuard.police`; the periodic reconciliation covers
the webhooks LiveKit drops). Requests must carry LiveKit's signature (a JWT in
``Authorization`` whose ``sha256`` claim matches the body); anything else gets 401,
and an event id already acted on is not acted on again (a replay within the JWT's
five minutes).
"""

from __future__ import annotations

from aiohttp import web
from livekit import api
from loguru import logger

from broadcaster.config import WEBHOOK_PATH
from broadcaster.web.body import read_raw
from broadcaster.web.errors import bad_request, unauthorized
from broadcaster.web.keys import FLOOR, SETTINGS, WEBHOOK_IDS, WEBINARS
from broadcaster.web.rate_limit import LogThrottle

routes = web.RouteTableDef()

#: events after which someone may hold rights they should not have
POLICED_EVENTS = frozenset({"participant_joined", "track_published"})
_REFUSALS = LogThrottle(10.0)


@routes.post(WEBHOOK_PATH)
async def livekit_webhook(request: web.Request) -> web.Response:
    """``POST /api/livekit/webhook`` (livekit-server, signed): police joins and publishes."""
    settings = request.app[SETTINGS]
    auth = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not auth:
        raise unauthorized("webhook signature missing (Authorization)")
    raw = await read_raw(request)
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("webhook body is not UTF-8") from None
    receiver = api.WebhookReceiver(
        api.TokenVerifier(settings.livekit_api_key, settings.livekit_api_secret))
    try:
        event = receiver.receive(body, auth)
    except Exception as exc:  # livekit-api raises plain Exceptions (bad JWT, hash mismatch)
        skipped = _REFUSALS.allow()
        if skipped is not None:  # anyone can send these: one line per 10 s at most
            logger.warning("webhook refused: {}{}", type(exc).__name__,
                           f" ({skipped} more refused since the last line)" if skipped else "")
        raise unauthorized("webhook signature is not valid") from None
    if event.id and request.app[WEBHOOK_IDS].seen(event.id):
        logger.info("webhook {} ({}) seen before: not acted on again", event.id, event.event)
        return web.json_response({"ok": True, "event": event.event, "action": None,
                                  "duplicate": True})
    svc = request.app[WEBINARS]
    room, identity = event.room.name, event.participant.identity
    done = None
    if event.event in POLICED_EVENTS and room and identity:
        done = await request.app[FLOOR].police(room, identity, event.participant.permission)
    if event.event.startswith("participant_") and room:
        svc.forget_audience(room)
    return web.json_response({"ok": True, "event": event.event, "action": done})
