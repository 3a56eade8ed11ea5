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
        metrics.watch_republisher(parts.republisher)
        worker = PipelineWorker(
            parts.pipeline,
            params=PipelineParams(enable_metrics=True),
            cancel_on_idle_timeout=False,
            observers=[LatencyObserver(metrics, republisher=parts.republisher,
                                       stop_secs=settings.vad_stop_secs)],
        )
        trouble: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        stall_timer: asyncio.TimerHandle | None = None

        def fail(reason: str) -> None:
            if not trouble.done():
                trouble.set_result(reason)

        @parts.republisher.event_handler("on_video_stalled")
        async def _stalled(_: object, *args: object) -> None:
            nonlocal stall_timer
            logger.warning("avatar video stalled; showing the slate")
            if stall_timer is None:
                stall_timer = asyncio.get_running_loop().call_later(
                    settings.avatar_stall_restart_seconds, fail,
                    f"no avatar frames for {settings.avatar_stall_restart_seconds:.0f} s",
                )

        @parts.republisher.event_handler("on_video_resumed")
        async def _resumed(_: object, *args: object) -> None:
            nonlocal stall_timer
            logger.info("avatar video resumed")
            if stall_timer is not None:
                stall_timer.cancel()
                stall_timer = None

        @parts.transport.event_handler("on_connected")
        async def _connected(transport: Any) -> None:
            metrics.watch_room(transport._client.room)  # counts LiveKit reconnects

        @parts.transport.event_handler("on_disconnected")
        async def _disconnected(_: object, *args: object) -> None:
            fail("lost the LiveKit connection")

        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        run = asyncio.ensure_future(runner.run())
        try:
            done, _ = await asyncio.wait({run, trouble}, return_when=asyncio.FIRST_COMPLETED)
            if trouble in done:
                raise RestartRequested(trouble.result())
            run.result()
        finally:
            if stall_timer is not None:
                stall_timer.cancel()
            if not run.done():
                await worker.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(run, 10)
