"""Avatar sessions: creation, start (room, tokens, publisher), stop, and the reaper.

Why the service reaps on its own: pipecat's client never reports a dead avatar
session and leaks it when its own setup fails, so nothing else would ever stop
it. A started session is stopped when

* it reaches its ``max_session_duration`` (like LiveAvatar);
* its control socket was never opened within ``ws_grace`` seconds, or closed and not
  replaced within ``ws_closed_grace`` (a killed bot): pipecat cannot reconnect it, so the
  avatar could never speak again;
* in our own room, nobody but the avatar has been there for ``empty_grace``
  seconds (the client left or never came);
* the avatar lost its LiveKit connection for good.

Stopped sessions stay as small tombstones for a while so a second ``stop`` still
answers 200 (stop is idempotent): the renderer, the publisher (its LiveKit room and
encoders) and queued speech go at stop, and at most ``avatar_max_stopped_sessions``
tombstones are kept. Sessions created but not started are capped
(``avatar_max_pending_sessions``, then 429) and dropped after
``avatar_unstarted_seconds``: a flapping client cannot pile them up.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections import deque
from collections.abc import Callable

from livekit import api
from loguru import logger

from broadcaster.avatar.limits import emulated_limit
from broadcaster.avatar.publisher import AvatarPublisher, MediaConfig, PublishError
from broadcaster.avatar.renderers import RendererCache
from broadcaster.avatar.schema import AVATARS, QUALITY_BITRATE, SessionRequest, video_size
from broadcaster.avatar.session import (  # noqa: F401 (re-exported for the API)
    CapacityError,
    Session,
    SessionState,
    StartError,
)
from broadcaster.config import Settings
from broadcaster.protocol import AVATAR_IDENTITY
from broadcaster.roles import InvalidInput, Role, check_room, mint_token

AGENT_IDENTITY = "liveavatar-agent"
CLIENT_IDENTITY = "liveavatar-user"
ROOM_PREFIX = "liveavatar-"
TOMBSTONE_TTL = 3600.0
REAP_INTERVAL = 0.25
LOST_GRACE = 10.0
#: below pipecat's 20 s setup timeout, so a failed start is an answer, not a hang
START_TIMEOUT = 15.0


class SessionRegistry:
    """All sessions of this service, and the reaper that ends abandoned ones."""

    def __init__(
        self,
        settings: Settings,
        *,
        max_live: int | None = None,
        ws_grace: float | None = None,
        empty_grace: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.max_live = max_live if max_live is not None else settings.avatar_max_sessions
        self.ws_grace = ws_grace if ws_grace is not None else settings.avatar_ws_grace_seconds
        self.empty_grace = (
            empty_grace if empty_grace is not None else settings.avatar_empty_room_grace_seconds
        )
        self._clock = clock
        self.epoch = time.monotonic()
        """The avatars' idle-motion clock starts with the service."""
        self.renderers = RendererCache()
        self.max_pending = settings.avatar_max_pending_sessions
        self.max_stopped = settings.avatar_max_stopped_sessions
        self.unstarted_ttl = settings.avatar_unstarted_seconds
        self._sessions: dict[str, Session] = {}
        self._by_token: dict[str, Session] = {}
        self._stopped: deque[Session] = deque()  # tombstones, oldest first
        self._lkapi: api.LiveKitAPI | None = None
        self._reaper: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------- lookup
    def get(self, session_id: str) -> Session | None:
        """Find a session by id, tombstones included (so a second stop still answers)."""
        return self._sessions.get(session_id)

    def by_token(self, token: str) -> Session | None:
        """Find the session a Bearer session token belongs to (tombstones included)."""
        return self._by_token.get(token)

    def sessions(self) -> list[Session]:
        """Return a snapshot of every session, so callers may stop them while iterating."""
        return list(self._sessions.values())

    @property
    def live_count(self) -> int:
        """Count sessions starting or started: what ``max_live`` caps."""
        return sum(1 for s in self._sessions.values() if s.live)

    # ---------------------------------------------------------------- create
    @property
    def pending_count(self) -> int:
        """Count sessions created but not started: what ``max_pending`` caps."""
        return sum(1 for s in self._sessions.values() if s.state is SessionState.CREATED)

    def create(self, request: SessionRequest) -> Session:
        """Create a session (not started): what ``/sessions/token`` hands out.

        Raises CapacityError when ``max_pending`` sessions already wait to be started.
        """
        if self.pending_count >= self.max_pending:
            raise CapacityError(
                f"{self.max_pending} avatar sessions are already waiting to be started; "
                "start or stop one first")
        s = self.settings
        ceiling = s.avatar_max_session_seconds
        duration = min(request.max_session_duration or ceiling, ceiling)
        orientation = request.orientation or AVATARS.get(request.avatar_id)
        width, height = video_size(s.video_width, s.video_height, orientation)
        media = MediaConfig(
            width=width,
            height=height,
            fps=s.video_fps,
            codec=request.codec or s.video_codec.upper(),
            max_bitrate=int(s.video_max_bitrate * QUALITY_BITRATE[request.quality]),
        )
        session = Session(
            id=str(uuid.uuid4()),
            token=secrets.token_urlsafe(32),
            ws_token=secrets.token_urlsafe(32),
            request=request,
            media=media,
            max_duration=duration,
            created_at=self._clock(),
        )
        session.runtime.set_sink(session.emit)
        self._sessions[session.id] = session
        self._by_token[session.token] = session
        logger.info(
            "avatar session {} created ({}, {}x{}@{} {}, max {} s)",
            session.id, "direct" if session.direct else "own room",
            width, height, media.fps, media.codec, duration,
        )
        return session

    # ----------------------------------------------------------------- start
    async def start(self, session: Session, ws_url: str) -> None:
        """Join the room and publish; idempotent for a started session."""
        async with session.lock:
            if session.state is SessionState.STARTED:
                return
            if session.state is SessionState.STOPPED:
                raise StartError(f"session is closed ({session.reason})", status=409)
            if self.live_count >= self.max_live:
                raise StartError(
                    f"{self.max_live} avatar sessions are already running on this service",
                    status=429,
                )
            session.state = SessionState.STARTING
            session.ws_url = ws_url
            try:
                await asyncio.wait_for(self._start(session), START_TIMEOUT)
            except BaseException as exc:
                await self._teardown(session, "failed to start")
                if isinstance(exc, StartError):
                    raise
                if isinstance(exc, TimeoutError):
                    raise StartError(
                        f"the avatar did not start within {START_TIMEOUT:.0f} s", status=504
                    ) from exc
                if isinstance(exc, PublishError | OSError):
                    raise StartError(str(exc)) from exc
                raise
            now = self._clock()
            session.state = SessionState.STARTED
            session.started_at = now
            session.ws_seen = now
            session.empty_since = now
            logger.info("avatar session {} started in room {}", session.id, session.room)

    async def _start(self, session: Session) -> None:
        s = self.settings
        ttl = max(60, min(session.max_duration + 300, s.max_token_ttl_seconds))
        target = session.request.livekit
        if target is None:
            session.room = f"{ROOM_PREFIX}{session.id}"
            session.livekit_url = s.effective_livekit_url
            await self._create_room(session.room, session.max_duration)
            avatar_token = mint_token(s, Role.BOT, session.room, AVATAR_IDENTITY, ttl_seconds=ttl)
            session.agent_token = mint_token(
                s, Role.BOT, session.room, AGENT_IDENTITY, ttl_seconds=ttl
            )
            session.client_token = mint_token(
                s, Role.PRESENTER, session.room, CLIENT_IDENTITY, ttl_seconds=ttl
            )
            url = session.livekit_url
        else:
            session.room = target.room
            session.livekit_url = target.url
            avatar_token = target.token
            session.client_token = self._direct_client_token(target.url, target.room, ttl)
            url = target.url
        m = session.media
        renderer = await self.renderers.for_session(m.width, m.height,
                                                    session.request.avatar_id)
        session.publisher = AvatarPublisher(m, session.runtime, renderer, epoch=self.epoch)
        await session.publisher.start(url, avatar_token)

    def _direct_client_token(self, url: str, room: str, ttl: int) -> str:
        """Mint a subscribe-only client token when the caller's server is ours, else ''.

        pipecat's client joins ``livekit_url`` with ``livekit_client_token``; with a
        foreign server we hold no key to mint one, and an empty token only makes
        that join fail (logged by pipecat) while the control socket keeps working.
        """
        ours = self.settings.effective_livekit_url.rstrip("/")
        if url.rstrip("/") != ours:
            return ""
        try:
            check_room(room)
            return mint_token(self.settings, Role.VIEWER, room, CLIENT_IDENTITY, ttl_seconds=ttl)
        except InvalidInput:
            return ""

    def _api(self) -> api.LiveKitAPI:
        if self._lkapi is None:
            s = self.settings
            self._lkapi = api.LiveKitAPI(
                s.livekit_http_url, s.livekit_api_key, s.livekit_api_secret
            )
        return self._lkapi

    async def _create_room(self, room: str, max_duration: int) -> None:
        try:
            await asyncio.wait_for(
                self._api().room.create_room(
                    api.CreateRoomRequest(name=room, empty_timeout=60, departure_timeout=20)
                ),
                5.0,
            )
        except Exception as exc:
            raise StartError(f"LiveKit did not create the avatar room: {exc!s}") from exc

    # ------------------------------------------------------------------ stop
    async def stop(self, session: Session, reason: str) -> bool:
        """Stop a session; False when it was already stopped (stop is idempotent)."""
        async with session.lock:
            if session.state is SessionState.STOPPED:
                return False
            await self._teardown(session, reason)
            return True

    async def _teardown(self, session: Session, reason: str) -> None:
        was = session.state
        session.state = SessionState.STOPPED
        session.reason = reason
        session.stopped_at = self._clock()
        ws = session.ws
        if ws is not None and not ws.closed:
            try:
                await asyncio.wait_for(
                    ws.send_json({"type": "session.state_updated", "state": "closed",
                                  "reason": reason}),
                    1.0,
                )
                await asyncio.wait_for(ws.close(), 2.0)
            except Exception:
                pass
        session.ws = None
        session.runtime.set_sink(None)
        publisher, session.publisher = session.publisher, None
        if publisher is not None:
            await publisher.stop()
            publisher.renderer = None  # type: ignore[assignment]  # frame buffers: now
        session.runtime.speech.flush()  # up to minutes of queued speech
        while not session.outbox.empty():
            session.outbox.get_nowait()
        self._remember_stopped(session)
        if not session.direct and session.room and was is not SessionState.CREATED:
            try:
                await asyncio.wait_for(
                    self._api().room.delete_room(api.DeleteRoomRequest(room=session.room)), 5.0
                )
            except Exception as exc:
                logger.debug("deleting room {}: {}", session.room, exc)
        if was is not SessionState.CREATED:
            logger.info("avatar session {} stopped: {}", session.id, reason)

    def _remember_stopped(self, session: Session) -> None:
        """Keep ``session`` as a tombstone; forget the oldest past ``max_stopped``."""
        self._stopped.append(session)
        while len(self._stopped) > self.max_stopped:
            self._forget(self._stopped.popleft())

    def _forget(self, session: Session) -> None:
        if self._sessions.get(session.id) is session:
            del self._sessions[session.id]
        if self._by_token.get(session.token) is session:
            del self._by_token[session.token]

    async def stop_all(self, reason: str) -> None:
        """Stop every session at once; one failing teardown does not keep the rest alive."""
        await asyncio.gather(
            *(self.stop(s, reason) for s in self.sessions() if s.state is not SessionState.STOPPED),
            return_exceptions=True,
        )

    # ---------------------------------------------------------------- reaper
    def why_reap(self, session: Session, now: float) -> str | None:
        """Return the reason to stop ``session`` now, or None to keep it."""
        if session.state is SessionState.CREATED:
            return "never started" if now - session.created_at > self.unstarted_ttl else None
        if session.state is not SessionState.STARTED:
            return None
        if now >= session.started_at + session.max_duration:
            return "max_session_duration reached"
        if (limit := emulated_limit(session, now, self.settings)) is not None:
            return limit
        if session.ws is not None and not session.ws.closed:
            session.ws_seen = now
        elif now - session.ws_seen > (self.settings.avatar_ws_closed_grace_seconds
                                      if session.ws_opened else self.ws_grace):
            return "control socket closed"
        pub = session.publisher
        if pub is None or not pub.connected:
            # The SDK resumes short outages itself; give it time before giving up.
            if session.lost_since is None:
                session.lost_since = now
            elif now - session.lost_since > LOST_GRACE:
                return "avatar lost its LiveKit connection"
            return None
        session.lost_since = None
        if not session.direct:
            if pub.remote_participants > 0:
                session.empty_since = None
            elif session.empty_since is None:
                session.empty_since = now
            elif now - session.empty_since > self.empty_grace:
                return "room empty"
        return None

    async def reap_once(self) -> None:
        """Stop every abandoned session and forget tombstones past their TTL (one sweep)."""
        now = self._clock()
        for session in self.sessions():
            if session.state is SessionState.STOPPED:
                if now - session.stopped_at > TOMBSTONE_TTL:
                    self._forget(session)
                continue
            reason = self.why_reap(session, now)
            if reason is not None:
                await self.stop(session, reason)

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(REAP_INTERVAL)
            try:
                await self.reap_once()
            except Exception:
                logger.exception("avatar session reaper failed")

    def start_reaper(self) -> None:
        """Start the background sweep (idempotent); it needs the running event loop."""
        if self._reaper is None:
            self._reaper = asyncio.create_task(self._reap_forever(), name="avatar-reaper")

    async def aclose(self) -> None:
        """Stop the reaper and every session; close the LiveKit API client."""
        if self._reaper is not None:
            self._reaper.cancel()
            try:
                await self._reaper
            except asyncio.CancelledError:
                pass
            self._reaper = None
        await self.stop_all("service shutting down")
        if self._lkapi is not None:
            await self._lkapi.aclose()
            self._lkapi = None
