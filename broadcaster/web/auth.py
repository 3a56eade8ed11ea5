"""Who is calling: the host (host key) or a participant (their LiveKit token).

Every path under ``/api/host/`` needs the host key, enforced by one middleware
so no host route can forget it.
"""

from __future__ import annotations

import hmac

from aiohttp import web
from livekit import api

from broadcaster.roles import InvalidInput, verify_token
from broadcaster.web.errors import forbidden, unauthorized
from broadcaster.web.keys import SETTINGS

HOST_PREFIX = "/api/host/"


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def is_host(request: web.Request) -> bool:
    """Constant-time comparison of the presented bearer with the configured host key."""
    token = bearer(request)
    key = request.app[SETTINGS].host_key
    return bool(token and key) and hmac.compare_digest(token.encode(), key.encode())


@web.middleware
async def host_guard(request: web.Request, handler: web.Handler) -> web.StreamResponse:
    if request.path.startswith(HOST_PREFIX) and not is_host(request):
        raise unauthorized(
            "host key missing" if bearer(request) is None else "host key is wrong"
        )
    return await handler(request)


def participant(request: web.Request, room: str) -> api.access_token.Claims:
    """The verified claims of the participant token in ``Authorization`` for ``room``."""
    token = bearer(request)
    if token is None:
        raise unauthorized("participant token missing (Authorization: Bearer <token>)")
    try:
        claims = verify_token(request.app[SETTINGS], token)
    except InvalidInput as exc:
        raise unauthorized(str(exc)) from None
    if claims.video is None or claims.video.room != room:
        raise forbidden("token is for another room")
    return claims


def role_of(claims: api.access_token.Claims) -> str:
    return (claims.attributes or {}).get("role", "")
