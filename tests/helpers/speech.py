"""Shared helpers for the speech / gate / responder / captions tests (no tests here).

Real frames through real pipecat pipelines; speech comes from Debian's flite,
which Whisper transcribes well.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

import numpy as np
import pytest
from pipecat.frames.frames import EndFrame, Frame, StartFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

from probes.speech import flite, have_flite

RATE = 16_000
FRAME_MS = 20

needs_flite = pytest.mark.skipif(not have_flite(), reason="needs Debian's flite")


def flite_pcm(text: str, rate: int = RATE) -> bytes:
    """``text`` spoken by flite (its default voice), as 16-bit mono PCM at ``rate``."""
    return flite(text, rate).tobytes()


def silence(seconds: float, rate: int = RATE) -> bytes:
    return bytes(int(seconds * rate) * 2)


def tone(seconds: float, freq: float, rate: int = RATE, amplitude: float = 0.3) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * freq * t) * amplitude * 32767).astype(np.int16).tobytes()


def chunks(pcm: bytes, ms: int = FRAME_MS, rate: int = RATE) -> list[bytes]:
    step = rate * ms // 1000 * 2
    return [pcm[i : i + step] for i in range(0, len(pcm), step) if len(pcm[i : i + step]) == step]


class Collector(FrameProcessor):
    """Pipeline sink that records every downstream frame with its arrival time."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.frames: list[tuple[float, Frame]] = []
        self.arrived = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM and not isinstance(frame, StartFrame):
            self.frames.append((time.monotonic(), frame))
            self.arrived.set()
        await self.push_frame(frame, direction)

    def of(self, *types: type) -> list[Frame]:
        return [f for _, f in self.frames if isinstance(f, types)]

    def timed(self, *types: type) -> list[tuple[float, Frame]]:
        return [(t, f) for t, f in self.frames if isinstance(f, types)]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("condition not met in time")
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), min(remaining, 0.2))
            except TimeoutError:
                pass


async def run_pipeline(
    processors: Sequence[FrameProcessor],
    script: Callable[[PipelineWorker, Collector], Awaitable[None]],
    *,
    timeout: float = 60,
    params: PipelineParams | None = None,
) -> Collector:
    """Run ``processors`` + a Collector; ``script`` feeds frames, then the pipeline ends."""
    sink = Collector()
    worker = PipelineWorker(
        Pipeline([*processors, sink]),
        params=params or PipelineParams(),
        cancel_on_idle_timeout=False,
    )
    started = asyncio.Event()

    @worker.event_handler("on_pipeline_started")
    async def _started(_worker, _frame) -> None:
        started.set()

    async def drive() -> None:
        await asyncio.wait_for(started.wait(), 30)
        try:
            await script(worker, sink)
        finally:
            await worker.queue_frame(EndFrame())

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    results = await asyncio.wait_for(
        asyncio.gather(runner.run(), drive(), return_exceptions=True), timeout
    )
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return sink
