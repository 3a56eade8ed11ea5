"""Running a pipecat pipeline in a test, and feeding it in real time."""

from __future__ import annotations

import asyncio
import time

from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.workers.runner import WorkerRunner


class Pacer:
    """Real-time pacing for a feeder: sleep until t0 + t (no drift over a long feed)."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    async def until(self, t: float) -> None:
        delay = self.t0 + t - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


async def start_pipeline(*processors: FrameProcessor,
                         settle: float = 0.0) -> tuple[PipelineWorker, asyncio.Task]:
    """``processors`` running in a pipeline until cancelled or ended: the worker to queue
    frames into, and the runner's task. ``settle``: wait that long for the StartFrame."""
    worker = PipelineWorker(Pipeline(list(processors)), idle_timeout_secs=None,
                            enable_rtvi=False)
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    task = asyncio.create_task(runner.run())
    if settle:
        await asyncio.sleep(settle)
    return worker, task
