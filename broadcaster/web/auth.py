"""Who is calling: the host, a participant, or a scraper on this machine.

The host shows the host key, a participant their LiveKit token, and a ``/metrics``
scraper connects from this machine.

Every path under ``/api/host/`` needs the host key, enforced by one middleware
so no host route can forget it.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping

from aiohttp import web
from aiohttp.typedefs import Handler
from livekit import api

from broadcaster.netutil import is_local_host_header
from broadcaster.roles import InvalidInput, verify_token
from broadcaster.shards import stage_of
from broadcaster.web.errors import forbidden, unauthorized
from broadcaster.web.keys import SETTINGS

HOST_PREFIX = "/api/host/"


def bearer(request: web.Request) -> str | None:
    """Return the token of ``Authorization: Bearer <token>``, or None when there is none."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def is_host(request: web.Request) -> bool:
    """Constant-time comparison of the presented bearer with the configured host key."""
    token = bearer(request)
    key = request.app[SETTINGS].host_key
    if not token or not key:
        return False
    return same_secret(token, key)


def same_secret(given: str, expected: str) -> bool:
    """Compare text a client sent with a secret, in constant time.

    Header values arrive with undecodable bytes as lone surrogates, so both sides are
    encoded with ``surrogateescape`` rather than raising.
    """
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"),
                               expected.encode("utf-8", "surrogateescape"))


@web.middleware
async def host_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer 401 to any ``/api/host/`` request without the host key, before its route."""
    if request.path.startswith(HOST_PREFIX) and not is_host(request):
        raise unauthorized(
            "host key missing" if bearer(request) is None else "host key is wrong"
        )
    return await handler(request)


def participant(request: web.Request, room: str) -> api.access_token.Claims:
    """Return the verified claims of the participant token in ``Authorization``.

    401 when it is missing, forged or expired; 403 when it is for another room than ``room``.
    """
    token = bearer(request)
    if token is None:
        raise unauthorized("participant token missing (Authorization: Bearer <token>)")
    try:
        claims = verify_token(request.app[SETTINGS], token)
    except InvalidInput as exc:
        raise unauthorized(str(exc)) from None
    shards = request.app[SETTINGS].audience_shards  # a viewer's token names its shard
    if claims.video is None or stage_of(claims.video.room, shards) != room:
        raise forbidden("token is for another room")
    return claims


def is_local_request(request: web.Request, headers: Mapping[str, str] | None = None) -> bool:
    """Tell whether the request comes straight from this machine and names it in ``Host``.

    A reverse proxy adds X-Forwarded-For / Forwarded, so those headers disqualify it; a
    browser tricked by DNS rebinding names another host in ``Host``.
    """
    headers = request.headers if headers is None else headers
    remote = request.remote
    if not remote or "X-Forwarded-For" in headers or "Forwarded" in headers:
        return False
    try:
        loopback = ipaddress.ip_address(remote.split("%", 1)[0]).is_loopback
    except ValueError:
        loopback = remote == "unix"
    if not loopback:
        return False
    return is_local_host_header(headers.get("Host"), request.app[SETTINGS].web_host)
