"""Who is calling: the host, a participant, or a scraper on this machine.

The host shows the host key, a participant their LiveKit token, and a ``/metrics``
scraper connects from this machine.

Every path under ``/api/host/`` needs the host key, enforced by one middleware
so no host route can forget it. Wrong keys are limited per source address: past
``host_key_failure_burst`` the address gets 429 for every host route, the right key
included, so the limit is no oracle; the host on another address never waits.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping

from aiohttp import web
from aiohttp.typedefs import Handler
from livekit import api
from loguru import logger

from broadcaster.netutil import is_local_host_header
from broadcaster.roles import InvalidInput, verify_token
from broadcaster.shards import stage_of
from broadcaster.web.client_address import client_key
from broadcaster.web.errors import forbidden, too_many, unauthorized
from broadcaster.web.keys import HOST_KEY_FAILURES, HOST_KEY_LOG, SETTINGS

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
    """Answer 401 to any ``/api/host/`` request without the host key, before its route.

    429 (with ``Retry-After``) to an address that presented too many wrong keys.
    """
    if request.path.startswith(HOST_PREFIX):
        check_host_key(request)
    return await handler(request)


def check_host_key(request: web.Request) -> None:
    """Raise 401 without the right host key; 429 for an address past its wrong-key limit.

    A request with no key at all is not a guess and is not counted. Log lines name the
    address, never a key.
    """
    if bearer(request) is None:
        raise unauthorized("host key missing")
    failures = request.app[HOST_KEY_FAILURES]
    address = client_key(request, request.app[SETTINGS].trusted_proxy_networks)
    wait = failures.wait(address)
    if wait is None and is_host(request):
        return
    if wait is None:
        wait = failures.hit(address)
        if wait is None:
            raise unauthorized("host key is wrong")
    skipped = request.app[HOST_KEY_LOG].allow()
    if skipped is not None:
        logger.warning(f"host routes refused to {address} for {wait:.0f} s: too many wrong "
                       f"host keys ({skipped} more such refusals since the last line)")
    raise too_many("too many wrong host keys from this address; try again later", wait)


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
