"""A process that gives up on a LiveKit join and then lives on (tests/test_room_connect.py).

``python -m tests.helpers.abandoned_join {sdk|ours|avatar} URL TOKEN``: starts a
join, stops waiting for it after it was sent, then stays alive ``LINGER`` seconds
(past the SDK's 15 s handshake limit). ``sdk`` cancels ``Room.connect`` as
``asyncio.wait_for`` does; ``ours`` gives up through
:func:`broadcaster.room_connect.connect_room`; ``avatar`` cancels the LiveKit join
of pipecat's LiveAvatar client (``HeyGenClient._livekit_connect``) as the bot
adapts it (a session opening given up on). Prints one JSON line at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from types import SimpleNamespace

from livekit import rtc

from broadcaster.room_connect import connect_room, wait_abandoned
from broadcaster.sdk_internals import heygen_media_join, shield_media_join

LINGER = 20.0
GIVE_UP_AFTER = 0.02  # the join is on the wire, LiveKit has not answered yet


async def main(mode: str, url: str, token: str) -> None:
    room = rtc.Room()
    started = time.monotonic()
    if mode == "avatar":
        room, gave_up = await _avatar_join(url, token)
    elif mode == "sdk":
        join = asyncio.ensure_future(room.connect(url, token))
        await asyncio.sleep(GIVE_UP_AFTER)
        gave_up = not join.done()
        join.cancel()
    else:
        try:
            await connect_room(room, url, token, seconds=GIVE_UP_AFTER)
            gave_up = False
        except TimeoutError:
            gave_up = True
    await asyncio.sleep(LINGER)
    await wait_abandoned()
    print(json.dumps({"gave_up": gave_up, "connected": room.isconnected(),
                      "lived": round(time.monotonic() - started, 1)}), flush=True)


async def _avatar_join(url: str, token: str) -> tuple[rtc.Room, bool]:
    """Cancel pipecat's LiveAvatar client in its LiveKit join, as the bot builds it."""
    import aiohttp
    from pipecat.services.heygen.client import HeyGenCallbacks, HeyGenClient
    from pipecat.transports.base_transport import TransportParams

    async def ignore(*_: object) -> None:
        return None

    async with aiohttp.ClientSession() as http:
        client = HeyGenClient(
            api_key="unused", session=http, params=TransportParams(),
            callbacks=HeyGenCallbacks(on_connected=ignore, on_participant_connected=ignore,
                                      on_participant_disconnected=ignore),
            connect_as_user=True)
    # what the avatar service's session would hand the client: the room and a token
    vars(client).update(_heyGen_session=SimpleNamespace(livekit_url=url, access_token=token),
                        _task_manager=SimpleNamespace())
    shield_media_join(client)
    join = asyncio.ensure_future(heygen_media_join(client))
    await asyncio.sleep(GIVE_UP_AFTER)
    gave_up = not join.done()
    join.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await join
    room = client._livekit_room  # made inside the join, before it was given up on
    return (room if room is not None else rtc.Room()), gave_up


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
