"""Run the broadcast bot for one stage room until cancelled.

pipecat's LiveAvatar client never reports a dead avatar as an error (DESIGN.md),
so the bot watches from outside: :class:`AvatarKeeper` notices a dead avatar
session within a second or two (socket closed, avatar gone, no frames), shows the
slate and opens a new session in this process. Only when no live avatar came back
for ``avatar_stall_restart_seconds`` does the bot exit with RESTART_EXIT_CODE, for
the launcher to start a fresh one. When the stage room's LiveKit connection is lost
for good (its node died, a restarted livekit-server), :class:`StageKeeper` joins it
again in place while the avatar and the audience shards go on (direct mode, where the
avatar itself is in the stage room, still restarts).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp
from loguru import logger
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.workers.runner import WorkerRunner

from broadcaster.answers.answerer import warm_answerer
from broadcaster.bot.avatar_keeper import AvatarKeeper
from broadcaster.bot.latency import LatencyObserver
from broadcaster.bot.pipeline import build_bot
from broadcaster.bot.stage_keeper import StageKeeper
from broadcaster.config import Settings
from broadcaster.metrics import BotMetrics, bot_metrics_server
from broadcaster.sdk_internals import transport_room

#: the bot's participant attribute the pages read: "live" or "restarting" (stage_status.js)
AVATAR_ATTRIBUTE = "avatar"

#: exit code that asks the launcher for a restart (EX_TEMPFAIL)
RESTART_EXIT_CODE = 75


class RestartRequested(Exception):
    """The avatar or the LiveKit connection is gone; a fresh bot should take over."""


def _warn_if_failed(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.warning(f"could not tell the pages the avatar's state: {task.exception()}")


def session_lifetime(settings: Settings) -> float:
    """Return how long an avatar session lasts by design.

    HeyGen's sandbox minute (real, or emulated by the local service), else the
    session's ``max_session_duration``.
    """
    sandbox = settings.avatar_sandbox and (settings.use_heygen or settings.avatar_emulate_limits)
    if sandbox:
        return min(settings.avatar_sandbox_session_seconds, settings.avatar_max_session_seconds)
    return float(settings.avatar_max_session_seconds)


async def serve(settings: Settings, room: str) -> None:
    """Run the bot in ``room``; raise RestartRequested when it cannot recover in place."""
    metrics = BotMetrics(room)
    async with aiohttp.ClientSession() as http, bot_metrics_server(
        metrics, settings.bot_metrics_host, settings.bot_metrics_port, settings.state_dir
    ):
        await warm_answerer(settings)  # the embedding model loads off the event loop
        parts = build_bot(settings, room, http)
        if parts.republisher is not None:
            metrics.watch_republisher(parts.republisher)
        if parts.responder is not None:
            metrics.watch_responder(parts.responder)
        worker = PipelineWorker(
            parts.pipeline,
            params=PipelineParams(enable_metrics=True),
            cancel_on_idle_timeout=False,
            observers=[LatencyObserver(
                metrics, republisher=parts.republisher, stop_secs=settings.vad_stop_secs,
                last_stage="publish" if parts.republisher is not None else "tts")],
        )
        trouble: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def fail(reason: str) -> None:
            if not trouble.done():
                trouble.set_result(reason)

        presence = metrics.watch_avatar_presence() if parts.republisher is None else None
        stage_room: list[Any] = []  # the stage room, once connected (direct mode watches it)

        def avatar_present() -> bool:
            return bool(stage_room) and settings.bot_identity in {
                p.identity for p in stage_room[0].remote_participants.values()}

        said: list[str] = []  # the avatar's state as last told to the pages

        def avatar_state(state: str) -> None:
            """Tell the pages (the bot's ``avatar`` attribute) and the metrics."""
            said[:] = [state]
            if presence is not None:
                presence.state = "live" if state == "live" else "stalled"
            elif stage_room and stage_room[0].isconnected():
                task = asyncio.ensure_future(stage_room[0].local_participant.set_attributes(
                    {AVATAR_ATTRIBUTE: state}))
                task.add_done_callback(_warn_if_failed)

        republisher = parts.republisher
        keeper = AvatarKeeper(
            parts.avatar,
            frames=(lambda: republisher.stats.frames_in) if republisher is not None else None,
            present=avatar_present if republisher is None else None,
            show_slate=republisher.show_slate if republisher is not None else None,
            media=republisher is not None,
            frame_timeout=settings.avatar_frame_timeout_seconds,
            give_up_after=settings.avatar_stall_restart_seconds,
            on_state=avatar_state, on_give_up=fail,
            session_lifetime=session_lifetime(settings),
            rollover_lead=settings.avatar_rollover_lead_seconds,
            handover=settings.avatar_speech_handover,
            speaking=(lambda: republisher.stats.speaking) if republisher is not None else None,
            switch_gap=(lambda: (republisher.stats.source_switches,
                                 republisher.stats.last_switch_gap_s))
            if republisher is not None else None,
        )
        metrics.watch_keeper(keeper)

        @parts.transport.event_handler("on_connected")
        async def _connected(transport: Any) -> None:
            room = transport_room(transport)
            stage_room[:] = [room]
            metrics.watch_room(room)  # counts LiveKit reconnects
            if presence is None:
                return
            # Direct mode: the listener shows no media (pipecat's transport always
            # publishes a silent "pipecat-audio" microphone).
            for sid, pub in list(room.local_participant.track_publications.items()):
                logger.info(f"direct mode: unpublishing the listener's {pub.name!r}")
                await room.local_participant.unpublish_track(sid)

        stage = None if republisher is None else StageKeeper(
            settings, room, parts.transport, move_media=republisher.move_to,
            on_back=lambda _: avatar_state(said[0]) if said else None, on_give_up=fail)

        @parts.transport.event_handler("on_disconnected")
        async def _disconnected(_: object, *args: object) -> None:
            if stage is None:
                fail("lost the LiveKit connection")
            else:
                stage.stage_lost("LiveKit disconnected the bot")

        if parts.shards is not None:
            parts.shards.start()
        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        run = asyncio.ensure_future(runner.run())
        keeping = asyncio.ensure_future(keeper.run())
        staying = asyncio.ensure_future(stage.run() if stage is not None else asyncio.sleep(0))
        staying.add_done_callback(lambda t: None if t.cancelled() or t.exception() is None
                                  else fail(f"the stage keeper failed: {t.exception()!r}"))
        try:
            waiting: set[asyncio.Future[Any]] = {run, trouble}
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if trouble in done:
                raise RestartRequested(trouble.result())
            run.result()
        finally:
            for task in (keeping, staying):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if parts.shards is not None:
                await parts.shards.stop()
            if not run.done():
                if parts.avatar_captions is not None:  # while the room is still there
                    await parts.avatar_captions.close_shown()
                await worker.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(run, 10)
