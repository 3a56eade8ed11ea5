"""Keep the bot in its stage room when the room's LiveKit node dies (issue 14).

A LiveKit room lives on one node. When that node dies, the bot's connection (its
signalling relayed by another node) may not notice for 10 s or more, and the room is
gone until LiveKit re-creates it on a live node at the next join, once it counts the
dead node as gone (stats older than 5 s). Restarting the bot for that reloaded its
models and left every shard viewer on the "back in a moment" slate for ~13 s.

Instead the bot stays up: its pipeline, avatar session and audience shards go on,
and this keeper notices the loss (the room's ``disconnected`` event, or nothing from
the SFU on the bot's publisher transport for 2 s), joins the stage
room again through :func:`connect_room` with a fresh ``rtc.Room`` that takes the lost
one's place in pipecat's transport (sdk_internals), republishes the avatar's tracks
there, restores the stage's metadata if the room came back without it, and says the
avatar is live. Only when no join worked for ``GIVE_UP_SECONDS`` does it give up, for
the launcher to start a new bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from livekit import api, rtc
from loguru import logger
from pipecat.transports.livekit.transport import LiveKitTransport

from broadcaster.config import Settings
from broadcaster.roles import Role, mint_token
from broadcaster.room_connect import connect_room, wait_abandoned
from broadcaster.sdk_internals import (
    adopt_transport_room,
    give_room_handlers,
    take_room_handlers,
    transport_room,
)

#: how often the bot's publisher transport is checked for traffic from the SFU
WATCH_SECONDS = 0.5
#: nothing received for this long: the stage room's node is gone
STALE_SECONDS = 2.0
#: one join attempt. A join to a dead node's room hangs until LiveKit counts the node
#: gone (~5.5 s after a SIGKILL here), then lands on a live node: wait for it rather
#: than give up and try again (a join given up on may still land later and, with the
#: same identity, kick the bot's next session out)
CONNECT_SECONDS = 10.0
#: after a join given up on: how long to let it land and be left before the next try
ABANDONED_SECONDS = 15.0
#: between two attempts
RETRY_SECONDS = 0.5
#: no join for this long: give up (the launcher starts a new bot)
GIVE_UP_SECONDS = 45.0
#: leaving the lost room (its node is gone: the SDK may wait for it)
LEAVE_SECONDS = 5.0


class StageKeeper:
    """Notice a lost stage room and join it again in place; ``run()`` until cancelled."""

    def __init__(self, settings: Settings, stage: str, transport: LiveKitTransport, *,
                 move_media: Callable[[rtc.Room], Awaitable[None]],
                 on_back: Callable[[rtc.Room], None],
                 on_give_up: Callable[[str], None]) -> None:
        self.settings, self.stage, self.transport = settings, stage, transport
        self._move_media, self._on_back, self._on_give_up = move_media, on_back, on_give_up
        self.lost = asyncio.Event()
        self.rejoins = 0
        self.last_rejoin_seconds: float | None = None
        self._leaving: set[asyncio.Future[None]] = set()

    def stage_lost(self, reason: str) -> None:
        """Start joining again: the stage connection is gone (``on_disconnected``, the watch)."""
        if not self.lost.is_set():
            logger.warning(f"stage room {self.stage}: lost ({reason}); joining it again")
            self.lost.set()

    async def run(self) -> None:
        """Watch the stage room; on each loss join again, or give up after a while."""
        s = self.settings
        async with api.LiveKitAPI(s.livekit_http_url, s.livekit_api_key,
                                  s.livekit_api_secret) as lk:
            while True:
                watch = asyncio.ensure_future(self._watch())
                try:
                    await self.lost.wait()
                finally:
                    watch.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await watch
                if not await self._rejoin(lk):
                    self._on_give_up(f"could not join the stage room again in "
                                     f"{GIVE_UP_SECONDS:.0f} s")
                    return
                self.lost.clear()

    async def _watch(self) -> None:
        """Notice a dead stage node from the bot's own media.

        The SFU answers what the bot publishes (congestion feedback, RTCP) many times a
        second; nothing arriving on the publisher's transport for ``STALE_SECONDS``
        means its node is gone, once traffic was seen growing in this session (on a
        connection joined again it did not grow though media flowed: measured, cause
        unknown; there only LiveKit's own ``disconnected`` counts, ~12 s late). Measured
        after a SIGKILL of the stage room's node:
        LiveKit's API still listed the bot in the room for 5.5-15 s, and the SDK's
        signalling (relayed by a live node) noticed only after ~12 s.
        """
        last, since, armed = -1, time.monotonic(), False
        while not self.lost.is_set():
            await asyncio.sleep(WATCH_SECONDS)
            received = -1
            with contextlib.suppress(Exception):  # not set up or connected yet: no figure
                room = transport_room(self.transport)
                stats = await asyncio.wait_for(room.get_rtc_stats(), WATCH_SECONDS)
                received = sum(s.transport.transport.bytes_received
                               for s in stats.publisher_stats
                               if s.WhichOneof("stats") == "transport")
            now = time.monotonic()
            if received <= 0 or received != last:  # not publishing yet, or alive
                armed = armed or 0 < last < received
                last, since = received, now
            elif armed and now - since >= STALE_SECONDS:
                self.stage_lost(f"nothing from LiveKit for {now - since:.1f} s")

    async def _rejoin(self, lk: api.LiveKitAPI) -> bool:
        """Join the stage room with a fresh ``rtc.Room`` until one join works."""
        start = time.monotonic()
        old = transport_room(self.transport)
        handlers = take_room_handlers(old)  # the lost room's late events reach nobody
        metadata = old.metadata
        self._leave(old)
        s = self.settings
        while time.monotonic() - start < GIVE_UP_SECONDS:
            room = rtc.Room()
            give_room_handlers(room, handlers)  # events from the first moment on
            token = mint_token(s, Role.BOT, self.stage, s.bot_identity, name="Avatar")
            try:
                await connect_room(room, s.effective_livekit_url, token,
                                   seconds=CONNECT_SECONDS,
                                   options=rtc.RoomOptions(auto_subscribe=True))
            except Exception as exc:  # the SDK's own errors as well as timeouts
                take_room_handlers(room)  # a join landing late is left by connect_room
                logger.info(f"stage room {self.stage}: join failed ({exc!r}); again"[:300])
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wait_abandoned(), ABANDONED_SECONDS)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            await adopt_transport_room(self.transport, room)
            try:
                await self._move_media(room)
            except Exception as exc:  # could not publish there: leave and join again
                logger.warning(f"stage room {self.stage}: publishing failed ({exc!r})")
                take_room_handlers(room)
                self._leave(room)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            await self._restore_metadata(lk, room, metadata)
            self.rejoins += 1
            self.last_rejoin_seconds = time.monotonic() - start
            logger.info(f"stage room {self.stage}: back in {self.last_rejoin_seconds:.1f} s "
                        f"after noticing the loss (rejoin {self.rejoins})")
            self._on_back(room)
            return True
        return False

    async def _restore_metadata(self, lk: api.LiveKitAPI, room: rtc.Room,
                                metadata: str) -> None:
        """Put back the lost room's metadata (title, speaker, state) if ``room`` has none.

        A room LiveKit re-created on another node has none until the web app next writes it.
        """
        if room.metadata or not metadata:
            return
        try:
            await asyncio.wait_for(lk.room.update_room_metadata(api.UpdateRoomMetadataRequest(
                room=self.stage, metadata=metadata)), 5)
        except Exception as exc:  # the web app re-asserts it on the next join anyway
            logger.warning(f"stage room {self.stage}: metadata not restored ({exc!r})")

    def _leave(self, room: rtc.Room) -> None:
        """Disconnect ``room`` in the background, bounded (its node may be gone)."""
        async def leave() -> None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(LEAVE_SECONDS):
                    await room.disconnect()

        task = asyncio.ensure_future(leave())
        self._leaving.add(task)
        task.add_done_callback(self._leaving.discard)
