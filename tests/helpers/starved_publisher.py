"""A republisher that publishes costly frames; tests/test_cpu_pressure.py starves its CPU.

``python -m tests.helpers.starved_publisher URL TOKEN SECONDS``: the bot's republisher
(``LiveKitRepublisher`` with ``RepublishEncoding.from_settings``, as the bot builds it,
settings from the environment) fed 1280x720 noise at 25 fps: noise is the most
expensive picture to encode, so a small CPU quota makes the encoder fall behind.
"""

from __future__ import annotations

import asyncio
import sys
import time

import numpy as np
from pipecat.frames.frames import EndFrame, OutputImageRawFrame

from broadcaster.bot.republisher import LiveKitRepublisher, RepublishEncoding
from broadcaster.config import Settings
from broadcaster.frames import I420
from tests.helpers.pipeline import Pacer, start_pipeline


async def main(url: str, token: str, seconds: float) -> None:
    settings = Settings.load(generate_secrets=False)
    encoding = RepublishEncoding.from_settings(settings)
    w, h, fps = encoding.width, encoding.height, encoding.fps
    rng = np.random.default_rng(7)
    pool = [rng.integers(16, 235, w * h * 3 // 2, dtype=np.uint8).tobytes() for _ in range(8)]
    rep = LiveKitRepublisher(url=url, token=token, encoding=encoding, announce_ready=False)
    worker, run = await start_pipeline(rep, settle=1.0)
    print("publishing", flush=True)
    pace = Pacer()
    for i in range(int(seconds * fps)):
        await pace.until(i / fps)
        await worker.queue_frame(OutputImageRawFrame(image=pool[i % len(pool)], size=(w, h),
                                                     format=I420))
    # the moment the track starts to end (CLOCK_MONOTONIC is system-wide): libwebrtc sends
    # a tiny black frame as a track goes away, which is not CPU pressure's doing
    print(f"ending at {time.monotonic()}", flush=True)
    await worker.queue_frame(EndFrame())
    await asyncio.wait_for(run, 20)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
