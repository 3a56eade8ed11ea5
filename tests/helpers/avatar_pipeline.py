"""The bot's avatar client in a pipecat pipeline of its own, for tests of session changes.

Real parts: pipecat's unmodified LiveAvatar client (the bot's ``FastHeyGenVideoService``)
against the session's local avatar service; ``sink`` sees what the bot would publish.
The service's own listing (``GET /v1/sessions``) tells each session's look.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.services.heygen.api_liveavatar import (
    LiveAvatarApi,
    LiveAvatarNewSessionRequest,
    VideoEncoding,
    VideoSettings,
)
from pipecat.services.heygen.client import HeyGenClient, ServiceType
from pipecat.workers.runner import WorkerRunner

from broadcaster.bot.avatar_service import FastHeyGenVideoService
from broadcaster.config import Settings
from broadcaster.sdk_internals import heygen_session_id


@asynccontextmanager
async def avatar_pipeline(
    http: aiohttp.ClientSession, avatar_service: str, s: Settings, sink: FrameProcessor
) -> AsyncIterator[tuple[FastHeyGenVideoService, PipelineWorker]]:
    """Run ``[avatar, sink]`` until the block ends; the worker is cancelled on the way out."""
    LiveAvatarApi.BASE_URL = avatar_service
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
    try:
        yield avatar, worker
    finally:
        await worker.cancel()
        await asyncio.gather(run, return_exceptions=True)


async def states(http: aiohttp.ClientSession, base: str, s: Settings) -> dict[str, str]:
    """Agent state (idle / listening / speaking) of each started session, by session id."""
    async with http.get(f"{base}/sessions", headers={"X-API-KEY": s.avatar_api_key}) as resp:
        sessions = (await resp.json())["data"]["sessions"]
    return {x["session_id"]: x["agent_state"] for x in sessions if x["state"] == "started"}


def session_id(client: HeyGenClient | None) -> str | None:
    """Return the LiveAvatar session id of one of pipecat's clients (None for none)."""
    return None if client is None else heygen_session_id(client)
