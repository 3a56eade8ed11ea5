"""The LiveAvatar client's private names: the half of the SDK fence about pipecat's HeyGen.

Part of broadcaster/sdk_internals.py's fence (its ``PRIVATE_NAMES`` lists every name
used here, with the reason; tests/test_sdk_internals.py checks them against the pinned
pipecat): pipecat's ``HeyGenVideoService`` holds one ``HeyGenClient`` and binds the
avatar's media to it, so reopening a session in place, or opening the next one beside
the current one and switching to it at a pause, reaches into both.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from livekit import rtc
from loguru import logger
from pipecat.frames.frames import (
    AudioRawFrame,
    Frame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessorSetup
from pipecat.services.heygen.client import HEY_GEN_SAMPLE_RATE, HeyGenCallbacks, HeyGenClient
from pipecat.services.heygen.video import HeyGenVideoService
from pipecat.transports.base_transport import TransportParams

from broadcaster.room_connect import leave_when_landed


class HeyGenVideoServiceHooks(HeyGenVideoService):
    """``HeyGenVideoService`` that lets a subclass adapt each client before it starts.

    pipecat creates its ``HeyGenClient`` in ``setup()`` and starts it (session, socket,
    LiveKit join) in the same call, with no hook between; :meth:`adapt_client` is
    called as the service stores the client, before the client's setup.
    """

    @property
    def _client(self) -> HeyGenClient | None:
        return self.__dict__.get("_hooked_client")

    @_client.setter
    def _client(self, client: HeyGenClient | None) -> None:
        self.__dict__["_hooked_client"] = client
        if client is not None:
            self.adapt_client(client)

    @property
    def client(self) -> HeyGenClient | None:
        """The current client (None before setup and after cleanup)."""
        return self._client

    def adapt_client(self, client: HeyGenClient) -> None:
        """Change ``client`` before it starts; the default only shields its LiveKit join."""
        shield_media_join(client)

    async def setup(self, setup: FrameProcessorSetup) -> None:  # type: ignore[override]
        """Run pipecat's setup, keeping ``setup`` so a session can be reopened in place."""
        self.__dict__["_hooks_setup"] = setup
        await super().setup(setup)
        self.__dict__.setdefault("_hooks_set_up", asyncio.Event()).set()

    async def wait_set_up(self) -> None:
        """Return once pipecat's setup (the first session's opening) has finished."""
        await self.__dict__.setdefault("_hooks_set_up", asyncio.Event()).wait()

    async def restart_session(self) -> bool:
        """Reopen the avatar session with pipecat's own setup; False: refused (retry)."""
        if (setup := self.__dict__.get("_hooks_setup")) is None:
            return False
        await self.drop_standby()  # a reopen never leaves a second session behind
        old = self._client
        ready = self.__dict__["_hooks_ready"] = bool(  # sticky: a refused session forgets
            self.__dict__.get("_hooks_ready") or (old is not None and old._transport_ready))
        await self._teardown()  # the session's stop, the send task
        if old is not None:
            await old.cleanup()
        self._client = None
        await HeyGenVideoService.setup(self, setup)  # a new client, a new session
        if (client := self._client) is None or heygen_session_health(client, media=False) != "open":
            return False
        if ready:
            client.transport_ready()
        await self._create_send_task()
        if self.listening:  # the presenter is mid-turn: the new session listens too
            await client.start_agent_listening()
        return True

    # ------------------------------------------ the avatar's listening state, kept per service
    @property
    def listening(self) -> bool:
        """Whether the presenter is mid-turn (the avatar was told ``start_listening``).

        pipecat tells only its current client; a session opened later (the next one,
        opened ahead, or one reopened in place) is told here, so the avatar's look does
        not change at a switch.
        """
        return bool(self.__dict__.get("_hooks_listening"))

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Handle ``frame`` as pipecat does; mirror the presenter's turn to the next session."""
        turn = isinstance(frame, (UserStartedSpeakingFrame, UserStoppedSpeakingFrame))
        if turn:
            self.__dict__["_hooks_listening"] = isinstance(frame, UserStartedSpeakingFrame)
        await super().process_frame(frame, direction)
        if turn and (standby := self.standby) is not None:
            await self._tell_listening(standby)

    async def _tell_listening(self, client: HeyGenClient) -> None:
        if self.listening:
            await client.start_agent_listening()
        else:
            await client.stop_agent_listening()

    # ------------------------------------------ the next session, opened beside the current
    @property
    def standby(self) -> HeyGenClient | None:
        """The next session's client, open beside the current one (None: none)."""
        return self.__dict__.get("_hooks_standby")

    @property
    def standby_started(self) -> float | None:
        """When the service started the next session (monotonic; its lifetime's start)."""
        value = self.__dict__.get("_hooks_standby_started")
        return None if value is None else float(value)

    @property
    def standby_frames(self) -> int:
        """Frames the standby session delivered so far (held back until the switch)."""
        return int(self.__dict__.get("_hooks_standby_frames", 0))

    def pass_frame(self, client: HeyGenClient) -> bool:
        """Whether a frame just decoded by ``client``'s video loop goes downstream.

        Only the current client's frames do (and only once the output is ready); a
        standby's are counted, and an old client's, after a switch, are dropped.
        """
        if client is self.standby:
            self.__dict__["_hooks_standby_frames"] = self.standby_frames + 1
            return False
        return client is self._client and heygen_client_wants_video(client)

    async def open_standby(self) -> bool:
        """Open the next avatar session beside the current one; False: refused.

        pipecat's own client, built as its ``setup()`` builds one, but bound to callbacks
        of its own: its video and audio are received (so it warms up) and held back until
        :meth:`switch_to_standby`.
        """
        if (setup := self.__dict__.get("_hooks_setup")) is None or self.standby is not None:
            return False

        async def joined(participant_id: str) -> None:
            await client.capture_participant_video(participant_id,
                                                   self._on_participant_video_frame)
            await client.capture_participant_audio(participant_id, audio)

        async def audio(frame: AudioRawFrame) -> None:
            if client is self._client:  # the client drops it before its transport is ready
                await self._on_participant_audio_data(frame)

        async def ignore(*_: object) -> None:
            return None

        client = HeyGenClient(
            api_key=self._api_key, session=self._session,
            params=TransportParams(audio_in_sample_rate=48000, audio_in_enabled=True,
                                   video_in_enabled=True, audio_out_enabled=True,
                                   audio_out_sample_rate=HEY_GEN_SAMPLE_RATE),
            session_request=self._session_request, service_type=self._service_type,
            callbacks=HeyGenCallbacks(on_connected=ignore, on_participant_connected=joined,
                                      on_participant_disconnected=ignore),
            connect_as_user=True)
        self.adapt_client(client)
        self.__dict__["_hooks_standby"] = client
        self.__dict__["_hooks_standby_frames"] = 0
        self.__dict__["_hooks_standby_started"] = None
        initialize = client._initialize

        async def timed_initialize() -> None:  # the session request and start, no more
            await initialize()
            self.__dict__["_hooks_standby_started"] = time.monotonic()

        client._initialize = timed_initialize  # type: ignore[method-assign]
        await client.setup(setup)
        if heygen_session_health(client, media=False) != "open":
            await self.drop_standby()
            return False
        if self.listening:  # the presenter is mid-turn: the next session listens already
            await client.start_agent_listening()
        return True

    async def switch_to_standby(self) -> HeyGenClient | None:
        """Make the standby the current session at once; return the old client.

        The caller closes the old one (:meth:`close_client`) after the switch, so the
        avatar's picture goes from one session's frame to the next one's.
        """
        return self.switch_now()

    def switch_now(self) -> HeyGenClient | None:
        """Make the standby the current session (from the next frame on); return the old."""
        new, old = self.standby, self._client
        if new is None:
            return None
        ready = bool(self.__dict__.get("_hooks_ready")
                     or (old is not None and old._transport_ready))
        self.__dict__["_hooks_standby"] = None
        self.__dict__["_hooked_client"] = new  # adapted already: not through the setter
        if ready:
            new.transport_ready()
        if old is not None:
            old._transport_ready = False  # its audio stops now too, not when it is closed
        return old

    @staticmethod
    async def close_client(client: HeyGenClient) -> None:
        """Close a client no longer current: its session stopped, its room left."""
        await client.stop()
        await client.cleanup()

    async def drop_standby(self) -> None:
        """Close the standby session, if any (the current one died, or it went unused)."""
        client = self.__dict__.pop("_hooks_standby", None)
        if client is not None:
            await self.close_client(client)

    async def cleanup(self) -> None:
        """Close the standby too, then pipecat's cleanup."""
        await self.drop_standby()
        await super().cleanup()


