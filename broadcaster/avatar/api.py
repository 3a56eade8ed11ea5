"""The LiveAvatar HTTP API, as pipecat 1.14's ``LiveAvatarApi`` calls it.

Every answer is JSON (``Content-Type: application/json``): pipecat calls
``response.json()`` on success and logs the text of a failure, so a failure
says why in ``message``. The envelope is LiveAvatar's:
``{"code": ..., "data": ..., "message": ...}``.

* ``POST /v1/sessions/token`` -- ``X-API-KEY``; 401 bad key, 422 malformed body,
  404 unknown avatar; ``data: {session_id, session_token}``.
* ``POST /v1/sessions/start`` -- ``Authorization: Bearer <session_token>``; no
  body is read (pipecat sends an empty octet-stream); ``data`` holds the six
  fields pipecat requires.
* ``POST /v1/sessions/stop`` -- Bearer session token or ``X-API-KEY``, body
  ``{session_id}`` (optional with a Bearer token); idempotent.
* ``GET /v1/sessions`` -- ``X-API-KEY``; a debug view of every session (no secrets).
* ``GET /healthz`` -- readiness.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from typing import Any

from aiohttp import web
from loguru import logger

from broadcaster.avatar.schema import AVATARS, InvalidRequest, check_unicode, parse_token_request
from broadcaster.avatar.sessions import CapacityError, Session, SessionRegistry, StartError
from broadcaster.config import Settings, http_url

REGISTRY_KEY: web.AppKey[SessionRegistry] = web.AppKey("avatar_registry", SessionRegistry)
SETTINGS_KEY: web.AppKey[Settings] = web.AppKey("avatar_settings", Settings)
OK_CODE = 100  # LiveAvatar's success code


def json_ok(data: Any, message: str = "success", status: int = 200) -> web.Response:
    """Answer in LiveAvatar's success envelope (pipecat reads ``data``)."""
    return web.json_response({"code": OK_CODE, "data": data, "message": message}, status=status)


def json_error(status: int, message: str) -> web.Response:
    """Answer in LiveAvatar's envelope with ``code`` = ``status``; pipecat logs ``message``."""
    return web.json_response({"code": status, "data": None, "message": message}, status=status)


@web.middleware
async def json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Turn aiohttp's own 404/405/413 text answers into JSON like ours.

    Anything else escaping a handler is a bug: one log line (no traceback a client could
    make us write over and over) and a JSON 500.
    """
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return json_error(exc.status, exc.reason)
    except BadBody as exc:
        return json_error(exc.status, str(exc))
    except Exception as exc:  # (CancelledError is not an Exception)
        path = request.rel_url.raw_path[:200]  # as sent: a decoded %0a could forge a line
        logger.error("{} {} failed: {}", request.method, path, type(exc).__name__)
        return json_error(500, "internal error")


class BadBody(ValueError):
    """The body could not be read (too slow, cut short): ``status`` is 408 or 400."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _api_key_ok(request: web.Request) -> bool:
    expected = request.app[SETTINGS_KEY].avatar_api_key
    given = request.headers.get("X-API-KEY", "")
    return bool(expected) and same_secret(given, expected)


def same_secret(given: str, expected: str) -> bool:
    """Compare text a client sent with a secret, in constant time.

    Header and query values arrive with undecodable bytes as lone surrogates, so both
    sides are encoded with ``surrogateescape`` rather than raising.
    """
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"),
                               expected.encode("utf-8", "surrogateescape"))


