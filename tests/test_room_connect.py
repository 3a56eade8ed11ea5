"""A join the caller stops waiting for never ends the process (broadcaster/room_connect.py).

livekit-rtc panics 15 s after a join whose ``Room.connect`` was cancelled once
LiveKit had accepted it, and the SDK answers the panic with SIGTERM to its own
process: a bot whose shard re-join timed out, or a test run, simply ended. Both
ways are run in their own processes against the session's real livekit-server:
the SDK's own (so a release that fixes it is noticed: then the helper can go) and
ours, which must live on and must not stay in the room it gave up on.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys

from broadcaster.config import Settings
from broadcaster.roles import Role, mint_token

ROOM = "abandoned-join"


async def _run(mode: str, s: Settings, identity: str) -> tuple[int, str, str]:
    token = mint_token(s, Role.VIEWER, ROOM, identity)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.helpers.abandoned_join", mode,
        s.effective_livekit_url, token,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_a_join_given_up_on_does_not_end_the_process(livekit: Settings) -> None:
    (sdk_rc, sdk_out, sdk_err), *ours = await asyncio.gather(
        _run("sdk", livekit, "gives-up-sdk"), _run("ours", livekit, "gives-up-ours"),
        _run("avatar", livekit, "gives-up-avatar"))

    # ours (connect_room, and pipecat's LiveAvatar client as the bot adapts it): gave
    # up, lived past the SDK's 15 s limit, and is not left in the room
    for rc, out, err in ours:
        assert rc == 0, (rc, err[-2000:])
        report = json.loads(out.strip().splitlines()[-1])
        assert report["gave_up"] and report["lived"] >= 20, report
        assert not report["connected"], report
        assert "FFI Panic" not in err

    # the SDK's own way: the process is SIGTERMed by its own SDK once 15 s pass.
    # If this starts failing, livekit-rtc has fixed it: broadcaster/room_connect.py
    # can then go back to a plain wait_for.
    assert "FFI Panic" in sdk_err and "ReadyForRoomEventRequest" in sdk_err, sdk_err[-2000:]
    assert sdk_rc == -signal.SIGTERM, (sdk_rc, sdk_out)