Speak = Callable[[bytes, str], Awaitable[None]]
Said = Callable[[str], Awaitable[None]]


def wrap_speech(client: HeyGenClient, *, speak: Callable[[bytes, str, Speak], Awaitable[None]],
                end: Callable[[str, Said], Awaitable[None]],
                interrupt: Callable[[str | None, Said], Awaitable[None]]) -> None:
    """Route this client's ``agent_speak``, ``agent_speak_end`` and ``interrupt`` through hooks.

    pipecat's service calls them on its current client; each hook gets the arguments and
    the client's own method, and calls it (or not). On this client only.
    """
    own_speak, own_end, own_interrupt = (client.agent_speak, client.agent_speak_end,
                                         client.interrupt)

    async def agent_speak(audio: bytes, event_id: str) -> None:
        await speak(audio, event_id, own_speak)

    async def agent_speak_end(event_id: str) -> None:
        await end(event_id, own_end)

    async def interrupt_(event_id: str | None) -> None:
        await interrupt(event_id, own_interrupt)

    client.agent_speak = agent_speak  # type: ignore[method-assign]
    client.agent_speak_end = agent_speak_end  # type: ignore[method-assign]
    client.interrupt = interrupt_  # type: ignore[method-assign]


async def heygen_send_speech(client: HeyGenClient, audio: bytes, event_id: str) -> None:
    """Send ``agent.speak`` now, as ``agent_speak`` does but without its real-time pacing.

    pipecat paces a client's speech (the first 3 s at once, then one second per second)
    from what that client was sent; speech handed to, or mirrored on, the next session
    must reach it at once, beside the current session's.
    """
    await client._ws_send({"type": "agent.speak", "event_id": event_id,
                           "audio": base64.b64encode(audio).decode("ascii")})


