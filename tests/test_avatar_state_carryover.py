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
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.heygen.api_liveavatar import (
    LiveAvatarApi,
    LiveAvatarNewSessionRequest,
    VideoEncoding,
    VideoSettings,
)
from pipecat.services.heygen.client import ServiceType
from pipecat.workers.runner import WorkerRunner

from broadcaster.bot.avatar_service import FastHeyGenVideoService
from broadcaster.config import Settings


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


async def states(http: aiohttp.ClientSession, base: str, s: Settings) -> dict[str, str]:
    """Agent state of each started session, by session id."""
    async with http.get(f"{base}/sessions", headers={"X-API-KEY": s.avatar_api_key}) as resp:
        sessions = (await resp.json())["data"]["sessions"]
    return {x["session_id"]: x["agent_state"] for x in sessions if x["state"] == "started"}


async def until(check: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check() if asyncio.iscoroutinefunction(check) else not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


def session_id(client: object) -> str:
    return str(client._heyGen_session.session_id)  # type: ignore[attr-defined]


async def test_the_next_session_takes_the_presenters_turn_over(
        avatar_service: str, avatar_settings: Settings) -> None:
    s = avatar_settings
    LiveAvatarApi.BASE_URL = avatar_service
    sink = Frames()
    async with aiohttp.ClientSession() as http:
        avatar = FastHeyGenVideoService(
            api_key=s.avatar_api_key, session=http, service_type=ServiceType.LIVE_AVATAR,
            session_request=LiveAvatarNewSessionRequest(
                avatar_id=s.effective_avatar_id,
                video_settings=VideoSettings(encoding=VideoEncoding.VP8)))
        worker = PipelineWorker(Pipeline([avatar, sink]), params=PipelineParams(),
                                idle_timeout_secs=None, enable_rtvi=False)
        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        run = asyncio.create_task(runner.run())

        async def state_of(client: object) -> str | None:
            return (await states(http, avatar_service, s)).get(session_id(client))

        try:
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
        finally:
            await worker.cancel()
            await asyncio.gather(run, return_exceptions=True)
