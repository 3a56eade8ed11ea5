"""A process that gives up on a LiveKit join and then lives on (tests/test_room_connect.py).

``python -m tests.helpers.abandoned_join {sdk|ours} URL TOKEN``: starts a join,
stops waiting for it after it was sent, then stays alive ``LINGER`` seconds (past
the SDK's 15 s handshake limit). ``sdk`` cancels ``Room.connect`` as
``asyncio.wait_for`` does; ``ours`` gives up through
:func:`broadcaster.room_connect.connect_room`. Prints one JSON line at the end.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from livekit import rtc

from broadcaster.room_connect import connect_room, wait_abandoned

LINGER = 20.0
GIVE_UP_AFTER = 0.02  # the join is on the wire, LiveKit has not answered yet


async def main(mode: str, url: str, token: str) -> None:
    room = rtc.Room()
    started = time.monotonic()
    if mode == "sdk":
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


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
