"""A session opened while the presenter is mid-turn listens too: no change of look at a switch.

pipecat tells only its current LiveAvatar client ``agent.start_listening`` /
``stop_listening`` (on the presenter's turn); a session the bot opens later — the next
one, opened ahead for a rollover, or one reopened in place after a crash — would show
the idle look while the old one showed the listening one, and the picture would change
at the switch. Real parts: the session's livekit-server and local avatar service, the
bot's ``FastHeyGenVideoService`` (pipecat's client) in a pipecat pipeline; each
session's state is read from the service's own listing (``GET /v1/sessions``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aiohttp
from pipecat.frames.frames import (
    Frame,
    OutputImageRawFrame,
    OutputTransportReadyFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.heygen.client import HeyGenClient

from broadcaster.config import Settings
from tests.helpers.avatar_pipeline import avatar_pipeline, session_id, states


class Frames(FrameProcessor):
    """Counts the avatar frames that reach the end of the pipeline."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, OutputImageRawFrame):
            self.count += 1
        await self.push_frame(frame, direction)


async def until(check: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check() if asyncio.iscoroutinefunction(check) else not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_the_next_session_takes_the_presenters_turn_over(
        avatar_service: str, avatar_settings: Settings) -> None:
    s = avatar_settings
    sink = Frames()
    async with aiohttp.ClientSession() as http, avatar_pipeline(
            http, avatar_service, s, sink) as (avatar, worker):

        async def state_of(client: HeyGenClient | None) -> str | None:
            return (await states(http, avatar_service, s)).get(session_id(client) or "")

        await worker.queue_frame(OutputTransportReadyFrame())
        await until(lambda: sink.count > 0, "the first avatar frame", 25)
        first = avatar.client
        assert first is not None and await state_of(first) == "idle"

        # the presenter starts a turn; the next session is opened during it
        await worker.queue_frame(UserStartedSpeakingFrame())

        async def first_listens() -> bool:
            return await state_of(first) == "listening"
        await until(first_listens, "pipecat to tell its session of the turn", 5)
        assert await avatar.open_standby(), "the service opened a second session"
        standby = avatar.standby
        assert standby is not None

        async def both_listen() -> bool:
            return (await state_of(first), await state_of(standby)) == ("listening",) * 2
        await until(both_listen, "both sessions listening (the next one told at its "
                    "opening)", 5)

        # switched mid-turn: the new current session goes on listening; the turn's
        # end reaches it (pipecat tells its current client)
        old = await avatar.switch_to_standby()
        assert old is first and avatar.client is standby
        await avatar.close_client(old)
        assert await state_of(standby) == "listening"
        await worker.queue_frame(UserStoppedSpeakingFrame())

        async def idle() -> bool:
            return await state_of(standby) == "idle"
        await until(idle, "the new session idle after the turn", 5)

        # a turn that starts while the next session is open reaches it too
        assert await avatar.open_standby()
        second = avatar.standby
        assert second is not None
        await worker.queue_frame(UserStartedSpeakingFrame())

        async def second_listens() -> bool:
            return await state_of(second) == "listening"
        await until(second_listens, "the open next session told of the new turn", 5)
        await worker.queue_frame(UserStoppedSpeakingFrame())

        async def second_idle() -> bool:
            return await state_of(second) == "idle"
        await until(second_idle, "the open next session told the turn ended", 5)
        await avatar.drop_standby()

        # a session reopened in place mid-turn (after a crash) listens too
        await worker.queue_frame(UserStartedSpeakingFrame())

        async def current_listens() -> bool:
            return await state_of(avatar.client) == "listening"
        await until(current_listens, "the second turn", 5)
        assert await avatar.restart_session()
        reopened = avatar.client
        assert reopened is not None and reopened is not standby

        async def reopened_listens() -> bool:
            return await state_of(reopened) == "listening"
        await until(reopened_listens, "the reopened session listening", 5)
