"""The avatar keeper's decisions, on a stand-in avatar service (no network).

The real thing runs in tests/test_recovery_avatar.py (the local avatar service
killed under a viewer); here each signal is produced on purpose, fast: a closed
control socket, an avatar that left its room, frames that stop, a service that
refuses sessions for a while, one that never comes back (the keeper gives up).
The stand-in replaces only pipecat's client state read by ``heygen_session_health``.
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest

from broadcaster.bot.avatar_keeper import AvatarKeeper


class Room:
    def __init__(self) -> None:
        self.connected = True
        self.remote_participants = {"heygen": object()}

    def isconnected(self) -> bool:
        return self.connected


class Avatar:
    """What the keeper sees of FastHeyGenVideoService; ``refuse`` sessions to reopen."""

    def __init__(self, refuse: int = 0) -> None:
        self.refuse = refuse
        self.opened = 0
        self.client: Any = None
        self._open()

    def _open(self) -> None:
        self.opened += 1
        self.client = SimpleNamespace(_heyGen_session=object(), _connected=True,
                                      _livekit_room=Room(), _video_frame_callback=print)

    async def wait_set_up(self) -> None:
        return None

    async def restart_session(self) -> bool:
        if self.refuse:
            self.refuse -= 1
            self.client = SimpleNamespace(_heyGen_session=None)
            return False
        self._open()
        return True


async def run_keeper(keeper: AvatarKeeper, frames: list[int], until: Any,
                     timeout: float = 5.0) -> None:
    """Run the keeper with frames arriving every 20 ms until ``until()`` holds."""
    task = asyncio.create_task(keeper.run())

    async def feed() -> None:
        while True:
            if frames[1] == 0:  # frames[1]: 1 = the avatar's video stopped
                frames[0] += 1
            await asyncio.sleep(0.02)

    feeder = asyncio.create_task(feed())
    try:
        async with asyncio.timeout(timeout):
            while not until():
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        feeder.cancel()
        await asyncio.gather(task, feeder, return_exceptions=True)


def keeper_for(avatar: Avatar, frames: list[int], **kw: Any) -> tuple[AvatarKeeper, list[str]]:
    slates: list[str] = []
    keeper = AvatarKeeper(avatar, frames=lambda: frames[0], show_slate=lambda: slates.append("s"),
                          poll=0.02, frame_timeout=0.3, first_frame_timeout=1.0,
                          retry_min=0.02, retry_max=0.05, **kw)
    return keeper, slates


@pytest.mark.parametrize("kill", ["socket closed", "avatar left", "room lost"])
async def test_each_signal_reopens_the_session_with_the_slate_first(kill: str) -> None:
    avatar, frames = Avatar(), [0, 0]
    keeper, slates = keeper_for(avatar, frames)
    await run_keeper(keeper, frames, lambda: keeper.state == "live")
    first = avatar.client
    if kill == "socket closed":
        first._connected = False
    elif kill == "avatar left":
        first._livekit_room.remote_participants = {}
    else:
        first._livekit_room.connected = False
    await run_keeper(keeper, frames, lambda: avatar.opened == 2 and keeper.state == "live")
    assert slates == ["s"] and keeper.restarts == 1 and keeper.last_reason == kill


async def test_frames_that_stop_are_a_dead_session() -> None:
    avatar, frames = Avatar(), [0, 0]
    keeper, slates = keeper_for(avatar, frames)
    phase = ["start"]

    def story() -> bool:  # one keeper run: live, then the video stops, then reopened
        if phase[0] == "start" and keeper.state == "live":
            phase[0], frames[1] = "stopped", 1  # socket and room look fine
        elif phase[0] == "stopped" and avatar.opened == 2:
            phase[0], frames[1] = "reopened", 0  # the new session's video flows
        return phase[0] == "reopened" and keeper.state == "live"

    await run_keeper(keeper, frames, story)
    assert keeper.last_reason.startswith("no avatar frames for") and slates == ["s"]


async def test_a_refusing_service_is_asked_again_until_it_accepts() -> None:
    avatar, frames = Avatar(refuse=4), [0, 0]
    keeper, slates = keeper_for(avatar, frames)
    await run_keeper(keeper, frames, lambda: keeper.state == "live")
    avatar.client._connected = False
    await run_keeper(keeper, frames, lambda: avatar.opened == 2 and keeper.state == "live")
    assert keeper.restarts == 5, "four refusals, then the session that opened"
    assert slates == ["s"], "one slate for the whole outage"


async def test_the_keeper_gives_up_when_the_avatar_never_comes_back() -> None:
    avatar, frames = Avatar(refuse=10_000), [0, 0]
    reasons: list[str] = []
    keeper, _ = keeper_for(avatar, frames, give_up_after=0.3, on_give_up=reasons.append)
    await run_keeper(keeper, frames, lambda: keeper.state == "live")
    avatar.client._connected = False
    await run_keeper(keeper, frames, lambda: bool(reasons))
    assert "no live avatar for" in reasons[0]


async def test_a_session_that_ends_by_design_is_rolled_over_ahead_at_a_pause() -> None:
    """Sessions of 1 s (HeyGen's sandbox minute, accelerated): each is replaced before
    its end, while the avatar is quiet, without the slate; none dies on its own."""
    avatar, frames = Avatar(), [0, 0]
    speaking = [True]
    keeper, slates = keeper_for(avatar, frames, session_lifetime=1.0, speaking=lambda: speaking[0])
    keeper.rollover_lead, keeper.quiet_for = 0.6, 0.1
    t0 = asyncio.get_running_loop().time()

    def story() -> bool:  # the avatar talks for the first 0.55 s of the session, then pauses
        speaking[0] = asyncio.get_running_loop().time() - t0 < 0.55
        return avatar.opened >= 4

    await run_keeper(keeper, frames, story, timeout=6.0)
    assert slates == [], "a planned rollover shows no slate"
    assert keeper.rollovers == keeper.restarts == 3
    took = asyncio.get_running_loop().time() - t0
    assert took < 3 * 1.0, "each session was replaced before its end"


async def test_a_rollover_waits_for_the_pause_but_not_past_the_end() -> None:
    avatar, frames = Avatar(), [0, 0]
    keeper, slates = keeper_for(avatar, frames, session_lifetime=3.0, speaking=lambda: True)
    keeper.rollover_lead = 2.5
    t0 = asyncio.get_running_loop().time()
    await run_keeper(keeper, frames, lambda: avatar.opened == 2)
    took = asyncio.get_running_loop().time() - t0
    assert 0.9 <= took <= 1.3, f"never quiet: forced 2 s before the end ({took:.2f} s)"
    assert slates == []


class OverlappingAvatar(Avatar):
    """A stand-in that can open the next session beside the current one.

    ``standby_after``: seconds before the standby's frames start arriving (None: never);
    ``refuse_standby``: the service refuses a second session.
    """

    def __init__(self, standby_after: float | None = 0.05, refuse_standby: bool = False,
                 open_s: float = 0.05, settles_in: float = 0.0) -> None:
        super().__init__()
        self.standby: Any = None
        self.standby_after, self.refuse_standby, self.open_s = standby_after, refuse_standby, open_s
        self.settles_in = settles_in
        self.matches: list[float | None] = []
        """The pictures' difference the keeper read as it switched (one per switch)."""
        self.standby_since = 0.0
        self.switched = self.dropped = 0
        self.closed: list[Any] = []

    @property
    def standby_frames(self) -> int:
        if self.standby is None or self.standby_after is None:
            return 0
        return int(max(0.0, time.monotonic() - self.standby_since - self.standby_after) / 0.02)

    async def open_standby(self) -> bool:
        await asyncio.sleep(self.open_s)
        if self.refuse_standby:
            return False
        self.standby = SimpleNamespace(_heyGen_session=object(), _connected=True,
                                       _livekit_room=Room(), _video_frame_callback=print)
        self.standby_since = time.monotonic()
        return True

    def standby_match(self) -> float | None:
        """Mean |Δ luma| between the current and the next session's pictures: the next
        one's stream starts blurred (its encoder ramps up) and matches after
        ``settles_in`` seconds of frames (1.0 -> 0.1, as measured on the local avatar)."""
        if self.standby is None or self.standby_after is None:
            return None
        streaming = time.monotonic() - self.standby_since - self.standby_after
        if streaming < 0:
            return None
        if not self.settles_in:
            return 0.1
        return max(0.1, 1.0 - 0.9 * streaming / self.settles_in)

    async def switch_to_standby(self) -> Any:
        self.matches.append(self.standby_match())
        old, self.client, self.standby = self.client, self.standby, None
        self.switched += 1
        return old

    async def close_client(self, client: Any) -> None:
        self.closed.append(client)

    async def drop_standby(self) -> None:
        if self.standby is not None:
            self.dropped += 1
        self.standby = None


def overlapping_keeper(avatar: OverlappingAvatar, frames: list[int], **kw: Any
                       ) -> tuple[AvatarKeeper, list[str]]:
    keeper, slates = keeper_for(avatar, frames, session_lifetime=1.0,
                                switch_gap=lambda: (avatar.switched, 0.02),
                                speaking=lambda: False, force_left=0.2, switch_latest=0.1, **kw)
    keeper.rollover_lead, keeper.quiet_for = 0.6, 0.1
    return keeper, slates


async def test_the_next_session_is_opened_ahead_and_switched_to_once_warm() -> None:
    """Sessions of 1 s: the next one opens 0.6 s before the end, its frames arrive, and
    the keeper switches to it (no reopen, no slate); the old one is closed after."""
    avatar, frames = OverlappingAvatar(), [0, 0]
    keeper, slates = overlapping_keeper(avatar, frames)
    t0 = time.monotonic()
    await run_keeper(keeper, frames, lambda: avatar.switched >= 3, timeout=6.0)
    assert slates == [] and avatar.opened == 1, "switched to, never closed and reopened"
    assert keeper.rollovers == 3 and len(avatar.closed) >= 2
    assert all(h <= 0.1 for h in keeper.held), keeper.held
    assert time.monotonic() - t0 < 3 * 1.0, "each switch came before the session's end"


async def test_a_refused_second_session_falls_back_to_close_and_reopen() -> None:
    avatar, frames = OverlappingAvatar(refuse_standby=True), [0, 0]
    keeper, slates = overlapping_keeper(avatar, frames)
    await run_keeper(keeper, frames, lambda: avatar.opened >= 3, timeout=6.0)
    assert avatar.switched == 0 and slates == [] and keeper.rollovers >= 2


async def test_a_next_session_that_never_warms_is_dropped_in_time() -> None:
    """Its frames never come: the keeper does not wait past SWITCH_LATEST; it closes and
    reopens the current one (sequential), and the cold standby is closed too."""
    avatar, frames = OverlappingAvatar(standby_after=None), [0, 0]
    keeper, slates = overlapping_keeper(avatar, frames)
    t0 = time.monotonic()
    await run_keeper(keeper, frames, lambda: avatar.opened >= 2, timeout=6.0)
    took = time.monotonic() - t0
    assert avatar.switched == 0 and avatar.dropped == 1 and slates == []
    assert took <= 1.0 - keeper.switch_latest + 0.1, f"rolled over {took:.2f} s in (too late)"


async def test_a_warm_next_session_takes_over_when_the_current_one_dies() -> None:
    avatar, frames = OverlappingAvatar(), [0, 0]
    keeper, slates = overlapping_keeper(avatar, frames)
    keeper.session_lifetime, keeper.rollover_lead = 3.0, 2.9  # opened ahead at once
    keeper.speaking = lambda: True  # no pause: no planned switch for a while
    first = avatar.client

    def story() -> bool:  # once the next session is warm, the current one dies
        if avatar.standby is not None and avatar.standby_frames >= 5:
            first._connected = False
        return avatar.switched == 1

    await run_keeper(keeper, frames, story)
    assert slates == [] and avatar.opened == 1 and keeper.restarts == 1
    assert keeper.last_reason == "socket closed"


async def test_the_switch_waits_until_the_next_sessions_picture_matches() -> None:
    """The next session's first frames differ from the current one's (its stream ramps
    up: measured 1.08 -> 0.15 mean |Δ luma| over its first ~1.5 s); switching to them
    makes the picture jump. The keeper switches only once they match, at a pause."""
    avatar, frames = OverlappingAvatar(settles_in=0.3), [0, 0]
    keeper, slates = overlapping_keeper(avatar, frames)
    keeper.session_lifetime, keeper.rollover_lead = 2.0, 1.6
    await run_keeper(keeper, frames, lambda: avatar.switched >= 2, timeout=8.0)
    assert slates == [] and avatar.opened == 1
    assert all(m is not None and m <= keeper.settled_luma for m in avatar.matches), (
        f"switched to pictures {avatar.matches} apart (settled: <= {keeper.settled_luma})")


async def test_a_next_session_that_never_settles_is_switched_to_by_the_latest_moment() -> None:
    """Its picture never matches (another look, a codec that never gets there): the switch
    still comes, overlapped, ``settle_max`` seconds after its frames began or by
    ``switch_latest`` before the end, never a close-and-reopen."""
    avatar, frames = OverlappingAvatar(settles_in=1000.0), [0, 0]
    keeper, slates = overlapping_keeper(avatar, frames)
    keeper.settle_max = 0.2
    await run_keeper(keeper, frames, lambda: avatar.switched >= 2, timeout=6.0)
    assert slates == [] and avatar.opened == 1 and keeper.rollovers == 2


class HandingAvatar(OverlappingAvatar):
    """A stand-in whose speech handover comes at a pause ``pause_in`` s after it is asked
    (None: no pause before its deadline ``by``)."""

    def __init__(self, pause_in: float | None) -> None:
        super().__init__()
        self.pause_in = pause_in
        self.mirrored = False
        self.log: list[str] = []

    async def hand_over(self, by: float) -> bool:
        wait = by - time.monotonic() if self.pause_in is None else self.pause_in
        await asyncio.sleep(max(0.0, wait))
        self.mirrored = self.standby is not None
        self.log.append("handed")
        return self.mirrored

    async def switch_to_standby(self) -> Any:
        self.log.append("switched" if self.mirrored else "switched unhanded")
        self.mirrored = False
        return await super().switch_to_standby()


@pytest.mark.parametrize("pause_in", [0.15, None])
async def test_a_rollover_mid_answer_hands_the_speech_over_before_the_switch(
        pause_in: float | None) -> None:
    """The avatar is quiet (a pause between sentences) but mid-answer: the keeper does not
    switch until the next session took the speech over (at a pause, or at once by the
    deadline), never to a next session that does not say the answer."""
    avatar, frames = HandingAvatar(pause_in), [0, 0]
    keeper, slates = overlapping_keeper(avatar, frames)
    keeper.rollover_lead = 0.8
    await run_keeper(keeper, frames, lambda: avatar.switched >= 2, timeout=6.0)
    assert avatar.log[:4] == ["handed", "switched"] * 2, avatar.log
    assert slates == [] and keeper.rollovers >= 2
