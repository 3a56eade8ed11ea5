"""Issue 11, finding 7: the floor holds without webhooks.

The session's livekit-server sends no webhooks at all, so in these tests only the web
app's reconciliation (at start, then every few seconds: LiveKit's view made to match
the store) can take rights away. What a user would notice: a demoted presenter who
comes back with her old token is silenced within seconds; a removed person who comes
back with theirs is put out again; an old token's data rights are taken away; and all
of it also holds for what happened while the web app was down. The 300-viewer join
storm with webhooks dropped is a benchmark (bench/reconcile_storm.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from livekit import api, rtc

from broadcaster.config import Settings
from broadcaster.netutil import free_port
from tests.fixtures_web import connect, serving, try_publish_mic
from tests.test_web_browser import old_style_viewer_token
from tests.test_web_livekit import joined, server_view, tracks_of

#: the reconciliation runs every 2 s by default; "within a few seconds"
WITHIN = 5.0


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = WITHIN) -> float:
    """Seconds until ``check()`` held; fails after ``timeout``."""
    t0 = time.monotonic()
    while not await check():
        assert time.monotonic() - t0 < timeout, "not reconciled in time"
        await asyncio.sleep(0.1)
    return time.monotonic() - t0


async def _silenced(lk: api.LiveKitAPI, room: str, identity: str) -> bool:
    info = await server_view(lk, room, identity)
    return not info.permission.can_publish and await tracks_of(lk, room, identity) == []


async def _absent(lk: api.LiveKitAPI, room: str, identity: str) -> bool:
    people = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
    return all(p.identity != identity for p in people.participants)


async def test_finding7_the_floor_holds_with_no_webhooks_at_all(
    livekit: Settings, lkapi: api.LiveKitAPI, tmp_path: Path,
) -> None:
    s = livekit.replace(state_dir=str(tmp_path), web_port=free_port())
    async with serving(s) as c:
        w = await c.new_webinar("No webhooks")
        room = w["room"]
        base = f"/api/host/webinars/{room}/participants"
        pres = await joined(c, room, "petra", "presenter", code=w["presenter_code"])
        eve = await joined(c, room, "eve")
        old = await joined(c, room, "olga")
        viktor = await joined(c, room, "viktor")
        rooms: list[rtc.Room] = []
        try:
            rooms.append(v := await connect(viktor["url"], viktor["token"]))
            assert (await c.host("POST", f"{base}/viktor/promote")).status == 200
            rooms.append(await connect(eve["url"], eve["token"]))
            assert (await c.host("POST", f"{base}/eve/remove")).status == 200
            assert (await c.host("POST", f"{base}/olga/remove")).status == 200  # claim only

            # each comes back with the token minted before the host acted
            rooms.append(p := await connect(pres["url"], pres["token"]))
            await try_publish_mic(p, timeout=2.0)
            rooms.append(await connect(eve["url"], eve["token"]))
            rooms.append(await connect(old["url"], old["token"]))
            rooms.append(await connect(s.effective_livekit_url,
                                       old_style_viewer_token(s, room, "datagal")))
            took = [
                await _until(lambda: _silenced(lkapi, room, "petra")),
                await _until(lambda: _absent(lkapi, room, "eve")),
                await _until(lambda: _absent(lkapi, room, "olga")),
                await _until(lambda: _no_data(lkapi, room, "datagal")),
            ]
            print(f"\nreconciled within {max(took):.2f} s (no webhooks)")
            # the speaker keeps the floor throughout
            assert (await server_view(lkapi, room, "viktor")).permission.can_publish
            assert await try_publish_mic(v) is not None
            await asyncio.sleep(2.5)  # and it stays that way (one more round)
            assert await _silenced(lkapi, room, "petra")
            assert (await server_view(lkapi, room, "viktor")).permission.can_publish
        finally:
            await asyncio.gather(*(r.disconnect() for r in rooms))


async def _no_data(lk: api.LiveKitAPI, room: str, identity: str) -> bool:
    return not (await server_view(lk, room, identity)).permission.can_publish_data


async def test_finding7_what_happened_while_the_app_was_down_is_fixed_at_start(
    livekit: Settings, lkapi: api.LiveKitAPI, tmp_path: Path,
) -> None:
    s = livekit.replace(state_dir=str(tmp_path), web_port=free_port())
    async with serving(s) as c:
        w = await c.new_webinar("Down for a while")
        room = w["room"]
        pres = await joined(c, room, "petra", "presenter", code=w["presenter_code"])
        p = await connect(pres["url"], pres["token"])
        assert await try_publish_mic(p) is not None
        assert (await c.host("POST", f"/api/host/webinars/{room}/participants/petra/demote")
                ).status == 200
        await p.disconnect()
        over = (await c.new_webinar("Over"))["room"]
        late = await joined(c, over, "late")
        assert (await c.host("POST", f"/api/host/webinars/{over}/end")).status == 200
    # nobody watches now: she comes back and publishes, a viewer walks into the ended room
    p = await connect(pres["url"], pres["token"])
    x = await connect(late["url"], late["token"])
    try:
        assert await try_publish_mic(p, timeout=3.0) is not None
        assert (await server_view(lkapi, room, "petra")).permission.can_publish
        async with serving(s.replace(web_port=free_port())):
            t0 = time.monotonic()
            await _until(lambda: _silenced(lkapi, room, "petra"))
            await _until(lambda: _absent(lkapi, over, "late"))
            print(f"\nfixed {time.monotonic() - t0:.2f} s after the app started")
    finally:
        await asyncio.gather(p.disconnect(), x.disconnect())