def heygen_take_pacing(new: HeyGenClient, old: HeyGenClient) -> None:
    """Give ``new`` the speech pacing of ``old`` (the utterance goes on with the new client)."""
    new._audio_seconds_sent = old._audio_seconds_sent
    new._next_send_time = old._next_send_time


def replace_video_loop(client: HeyGenClient,
                       loop: Callable[[rtc.VideoStream], Coroutine[Any, Any, None]]) -> None:
    """Run ``loop(stream)`` instead of the client's own video loop, on this client only."""
    client._process_video_frames = loop  # type: ignore[method-assign,assignment]


def shield_media_join(client: HeyGenClient) -> None:
    """Never let a cancellation cut the client's LiveKit join short.

    pipecat's ``_livekit_connect`` awaits ``Room.connect`` bare; a session opening that
    is cancelled in that await (a rollover given up on, a shutdown, a test ending)
    makes livekit-rtc panic 15 s later and SIGTERM the whole process
    (``broadcaster/room_connect.py``). Here the join runs on shielded; the caller is
    cancelled at once, and the room is left as soon as the join lands.
    """
    join_room = client._livekit_connect

    async def shielded() -> None:
        join = asyncio.ensure_future(join_room())
        try:
            await asyncio.shield(join)
        except asyncio.CancelledError:
            if not join.done():
                # the room being joined (pipecat drops its reference on a late error)
                joining = client._livekit_room
                leave_when_landed(join, lambda: client._livekit_room or joining)
            raise

    client._livekit_connect = shielded  # type: ignore[method-assign]


def heygen_media_join(client: HeyGenClient) -> Coroutine[Any, Any, None]:
    """Return the client's LiveKit join, as pipecat's start runs it once a session is open."""
    return client._livekit_connect()


def shield_transport_join(transport: Any) -> None:
    """:func:`shield_media_join` for the client of a ``HeyGenTransport`` (the rehearsal)."""
    shield_media_join(transport._client)


def skip_media_join(client: HeyGenClient) -> None:
    """Make this client's LiveKit join a no-op (it then receives no avatar media)."""

    async def skip() -> None:
        logger.info("direct mode: the avatar publishes into the stage room; no media join")

    client._livekit_connect = skip  # type: ignore[method-assign]


def heygen_session_health(client: HeyGenClient, *, media: bool = True) -> str:
    """Tell "none", "socket closed", "room lost", "avatar left" or "open" (media: the room)."""
    if client._heyGen_session is None:
        return "none"
    if not client._connected:
        return "socket closed"
    if not media:
        return "open"
    room = client._livekit_room
    if room is None or not room.isconnected():
        return "room lost"
    if client._video_frame_callback is not None and not room.remote_participants:
        return "avatar left"
    return "open"


def heygen_session_id(client: HeyGenClient) -> str | None:
    """Return the LiveAvatar session id of this client's session, or None before it has one."""
    session = client._heyGen_session
    return None if session is None else str(session.session_id)


def heygen_client_wants_video(client: HeyGenClient) -> bool:
    """Whether the client would pass a frame on now (output ready, video captured)."""
    return bool(client._transport_ready and client._video_frame_callback)


def heygen_transport_session(transport: Any) -> tuple[str, str]:
    """(LiveKit URL, the user's token) of a started ``HeyGenTransport``'s avatar room.

    pipecat keeps them on its client (and logs them as a meet.livekit.io link); the
    rehearsal room hands them to the presenter's page instead.
    """
    session = transport._client._heyGen_session
    return str(session.livekit_url), str(session.access_token)
