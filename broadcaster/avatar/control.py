"""The LiveAvatar control WebSocket (``ws_url``): commands in, session events out.

pipecat's client is fragile here (DESIGN.md): one non-JSON or binary frame from
us kills its receive loop for good, and a closed socket silently drops all later
speech. So this side only ever sends JSON text frames, never closes the socket
over a bad message, and answers every bad message with an ``error`` event:
``{"type": "error", "code": ..., "message": ..., "event_id": ..., "command": ...}``.

Commands: ``agent.speak`` (base64 PCM16 LE mono 24 kHz), ``agent.speak_end``,
``agent.interrupt`` (``event_id`` may be null), ``agent.start_listening``,
``agent.stop_listening``, ``session.keep_alive``. Events: ``session.state_updated``,
``agent.state_updated``, ``agent.speak_started``, ``agent.speak_ended``, ``error``.
Authentication is the secret in the URL (the client opens it with no headers).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web
from loguru import logger

from broadcaster.avatar.api import REGISTRY_KEY, json_error, same_secret
from broadcaster.avatar.runtime import Event
from broadcaster.avatar.sessions import Session, SessionState
from broadcaster.avatar.speech import BufferFull

#: LiveAvatar refuses packets over 1 MB; we accept more rather than drop the socket
MAX_MESSAGE_BYTES = 8 * 1024 * 1024


class CommandError(Exception):
    """A command could not be applied; becomes an ``error`` event."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _error(code: str, message: str, *, event_id: Any = None, command: Any = None) -> Event:
    event: Event = {"type": "error", "code": code, "message": message}
    if isinstance(event_id, str | int) and not isinstance(event_id, bool):
        event["event_id"] = str(event_id)[:128]
    if isinstance(command, str):
        event["command"] = command[:64]
    return event


def _event_id(msg: dict[str, Any]) -> str | None:
    value = msg.get("event_id")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise CommandError("invalid_event_id", "event_id must be a string, a number or null")
    return str(value)


def _speak(session: Session, msg: dict[str, Any], event_id: str | None) -> None:
    audio = msg.get("audio")
    if not isinstance(audio, str):
        raise CommandError("invalid_audio", "agent.speak needs \"audio\": base64 PCM16 24 kHz")
    try:
        pcm = base64.b64decode(audio, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CommandError("invalid_audio", f"audio is not valid base64: {exc}") from exc
    if len(pcm) % 2:
        raise CommandError(
            "invalid_audio", f"audio has {len(pcm)} bytes; PCM16 needs an even number"
        )
    session.active_at = time.monotonic()
    try:
        session.runtime.speak(pcm, event_id)
    except BufferFull as exc:
        raise CommandError("buffer_full", str(exc)) from exc


def _keep_alive(session: Session, msg: dict[str, Any], event_id: str | None) -> None:
    session.ws_seen = session.active_at = time.monotonic()


Command = Callable[[Session, dict[str, Any], str | None], None]
COMMANDS: dict[str, Command] = {
    "agent.speak": _speak,
    "agent.speak_end": lambda s, m, e: s.runtime.speak_end(e),
    "agent.interrupt": lambda s, m, e: s.runtime.interrupt(),
    "agent.start_listening": lambda s, m, e: s.runtime.start_listening(),
    "agent.stop_listening": lambda s, m, e: s.runtime.stop_listening(),
    "session.keep_alive": _keep_alive,
}


def handle_text(session: Session, data: str) -> Event | None:
    """Apply one text message; returns an error event to send back, or None."""
    try:
        msg = json.loads(data)
    except ValueError as exc:  # incl. numbers past Python's int digit limit
        return _error("invalid_json", f"message is not JSON: {str(exc)[:160]}")
    except RecursionError:
        return _error("invalid_json", "message is not JSON: nested too deeply")
    if not isinstance(msg, dict):
        return _error("invalid_message", "message must be a JSON object with a \"type\"")
    kind = msg.get("type")
    raw_id = msg.get("event_id")
    if not isinstance(kind, str):
        return _error("invalid_message", "message has no \"type\" string", event_id=raw_id)
    command = COMMANDS.get(kind)
    if command is None:
        return _error(
            "unknown_type",
            f"unknown message type; expected one of {', '.join(COMMANDS)}",
            event_id=raw_id,
            command=kind,
        )
    try:
        command(session, msg, _event_id(msg))
    except CommandError as exc:
        return _error(exc.code, str(exc), event_id=raw_id, command=kind)
    except Exception as exc:  # never let one command end the session (one log line)
        logger.error("avatar session {}: {!r} failed: {}", session.id, kind[:64],
                     type(exc).__name__)
        return _error("internal_error", f"{kind} failed: {type(exc).__name__}",
                      event_id=raw_id, command=kind)
    return None


async def _send_events(session: Session, ws: web.WebSocketResponse) -> None:
    while True:
        event = await session.outbox.get()
        await ws.send_str(json.dumps(event))


async def websocket(request: web.Request) -> web.StreamResponse:
    """``GET /v1/ws/{session_id}?token=...``: the session's control socket."""
    registry = request.app[REGISTRY_KEY]
    session = registry.get(request.match_info["session_id"])
    token = request.query.get("token", "")
    if session is None or not same_secret(token, session.ws_token):
        return json_error(401, "unknown session or bad token in the WebSocket URL")
    if session.state is not SessionState.STARTED:
        return json_error(409, f"session is {session.state.value}, not started")

    # Our pings find a vanished client (then the reaper ends the session).
    ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_BYTES, autoping=True, heartbeat=20.0)
    await ws.prepare(request)
    old, session.ws = session.ws, ws
    session.ws_seen = time.monotonic()
    session.ws_opened = True
    if old is not None and not old.closed:
        logger.info("avatar session {}: a new control socket replaces the old one", session.id)
        await old.close(code=4000, message=b"replaced by a newer connection")
    while not session.outbox.empty():  # events meant for an earlier socket
        session.outbox.get_nowait()
    sender = asyncio.create_task(_send_events(session, ws), name=f"avatar-ws-{session.id}")
    session.emit({"type": "session.state_updated", "state": "connected"})
    session.emit({"type": "agent.state_updated", "previous_state": None,
                  "new_state": session.runtime.state.value})
    logger.info("avatar session {}: control socket open", session.id)
    try:
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                reply = handle_text(session, msg.data)
            elif msg.type is WSMsgType.BINARY:
                reply = _error("binary_not_supported", "send JSON text messages, not binary")
            elif msg.type is WSMsgType.ERROR:
                logger.warning("avatar session {}: control socket error {}", session.id,
                               ws.exception())
                break
            else:
                continue
            if reply is not None:
                logger.debug("avatar session {}: {} ({!r})", session.id, reply["code"],
                             reply.get("command", ""))
                session.emit(reply)
    finally:
        sender.cancel()
        if session.ws is ws:
            session.ws = None
            session.ws_seen = time.monotonic()
            logger.info("avatar session {}: control socket closed", session.id)
    return ws
