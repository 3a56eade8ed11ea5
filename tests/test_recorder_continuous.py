"""One continuous recording per webinar across bot runs, and a crash costs seconds.

The recorder as the bot builds it (``Recorder.for_session``: fragmented MP4, continuous)
driven by synthetic frames in a minimal pipecat pipeline (no servers): a run, a pause
(the bot away), another run; and a run killed with SIGKILL mid-file, then the next.
The file is opened with PyAV as a player would.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import av
import numpy as np
import pytest
from pipecat.frames.frames import EndFrame, TTSAudioRawFrame

from broadcaster.bot.recorder import AUDIO_RATE, Recorder, recording_dir
from tests.helpers.pipeline import Pacer, start_pipeline
from tests.test_recorder import Frames, tone

pytestmark = pytest.mark.timeout(90)
FPS = 25
ROOM = "webinar-1"


def session_settings(tmp: Path) -> object:
    class S:  # the two settings Recorder.for_session reads, and where captions are
        video_fps = FPS
        recordings_dir = str(tmp / "recordings")
        state_dir = str(tmp / "state")
    return S()


async def one_run(settings: object, seconds: float, first: int = 0) -> Recorder:
    rec = Recorder.for_session(settings, ROOM)
    frames = Frames(320, 180)
    worker, run = await start_pipeline(rec, settle=0.2)
    pace = Pacer()
    for i in range(round(seconds * FPS)):
        await pace.until(i / FPS)
        await worker.queue_frame(frames.make(first + i))
        await worker.queue_frame(TTSAudioRawFrame(audio=tone(1920, AUDIO_RATE, 440.0),
                                                  sample_rate=AUDIO_RATE, num_channels=1,
                                                  context_id="c"))
    await worker.queue_frame(EndFrame())
    await asyncio.wait_for(run, 30)
    return rec


def video_times(path: Path) -> list[float]:
    with av.open(str(path)) as c:
        return [float(f.pts * f.time_base) for f in c.decode(c.streams.video[0])]


def recordings(tmp: Path) -> list[str]:
    return sorted(os.listdir(recording_dir(tmp / "recordings", ROOM)))


async def test_a_restarted_bot_goes_on_in_the_same_file(tmp_path: Path) -> None:
    settings = session_settings(tmp_path)
    first = await one_run(settings, 1.6)
    assert first.path is not None and first.stats.error is None
    await asyncio.sleep(1.5)  # the bot is away
    second = await one_run(settings, 1.6, first=100)
    assert second.path == first.path, "a second file for the same webinar"
    assert [n for n in recordings(tmp_path) if n.endswith((".mp4", ".part"))] == [
        first.path.name]
    times = video_times(first.path)
    gaps = np.diff(times)
    # both runs' pictures, in order, the bot's absence a gap of about its length
    assert len(times) >= 2 * 1.6 * FPS - 6
    assert np.all(gaps > 0) and 1.2 < gaps.max() < 3.5
    with av.open(str(first.path)) as c:
        audio = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(c.streams.audio[0])])
    assert np.abs(audio).max() > 0.1  # the tone of both runs (decodes across the join)
    assert first.path.stat().st_mode & 0o777 == 0o600


async def test_a_killed_bot_loses_seconds_not_the_file(tmp_path: Path) -> None:
    settings = session_settings(tmp_path)
    code = textwrap.dedent(f"""
        import asyncio, sys, time
        sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
        from pathlib import Path
        from tests.test_recorder_continuous import one_run, session_settings
        asyncio.run(one_run(session_settings(Path({str(tmp_path)!r})), 60))
    """)
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        folder = recording_dir(tmp_path / "recordings", ROOM)
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:  # killed 5 s into its recording
            parts = list(folder.glob("*.part")) if folder.exists() else []
            if parts and parts[0].stat().st_size > 0:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(5.0)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    (part,) = folder.glob("*.mp4.part")
    killed = video_times(part)
    assert len(killed) >= 2 * FPS, "the killed run's fragments are not playable"
    await one_run(settings, 1.2, first=200)
    (done,) = folder.glob("*.mp4")
    assert done.name == part.name.removesuffix(".part")
    times = video_times(done)
    assert times[: len(killed)] == killed  # what survived the crash is all still there
    assert len(times) >= len(killed) + 1.2 * FPS - 4