def _bearer(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def _json_body(request: web.Request, *, required: bool) -> Any:
    """Return the parsed body, or None when it is empty and not required.

    Raises InvalidRequest (422) for bad JSON (huge numbers, deep nesting, lone surrogates
    included), BadBody (408/400) for a body that trickles in or is cut short.
    """
    timeout = request.app[SETTINGS_KEY].http_body_timeout_seconds
    try:
        raw = await asyncio.wait_for(request.read(), timeout)
    except TimeoutError:
        raise BadBody(f"the request body did not arrive within {timeout:g} s", 408) from None
    except (ConnectionError, asyncio.IncompleteReadError) as exc:
        raise BadBody(f"the request body was cut short ({type(exc).__name__})", 400) from None
    if not raw.strip():
        if required:
            raise InvalidRequest("a JSON body is required")
        return None
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:  # incl. ints past Python's digit limit
        raise InvalidRequest(f"the body is not valid JSON: {str(exc)[:160]}") from None
    except RecursionError:
        raise InvalidRequest("the body is not valid JSON: nested too deeply") from None
    check_unicode(body)
    return body


def _ws_url(request: web.Request, session: Session) -> str:
    """Where the client reaches our control socket: the host it reached us at."""
    proto = request.headers.get("X-Forwarded-Proto", request.scheme)
    scheme = "wss" if proto == "https" else "ws"
    return f"{scheme}://{request.host}/v1/ws/{session.id}?token={session.ws_token}"


async def create_token(request: web.Request) -> web.Response:
    """``POST /v1/sessions/token`` (X-API-KEY): register a session, answer its id and token."""
    if not _api_key_ok(request):
        return json_error(401, "missing or invalid X-API-KEY")
    try:
        body = await _json_body(request, required=True)
        session_request = parse_token_request(body)
    except InvalidRequest as exc:
        return json_error(422, str(exc))
    if session_request.avatar_id not in AVATARS:
        return json_error(
            404,
            f"avatar_id {session_request.avatar_id[:80]!r} is not available here; "
            f"this local service has {', '.join(AVATARS)}",
        )
    target = session_request.livekit
    settings = request.app[SETTINGS_KEY]
    if target is not None and not _our_livekit(target.url, settings):
        return json_error(
            422, "livekit_config.livekit_url must be this service's LiveKit server "
            f"({settings.browser_livekit_url}); it joins no other")
    try:
        session = request.app[REGISTRY_KEY].create(session_request)
    except CapacityError as exc:
        return json_error(429, str(exc))
    return json_ok({"session_id": session.id, "session_token": session.token})


def _our_livekit(url: str, settings: Settings) -> bool:
    """Tell whether ``url`` is the LiveKit server this service is configured for.

    Direct mode joins that server and no other: a key holder must not make it connect
    anywhere else, e.g. into an internal network.
    """
    def norm(u: str) -> str:
        return http_url(u.strip()).rstrip("/").lower()

    return norm(url) in {norm(settings.effective_livekit_url), norm(settings.browser_livekit_url)}


async def start_session(request: web.Request) -> web.Response:
    """``POST /v1/sessions/start`` (Bearer session token): start it, answer pipecat's fields."""
    token = _bearer(request)
    if token is None:
        return json_error(401, "missing Authorization: Bearer <session_token>")
    registry = request.app[REGISTRY_KEY]
    session = registry.by_token(token)
    if session is None:
        return json_error(401, "unknown session token")
    try:
        await registry.start(session, _ws_url(request, session))
    except StartError as exc:
        return json_error(exc.status, str(exc))
    return json_ok(session.start_data())


async def stop_session(request: web.Request) -> web.Response:
    """``POST /v1/sessions/stop`` (Bearer token of that session, or X-API-KEY); idempotent."""
    registry = request.app[REGISTRY_KEY]
    token = _bearer(request)
    by_token = registry.by_token(token) if token else None
    if by_token is None and not _api_key_ok(request):
        return json_error(401, "a valid Bearer session token or X-API-KEY is required")
    try:
        body = await _json_body(request, required=by_token is None)
    except InvalidRequest as exc:
        return json_error(422, str(exc))
    session_id: Any = None
    if body is not None:
        if not isinstance(body, dict):
            return json_error(422, "the body must be a JSON object")
        session_id = body.get("session_id")
        if session_id is not None and not isinstance(session_id, str):
            return json_error(422, "session_id must be a string")
    if session_id is None:
        if by_token is None:
            return json_error(422, "session_id is required")
        session_id = by_token.id
    if by_token is not None and by_token.id != session_id:
        return json_error(403, "the session token belongs to another session")
    session = registry.get(session_id)
    if session is None:
        return json_error(404, "unknown session_id")
    reason = body.get("reason") if isinstance(body, dict) else None
    if not isinstance(reason, str) or not reason.isprintable():
        reason = "stop"
    stopped = await registry.stop(session, f"stopped by client ({reason})"[:120])
    message = "session stopped" if stopped else "session already stopped"
    return json_ok({"session_id": session.id, "state": session.state.value}, message)


async def list_sessions(request: web.Request) -> web.Response:
    """``GET /v1/sessions`` (X-API-KEY): every session, for debugging; no secrets."""
    if not _api_key_ok(request):
        return json_error(401, "missing or invalid X-API-KEY")
    sessions = request.app[REGISTRY_KEY].sessions()
    return json_ok({"sessions": [s.describe() for s in sessions]})


async def healthz(request: web.Request) -> web.Response:
    """``GET /healthz`` (anyone): readiness, with the number of live sessions."""
    registry = request.app[REGISTRY_KEY]
    return web.json_response({"ok": True, "live_sessions": registry.live_count})
