"""Join a LiveKit room with a time limit, without ever abandoning the SDK's handshake.

livekit-rtc's native side, once it has told Python a join succeeded, waits 15 s
for Python's ``ReadyForRoomEventRequest`` (sent at the end of ``Room.connect``).
If none comes it panics, and the Python SDK answers every native panic with
``os.kill(os.getpid(), SIGTERM)``: the whole process ends. Cancelling
``Room.connect`` (``asyncio.wait_for`` running out, a task cancelled at shutdown)
after LiveKit accepted the join but before Python saw it leaves exactly that
handshake unanswered. It ended the bot's shard re-joins after a node loss and,
once, a whole test run 15 s after a rejoin gave up.

:func:`connect_room` is therefore the only way broadcaster joins a room with a
limit (``tests/test_architecture.py`` refuses ``wait_for(…connect(…))``): the
join is never cancelled; a caller that stops waiting gets ``TimeoutError`` (or its
cancellation) at once, and the join, when it lands anyway, is left straight away.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from livekit import rtc
from loguru import logger

#: joins a caller gave up on, still running until they land (kept from the GC)
_abandoned: set[asyncio.Future[None]] = set()


async def connect_room(room: rtc.Room, url: str, token: str, *, seconds: float,
                       options: rtc.RoomOptions | None = None) -> None:
    """``room.connect(url, token, options)`` within ``seconds``.

    Raises ``TimeoutError`` after ``seconds`` and whatever the SDK raises for a
    refused join. On timeout or cancellation the join runs on in the background,
    so the SDK's handshake is always answered, and the room is disconnected as
    soon as it is in: the caller never gets a room it did not wait for.
    """
    join = asyncio.ensure_future(room.connect(url, token, options or rtc.RoomOptions()))
    try:
        await asyncio.wait_for(asyncio.shield(join), seconds)
    except BaseException:
        if not join.done():
            _abandon(room, join)
        raise


def _abandon(room: rtc.Room, join: asyncio.Future[None]) -> None:
    """Let ``join`` finish, then leave the room it opened."""
    leave_when_landed(join, lambda: room)


def leave_when_landed(join: asyncio.Future[None], room_of: Callable[[], rtc.Room | None]) -> None:
    """Keep ``join`` (given up on, still running) alive; when it lands, leave its room.

    ``room_of`` is asked at landing time, for joins whose room object is made inside
    the join itself (pipecat's LiveAvatar client makes its ``rtc.Room`` there).
    """
    _abandoned.add(join)

    def landed(done: asyncio.Future[None]) -> None:
        _abandoned.discard(done)
        if done.cancelled() or done.exception() is not None:
            return
        room = room_of()
        if room is None or not room.isconnected():
            return
        logger.info("a LiveKit join given up on landed late; leaving that room")
        leave = asyncio.ensure_future(_leave(room))
        _abandoned.add(leave)
        leave.add_done_callback(_abandoned.discard)

    join.add_done_callback(landed)


async def _leave(room: rtc.Room) -> None:
    with contextlib.suppress(Exception):
        await room.disconnect()


async def wait_abandoned() -> None:
    """Wait for every join given up on to land and be left (tests, orderly shutdown)."""
    while _abandoned:
        await asyncio.gather(*list(_abandoned), return_exceptions=True)
