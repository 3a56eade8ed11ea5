"""The rehearsal room: before going live, the presenter talks 1:1 with the avatar.

pipecat's second LiveAvatar integration, :class:`HeyGenTransport`: the avatar service
owns the room (it creates it for the session, as HeyGen does), the bot joins it as the
agent and hears the one user who joins; the avatar answers in that room. No stage, no
audience, no republisher: nothing of the rehearsal reaches viewers. With no key it runs
against the local avatar service, with a HeyGen key against HeyGen.

The same speech chain as the broadcast bot (VAD → STT → responder → TTS), so the
presenter rehearses with exactly the notes and voice the audience will get. Once the
avatar's room is up, the user's LiveKit URL and token are written to
``<state_dir>/rehearsals/<room>.json`` (0600) for the web app to hand to the presenter's
page; the rehearsal ends when the presenter leaves (or the web app stops it).

Run: ``broadcaster serve rehearsal --room ROOM`` (the web app does it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path
from typing import Any

import aiohttp
from loguru import logger
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.services.heygen.client import ServiceType
from pipecat.transports.heygen.transport import HeyGenParams, HeyGenTransport
from pipecat.workers.runner import WorkerRunner

from broadcaster.answers.answerer import warm_answerer
from broadcaster.bot.pipeline import avatar_session_request, point_liveavatar_at
from broadcaster.bot.responder import make_responder
from broadcaster.config import Settings
from broadcaster.rehearsal_room import rehearsal_file
from broadcaster.sdk_internals import heygen_transport_session, shield_transport_join
from broadcaster.speech import SpeakerVADProcessor, make_stt, make_tts, make_vad

#: the presenter has this long to join the rehearsal room before it closes
JOIN_WAIT_SECS = 120.0


def build_rehearsal(settings: Settings, http: aiohttp.ClientSession,
                    ) -> tuple[Pipeline, HeyGenTransport]:
    """Build the rehearsal: the avatar's room in, the broadcast's speech chain, the avatar out."""
    point_liveavatar_at(settings)
    transport = HeyGenTransport(
        session=http,
        api_key=settings.liveavatar_key,
        params=HeyGenParams(audio_in_enabled=True, audio_out_enabled=True),
        # the avatar service owns the room: never the stage's livekit_config
        session_request=avatar_session_request(settings.replace(avatar_mode="relay")),
        service_type=ServiceType.LIVE_AVATAR,
    )
    shield_transport_join(transport)  # a rehearsal stopped mid-join must not end the bot
    chain = make_responder(settings)
    known = chain.responder.known_answers() if chain.responder else ()
    pipeline = Pipeline([
        transport.input(),
        SpeakerVADProcessor(vad_analyzer=make_vad(settings)),
        make_stt(settings),
        *chain.processors,
        make_tts(settings, known),
        transport.output(),
        *chain.after_output,
    ])
    return pipeline, transport


def _write_private(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh)


async def serve(settings: Settings, room: str) -> None:
    """Run the rehearsal for webinar ``room`` until the presenter leaves or it is stopped."""
    path = rehearsal_file(settings, room)
    path.unlink(missing_ok=True)
    async with aiohttp.ClientSession() as http:
        await warm_answerer(settings)  # the embedding model loads off the event loop
        pipeline, transport = build_rehearsal(settings, http)
        worker = PipelineWorker(pipeline, params=PipelineParams(),
                                cancel_on_idle_timeout=False)
        over: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def end(reason: str) -> None:
            if not over.done():
                over.set_result(reason)

        @transport.event_handler("on_connected")
        async def _ready(_: Any) -> None:
            url, token = heygen_transport_session(transport)
            if url == settings.effective_livekit_url:  # our own LiveKit: as browsers see it
                url = settings.browser_livekit_url
            _write_private(path, {"url": url, "token": token})
            logger.info(f"rehearsal for {room}: the avatar's room is ready")
            asyncio.get_running_loop().call_later(JOIN_WAIT_SECS, nobody_came)

        joined: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def nobody_came() -> None:
            if not joined.done():
                end("nobody joined")

        @transport.event_handler("on_client_connected")
        async def _joined(_: Any, participant: Any) -> None:
            logger.info(f"rehearsal for {room}: the presenter joined")
            if not joined.done():
                joined.set_result(None)

        @transport.event_handler("on_client_disconnected")
        async def _left(_: Any, participant: Any) -> None:
            end("the presenter left")

        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        run = asyncio.ensure_future(runner.run())
        try:
            waiting: set[asyncio.Future[Any]] = {run, over}
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if over in done:
                logger.info(f"rehearsal for {room} over: {over.result()}")
        finally:
            path.unlink(missing_ok=True)
            if not run.done():
                await worker.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(run, 10)
