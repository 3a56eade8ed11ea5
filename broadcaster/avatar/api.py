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

import hmac
import json
from typing import Any

from aiohttp import web

from broadcaster.avatar.schema import AVATARS, InvalidRequest, parse_token_request
from broadcaster.avatar.sessions import Session, SessionRegistry, StartError
from broadcaster.config import Settings

REGISTRY_KEY: web.AppKey[SessionRegistry] = web.AppKey("avatar_registry", SessionRegistry)
SETTINGS_KEY: web.AppKey[Settings] = web.AppKey("avatar_settings", Settings)
OK_CODE = 100  # LiveAvatar's success code


def json_ok(data: Any, message: str = "success", status: int = 200) -> web.Response:
    return web.json_response({"code": OK_CODE, "data": data, "message": message}, status=status)


def json_error(status: int, message: str) -> web.Response:
    return web.json_response({"code": status, "data": None, "message": message}, status=status)


@web.middleware
async def json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """aiohttp's own 404/405/413 answers are text; make them JSON like ours."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return json_error(exc.status, exc.reason)


def _api_key_ok(request: web.Request) -> bool:
    expected = request.app[SETTINGS_KEY].avatar_api_key
    given = request.headers.get("X-API-KEY", "")
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def _bearer(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def _json_body(request: web.Request, *, required: bool) -> Any:
    """The parsed body; None when empty and not required. Raises InvalidRequest."""
    raw = await request.read()
    if not raw.strip():
        if required:
            raise InvalidRequest("a JSON body is required")
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"the body is not valid JSON: {exc}") from exc


def _ws_url(request: web.Request, session: Session) -> str:
    """Where the client reaches our control socket: the host it reached us at."""
    proto = request.headers.get("X-Forwarded-Proto", request.scheme)
    scheme = "wss" if proto == "https" else "ws"
    return f"{scheme}://{request.host}/v1/ws/{session.id}?token={session.ws_token}"


async def create_token(request: web.Request) -> web.Response:
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
    session = request.app[REGISTRY_KEY].create(session_request)
    return json_ok({"session_id": session.id, "session_token": session.token})


async def start_session(request: web.Request) -> web.Response:
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
    stopped = await registry.stop(session, f"stopped by client ({reason or 'stop'})"[:120])
    message = "session stopped" if stopped else "session already stopped"
    return json_ok({"session_id": session.id, "state": session.state.value}, message)


async def list_sessions(request: web.Request) -> web.Response:
    if not _api_key_ok(request):
        return json_error(401, "missing or invalid X-API-KEY")
    sessions = request.app[REGISTRY_KEY].sessions()
    return json_ok({"sessions": [s.describe() for s in sessions]})


async def healthz(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY_KEY]
    return web.json_response({"ok": True, "live_sessions": registry.live_count})
