"""One LiveAvatar session of the local avatar service: its state and what it tells.

The registry (:mod:`broadcaster.avatar.sessions`) creates, starts, stops and reaps
them; the HTTP API and the control socket read them.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from aiohttp import web
from loguru import logger

from broadcaster.avatar.publisher import AvatarPublisher, MediaConfig
from broadcaster.avatar.runtime import AvatarRuntime, Event
from broadcaster.avatar.schema import SessionRequest


class SessionState(StrEnum):
    """Where a session is in its life; only STARTING and STARTED count as live."""

    CREATED = "created"
    STARTING = "starting"
    STARTED = "started"
    STOPPED = "stopped"


class CapacityError(RuntimeError):
    """Too many sessions waiting to start (HTTP 429)."""


class StartError(RuntimeError):
    """A session could not start; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.status = status


@dataclass(eq=False)
class Session:
    """One LiveAvatar session. Secrets (tokens) never appear in :meth:`describe`."""

    id: str
    token: str
    ws_token: str
    request: SessionRequest
    media: MediaConfig
    max_duration: int
    created_at: float = field(default_factory=time.monotonic)
    created_wall: float = field(default_factory=time.time)
    state: SessionState = SessionState.CREATED
    reason: str = ""
    room: str = ""
    livekit_url: str = ""
    client_token: str = ""
    agent_token: str = ""
    ws_url: str = ""
    started_at: float = 0.0
    stopped_at: float = 0.0
    ws: web.WebSocketResponse | None = None
    ws_seen: float = 0.0
    ws_opened: bool = False
    """A control socket was open once: its close means the client is gone."""
    active_at: float = 0.0
    """Last keep-alive or speech (monotonic): HeyGen's idle timeout counts from it."""
    empty_since: float | None = None
    lost_since: float | None = None
    runtime: AvatarRuntime = field(default_factory=AvatarRuntime)
    publisher: AvatarPublisher | None = None
    outbox: asyncio.Queue[Event] = field(default_factory=lambda: asyncio.Queue(maxsize=512))
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def direct(self) -> bool:
        """Direct mode: the avatar publishes into the caller's room."""
        return self.request.livekit is not None

    @property
    def live(self) -> bool:
        """Starting or started: counts against the service's ``max_live`` sessions."""
        return self.state in (SessionState.STARTING, SessionState.STARTED)

    def emit(self, event: Event) -> None:
        """Queue a server event for the control socket (dropped when none is open)."""
        if self.ws is None or self.ws.closed:
            return
        try:
            self.outbox.put_nowait(event)
        except asyncio.QueueFull:
            logger.warning("session {}: control socket is not reading; event dropped", self.id)

    def start_data(self) -> dict[str, Any]:
        """Return the six fields pipecat requires from ``/sessions/start``."""
        return {
            "session_id": self.id,
            "livekit_url": self.livekit_url,
            "livekit_client_token": self.client_token,
            "livekit_agent_token": self.agent_token,
            "max_session_duration": self.max_duration,
            "ws_url": self.ws_url,
        }

    def describe(self, now: float | None = None) -> dict[str, Any]:
        """Debug view for ``GET /v1/sessions``: no tokens."""
        now = time.monotonic() if now is None else now
        pub = self.publisher
        return {
            "session_id": self.id,
            "state": self.state.value,
            "reason": self.reason,
            "mode": "direct" if self.direct else "own-room",
            "avatar_id": self.request.avatar_id,
            "room": self.room,
            "video": {
                "width": self.media.width,
                "height": self.media.height,
                "fps": self.media.fps,
                "codec": self.media.codec,
                "max_bitrate": self.media.max_bitrate,
            },
            "max_session_duration": self.max_duration,
            "age_seconds": round(now - self.created_at, 1),
            "expires_in_seconds": (
                round(self.started_at + self.max_duration - now, 1)
                if self.state is SessionState.STARTED
                else None
            ),
            "control_socket": self.ws is not None and not self.ws.closed,
            "agent_state": self.runtime.state.value,
            "speech_queued_seconds": round(self.runtime.speech.queued_seconds, 2),
            "participants": pub.remote_participants if pub else 0,
            "frames": pub.frames if pub else 0,
            "frames_skipped": pub.frames_skipped if pub else 0,
            "fps": round(pub.fps(), 2) if pub else 0.0,
        }
