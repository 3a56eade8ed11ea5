"""Run the broadcast bot for one stage room until cancelled.

pipecat's LiveAvatar client never reports a dead avatar as an error (DESIGN.md),
so the bot watches from outside: the republisher shows a slate as soon as the
avatar's frames stop, and when they stay away for ``avatar_stall_restart_seconds``
the bot exits with RESTART_EXIT_CODE. The bot launcher then starts a fresh bot,
which opens a new avatar session. The same happens when the LiveKit connection
is lost for good (a restarted livekit-server): the new bot reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp
from loguru import logger
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.workers.runner import WorkerRunner

from broadcaster.bot.latency import LatencyObserver
from broadcaster.bot.pipeline import build_bot
from broadcaster.config import Settings
from broadcaster.metrics import BotMetrics, bot_metrics_server
from broadcaster.sdk_internals import transport_room

#: exit code that asks the launcher for a restart (EX_TEMPFAIL)
RESTART_EXIT_CODE = 75


class RestartRequested(Exception):
    """The avatar or the LiveKit connection is gone; a fresh bot should take over."""


async def serve(settings: Settings, room: str) -> None:
    """Run the bot in ``room``; raise RestartRequested when it cannot recover in place."""
    metrics = BotMetrics(room)
    async with aiohttp.ClientSession() as http, bot_metrics_server(
        metrics, settings.bot_metrics_host, settings.bot_metrics_port, settings.state_dir
    ):
        parts = build_bot(settings, room, http)
        if parts.republisher is not None:
            metrics.watch_republisher(parts.republisher)
        worker = PipelineWorker(
            parts.pipeline,
            params=PipelineParams(enable_metrics=True),
            cancel_on_idle_timeout=False,
            observers=[LatencyObserver(
                metrics, republisher=parts.republisher, stop_secs=settings.vad_stop_secs,
                last_stage="publish" if parts.republisher is not None else "tts")],
        )
        trouble: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        stall_timer: asyncio.TimerHandle | None = None

        def fail(reason: str) -> None:
            if not trouble.done():
                trouble.set_result(reason)

        def avatar_gone(reason: str, grace: float) -> None:
            nonlocal stall_timer
            if stall_timer is None:
                stall_timer = asyncio.get_running_loop().call_later(grace, fail, reason)

        def avatar_back() -> None:
            nonlocal stall_timer
            if stall_timer is not None:
                stall_timer.cancel()
                stall_timer = None

        grace = settings.avatar_stall_restart_seconds
        presence = metrics.watch_avatar_presence() if parts.republisher is None else None
        if parts.republisher is not None:
            @parts.republisher.event_handler("on_video_stalled")
            async def _stalled(_: object, *args: object) -> None:
                logger.warning("avatar video stalled; showing the slate")
                avatar_gone(f"no avatar frames for {grace:.0f} s", grace)

            @parts.republisher.event_handler("on_video_resumed")
            async def _resumed(_: object, *args: object) -> None:
                logger.info("avatar video resumed")
                avatar_back()
        else:  # direct mode: the avatar is a participant of the stage room; watch it
            avatar_gone(f"the avatar did not join the stage room in {grace + 30:.0f} s",
                        grace + 30)  # + the avatar session's start

            @parts.transport.event_handler("on_participant_connected")
            async def _joined(_: object, identity: str) -> None:
                if identity == settings.bot_identity:
                    logger.info("the avatar joined the stage room")
                    presence.state = "live"  # type: ignore[union-attr]
                    avatar_back()

            @parts.transport.event_handler("on_participant_disconnected")
            async def _left(_: object, identity: str) -> None:
                if identity == settings.bot_identity:
                    logger.warning("the avatar left the stage room")
                    presence.state = "stalled"  # type: ignore[union-attr]
                    avatar_gone(f"the avatar left the stage room for {grace:.0f} s", grace)

        @parts.transport.event_handler("on_connected")
        async def _connected(transport: Any) -> None:
            room = transport_room(transport)
            metrics.watch_room(room)  # counts LiveKit reconnects
            if presence is None:
                return
            # Direct mode: the listener shows no media (pipecat's transport always
            # publishes a silent "pipecat-audio" microphone).
            for sid, pub in list(room.local_participant.track_publications.items()):
                logger.info(f"direct mode: unpublishing the listener's {pub.name!r}")
                await room.local_participant.unpublish_track(sid)
            if settings.bot_identity in {p.identity for p in room.remote_participants.values()}:
                presence.state = "live"  # the avatar was there first
                avatar_back()

        @parts.transport.event_handler("on_disconnected")
        async def _disconnected(_: object, *args: object) -> None:
            fail("lost the LiveKit connection")

        if parts.shards is not None:
            parts.shards.start()
        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        run = asyncio.ensure_future(runner.run())
        try:
            waiting: set[asyncio.Future[Any]] = {run, trouble}
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if trouble in done:
                raise RestartRequested(trouble.result())
            run.result()
        finally:
            if stall_timer is not None:
                stall_timer.cancel()
            if parts.shards is not None:
                await parts.shards.stop()
            if not run.done():
                await worker.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(run, 10)
