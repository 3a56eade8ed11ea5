"""Keep the avatar session alive: notice a dead one within a second or two, reopen it in place.

pipecat's LiveAvatar client never reports a dead session (DESIGN.md), so the keeper
watches from outside, every ``poll`` seconds, every signal there is:

- the control socket closed (the service died, or closed it): the client's own state;
- the client's LiveKit room was lost, or the avatar participant left it;
- no avatar frames for ``frame_timeout`` seconds while the session was live;
- the service refusing a session: a reopen that fails is retried with a short backoff.

A dead session is replaced inside the same bot process, models and caches included:
the republisher shows its slate at once, :meth:`restart_session` closes the old
session and opens a new one, and the keeper waits for the new avatar's frames.
Only when no live avatar came back for ``give_up_after`` seconds does it call
``on_give_up`` (the bot then exits for a fresh one, as before).

Sessions that end by design (HeyGen's sandbox minute, ``max_session_duration``) are
rolled over before they end, overlapped (docs/recovery.md): ``rollover_lead`` seconds
before the end the keeper opens the next session beside the current one (its frames are
received and held back) and, once it is open, has the current session's speech handed
to it at a pause (``hand_over``: the rest of the utterance, then every piece mirrored),
so both say the same and look the same. Once the next one delivered ``warm_frames``
frames and its picture matches the current one's (``settled_luma``, or after
``settle_max`` seconds: a new stream starts blurred), the service switches to it at the
first moment the avatar has been quiet for ``quiet_for`` seconds (at the latest
``SWITCH_LATEST`` before the end), at a frame showing the same picture; the old session
is closed. A warm next session also takes over at once when the current one dies. When
the next one cannot be opened or is not warm in time, the rollover is sequential: the
session is closed and reopened at the pause, the republisher holding the last frame.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol, cast

from loguru import logger

from broadcaster.bot.picture_match import SAME_PICTURE
from broadcaster.bot.speech_handover import Handover
from broadcaster.sdk_internals import heygen_session_health

#: the reason _watch gives for a planned session change (no slate)
ROLLOVER = "rollover"
#: a sequential rollover is forced this long before the end when the avatar never pauses
FORCE_LEFT = 2.0
#: a warm next session is switched to by then at the latest; not warm by then: sequential
SWITCH_LATEST = 1.0
#: the speech is handed to the next session by this long before SWITCH_LATEST at the latest
#: (its picture then has time to match: both sessions speaking, or both idle)
HANDOVER_BEFORE = 0.5


class _Avatar(Protocol):
    @property
    def client(self) -> object | None: ...

    async def wait_set_up(self) -> None: ...

    async def restart_session(self) -> bool: ...


class _Overlapping(_Avatar, Protocol):
    """An avatar service that can open the next session beside the current one."""

    @property
    def standby(self) -> object | None: ...

    @property
    def standby_frames(self) -> int: ...

    async def open_standby(self) -> bool: ...

    async def switch_to_standby(self) -> object | None: ...

    async def close_client(self, client: Any) -> None: ...

    async def drop_standby(self) -> None: ...

    def standby_match(self) -> float | None: ...


class AvatarKeeper:
    """Watches one avatar service and reopens its session in place when it dies.

    Args:
        avatar: the ``FastHeyGenVideoService`` (``restart_session``, ``client``).
        frames: a counter of avatar frames received (relay mode), or None.
        present: direct mode, where the avatar's frames never pass the bot: whether
            the avatar participant is in the stage room.
        show_slate: called the moment the session is known dead.
        media: whether the client joins a room to receive the avatar (relay mode).
        on_state: told "live", "restarting" as the state changes.
        on_give_up: called once when no live avatar came back for ``give_up_after``.
        session_lifetime: seconds a session lasts by design (None: unbounded); it is
            rolled over ``rollover_lead`` seconds ahead, at a pause in ``speaking``.
        overlap: open the next session ahead and switch to it (relay mode, and only
            when the avatar can: ``open_standby``); False: close, then reopen.
        switch_gap: (switches of the frames' source seen, the last one's gap in seconds),
            from the republisher: how long the picture was held at a switch.
        settled_luma: the next session's picture counts as settled once it differs from
            the current one's by at most this (mean |Δ luma|, 0-255).
        settle_max: ... or once its frames have come for this many seconds.
        handover: hand the current session's speech to the next one before the switch.
    """

    def __init__(self, avatar: _Avatar, *, frames: Callable[[], int] | None = None,
                 present: Callable[[], bool] | None = None,
                 show_slate: Callable[[], None] | None = None, media: bool = True,
                 poll: float = 0.2, frame_timeout: float = 1.5,
                 first_frame_timeout: float = 10.0, retry_min: float = 0.2,
                 retry_max: float = 0.5, give_up_after: float = 300.0,
                 on_state: Callable[[str], None] | None = None,
                 on_give_up: Callable[[str], None] | None = None,
                 session_lifetime: float | None = None, rollover_lead: float = 15.0,
                 speaking: Callable[[], bool] | None = None, quiet_for: float = 0.6,
                 overlap: bool = True, warm_frames: int = 3,
                 switch_gap: Callable[[], tuple[int, float]] | None = None,
                 force_left: float = FORCE_LEFT, switch_latest: float = SWITCH_LATEST,
                 settled_luma: float = SAME_PICTURE, settle_max: float = 2.5,
                 handover: bool = True) -> None:
        self.avatar = avatar
        self.frames = frames
        self.present = present
        self.show_slate = show_slate
        self.media = media
        self.poll = poll
        self.frame_timeout = frame_timeout
        self.first_frame_timeout = first_frame_timeout
        self.retry_min, self.retry_max = retry_min, retry_max
        self.give_up_after = give_up_after
        self.on_state = on_state
        self.on_give_up = on_give_up
        self.session_lifetime = session_lifetime
        self.rollover_lead = rollover_lead
        self.speaking = speaking or (lambda: False)
        self.quiet_for = quiet_for
        self.overlap = overlap and media and hasattr(avatar, "open_standby")
        self.warm_frames = warm_frames
        self.force_left, self.switch_latest = force_left, switch_latest
        self.switch_gap = switch_gap
        self.settled_luma, self.settle_max = settled_luma, settle_max
        self._warm_since: float | None = None  # the next session's frames began
        self._match: float | None = None  # its picture vs the current one's, last read
        self._next: asyncio.Task[float | None] | None = None  # opening the next session
        self._handover = Handover(avatar if handover else None)  # its speech handed to it
        self.held: list[float] = []
        """Seconds the picture was held at each overlapped switch (frame to frame)."""
        self.rollovers = 0
        """Planned rollovers so far (counted in ``restarts`` too)."""
        self._forced = False  # this rollover's next session is taken unsettled (too late)
        self.state = "starting"
        self.restarts = 0
        """Sessions reopened in place so far."""
        self.last_reason = ""
        self.down_since: float | None = None

    def _set(self, state: str) -> None:
        if state != self.state:
            self.state = state
            if self.on_state is not None:
                self.on_state(state)

    def health(self) -> str:
        """Tell what is wrong with the current session ("open" when nothing is)."""
        client = self.avatar.client
        if client is None:
            return "none"
        return heygen_session_health(client, media=self.media)  # type: ignore[arg-type]

    async def run(self) -> None:
        """Watch until cancelled."""
        await self.avatar.wait_set_up()
        opened_at = time.monotonic()
        try:
            while True:
                reason = await self._watch(opened_at)
                self.last_reason = reason
                if reason == ROLLOVER:
                    self.rollovers += 1
                if (switched := await self._switch(reason)) is not None:
                    opened_at = switched
                    continue
                if reason == ROLLOVER:
                    logger.info("avatar session near its end: rolling over at a pause")
                else:
                    logger.warning(f"avatar session dead ({reason}): slate, reopening it "
                                   "in place")
                    if self.show_slate is not None:
                        self.show_slate()
                    self._set("restarting")
                    if self.down_since is None:
                        self.down_since = time.monotonic()
                await self._drop_next()
                opened_at = time.monotonic()  # the session's lifetime counts from its opening
                await self._reopen()
        finally:
            await self._drop_next()

    # ------------------------------------------------------------ the next session, ahead
    def _start_next(self) -> None:
        if self.overlap and self._next is None:
            self._warm_since = self._match = None
            self._next = asyncio.create_task(self._open_next(), name="avatar-next-session")

    async def _open_next(self) -> float | None:
        """Open the next session; return when the service started it (None: refused).

        Its lifetime is counted from ``/sessions/start`` (``standby_started``; else from
        when the opening began), not from when the opening returned: the client's LiveKit
        join comes after (0.4-1.5 s on a busy box), and a switch counted from the join's
        end came after the service had ended the session once in a rollover test; counted
        from the opening's beginning, the next one's opening (1.1-1.5 s) was too late.
        """
        avatar = cast(_Overlapping, self.avatar)
        began = time.monotonic()
        try:
            opened = await avatar.open_standby()
        except Exception as e:  # the service refusing in a way pipecat did not swallow
            logger.warning(f"opening the next avatar session ahead failed: {e}")
            opened = False
        if not opened:
            logger.info("the avatar service refused a second session: the rollover will "
                        "close and reopen")
            return None
        started = getattr(avatar, "standby_started", None) or began
        logger.info(f"next avatar session opened ahead in {time.monotonic() - began:.1f} s "
                    f"(started by the service after {started - began:.1f} s); warming up")
        return started

    def _next_state(self) -> str:
        """Tell how far the next session is: "none", "opening", "failed" or, opened, "cold".

        "cold": no frames yet; "settling": frames, its picture not yet the current one's;
        "warm": ready to switch to.
        """
        task = self._next
        if task is None:
            return "none"
        if not task.done():
            return "opening"
        if task.cancelled() or task.exception() is not None or task.result() is None:
            return "failed"
        avatar = cast(_Overlapping, self.avatar)
        standby = avatar.standby
        if standby is None or heygen_session_health(standby, media=True) != "open":  # type: ignore[arg-type]
            return "failed"
        if avatar.standby_frames < self.warm_frames:
            return "cold"
        now = time.monotonic()
        if self._warm_since is None:
            self._warm_since = now
        self._match = avatar.standby_match() if hasattr(avatar, "standby_match") else None
        if (self._match is not None and self._match <= self.settled_luma) or \
                now - self._warm_since >= self.settle_max:
            return "warm"
        return "settling"

    async def _switch(self, reason: str) -> float | None:
        """Switch to the next session; return when it was opened (None: no switch).

        A planned rollover takes a warm one (or a settling one at the last moment); a
        dead current session is replaced by any next one that delivers frames.
        """
        state = self._next_state()
        if state != "warm" and not (state == "settling" and (
                reason != ROLLOVER or self._forced)):
            return None
        assert self._next is not None
        opened_at = self._next.result()
        self._next = None
        avatar = cast(_Overlapping, self.avatar)
        seen = self.switch_gap()[0] if self.switch_gap else 0
        now = time.monotonic()
        ahead = now - (opened_at or 0.0)
        settled = now - (self._warm_since or now)
        match = self._match
        await self._handover.cancel()
        if reason == ROLLOVER:  # the rest of an utterance goes on in the next session
            await self._handover.now()
        old = await avatar.switch_to_standby()
        held = await self._held_since(seen)
        self.held.append(held)
        why = "near its end: rolling over at a pause" if reason == ROLLOVER else \
            f"dead ({reason}): taken over"
        apart = "unknown" if match is None else f"{match:.2f}"
        logger.info(f"avatar session {why}, by the next session opened {ahead:.1f} s ahead; "
                    f"picture held {held:.3f} s; its frames for {settled:.1f} s, pictures "
                    f"{apart} apart ({state})")
        if reason != ROLLOVER:
            self.restarts += 1
        if old is not None:
            await avatar.close_client(old)
        return opened_at

    async def _held_since(self, seen: int) -> float:
        """Seconds between the old session's last frame and the new one's first."""
        if self.switch_gap is None:
            return 0.0
        for _ in range(400):  # 2 s at most
            count, gap = self.switch_gap()
            if count != seen:
                return gap
            await asyncio.sleep(0.005)
        return 2.0

    async def _drop_next(self) -> None:
        await self._handover.cancel()
        task, self._next = self._next, None
        if task is None:
            return
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if self.overlap:
            await cast(_Overlapping, self.avatar).drop_standby()

    async def _watch(self, opened_at: float) -> str:
        """Return once the session is dead, with the reason."""
        count = self.frames() if self.frames else 0
        self._forced = False
        last_frame = opened_at
        live = False
        last_spoke = opened_at
        while True:
            await asyncio.sleep(self.poll)
            now = time.monotonic()
            health = self.health()
            if health != "open":
                return health
            if self.speaking():
                last_spoke = now
            if self.session_lifetime is not None and live:
                left = opened_at + self.session_lifetime - now
                quiet = now - last_spoke >= self.quiet_for
                if left <= self.rollover_lead:
                    self._start_next()
                    state = self._next_state()
                    if state in ("cold", "settling", "warm"):  # open: it may take the speech
                        self._handover.start(opened_at + self.session_lifetime
                                             - self.switch_latest - HANDOVER_BEFORE)
                    if state == "warm" and ((quiet and self._handover.done())
                                            or left <= self.switch_latest):
                        return ROLLOVER  # overlapped
                    if state == "settling" and left <= self.switch_latest:
                        self._forced = True  # overlapped, its picture not settled yet
                        return ROLLOVER
                    if state in ("none", "failed") and (quiet or left <= self.force_left):
                        return ROLLOVER  # sequential
                    if state in ("opening", "cold") and left <= self.switch_latest:
                        return ROLLOVER  # the next one is late: sequential after all
            if self.present is not None:
                if self.present():
                    live = True
                elif live:
                    return "the avatar left the stage room"
                elif now - opened_at > self.first_frame_timeout:
                    return f"the avatar did not join in {self.first_frame_timeout:.0f} s"
            elif self.frames is None:
                live = True
            else:
                seen = self.frames()
                if seen != count:
                    count, last_frame, live = seen, now, True
                elif live and now - last_frame > self.frame_timeout:
                    return f"no avatar frames for {now - last_frame:.1f} s"
                elif not live and now - opened_at > self.first_frame_timeout:
                    return f"no avatar frames in {self.first_frame_timeout:.0f} s"
            if live and self.state != "live":
                if self.down_since is not None:
                    logger.info(f"avatar live again {now - self.down_since:.1f} s after "
                                f"it was found dead (restart {self.restarts})")
                self.down_since = None
                self._set("live")
            self._check_give_up(now)

    async def _reopen(self) -> None:
        """Close the dead session, open new ones until one opens (backoff between)."""
        delay = self.retry_min
        while True:
            self.restarts += 1
            try:
                opened = await self.avatar.restart_session()
            except Exception as e:  # the service refusing in a way pipecat did not swallow
                logger.warning(f"reopening the avatar session failed: {e}")
                opened = False
            if opened:
                logger.info("avatar session reopened; waiting for its frames")
                return
            self._check_give_up(time.monotonic())
            logger.info(f"the avatar service refused a session; again in {delay:.2f} s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.retry_max)

    def _check_give_up(self, now: float) -> None:
        if (self.down_since is not None and now - self.down_since > self.give_up_after
                and self.on_give_up is not None):
            self.on_give_up(f"no live avatar for {self.give_up_after:.0f} s "
                            f"({self.restarts} sessions tried; last: {self.last_reason})")
