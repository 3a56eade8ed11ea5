"""What viewers get when the bot's CPU runs short: the full picture, at a lower frame rate.

A talking head with captions is read, not watched for motion: a sharp 720p picture
at fewer frames per second serves viewers better than a smooth blurry one. So the
republisher publishes with ``DegradationPreference.MAINTAIN_RESOLUTION``, and when
libwebrtc's CPU-overuse detector adapts, it drops frames instead of scaling the picture
(its default scaled a busy machine's viewers down to 960x540, then 320x180).

The pressure is real: the bot's republisher runs in a child process whose CPU is
capped by a cgroup (cpu.cfs_quota_us, cgroup v1, root) while it encodes 720p noise;
a real viewer checks the size of every frame it decodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from livekit import rtc

from broadcaster.bot.republisher import RepublishEncoding
from broadcaster.config import PROJECT_ROOT, Settings
from broadcaster.roles import Role, mint_token
from probes.viewer import RoomViewer

CPU_CGROUPS = Path("/sys/fs/cgroup/cpu")
QUOTA_PERCENT = 40  # of one core: far less than 720p noise needs at 25 fps
SECONDS = 14.0  # the default preference had scaled the picture down within 10 s

pytestmark = pytest.mark.timeout(120)


def test_the_republisher_keeps_resolution_over_frame_rate() -> None:
    options = RepublishEncoding().video_options()
    assert options.degradation_preference == rtc.DegradationPreference.MAINTAIN_RESOLUTION


@contextlib.contextmanager
def cpu_quota(pid: int, percent: int) -> Iterator[None]:
    """Cap process ``pid`` (and the threads it starts) at ``percent`` of one core."""
    group = CPU_CGROUPS / f"broadcaster-test-{os.getpid()}-{pid}"
    group.mkdir()
    try:
        period = int((group / "cpu.cfs_period_us").read_text())
        (group / "cpu.cfs_quota_us").write_text(str(period * percent // 100))
        (group / "cgroup.procs").write_text(str(pid))
        yield
    finally:
        with contextlib.suppress(OSError):  # the process must have ended first
            (CPU_CGROUPS / "cgroup.procs").write_text(str(pid))
        with contextlib.suppress(OSError):
            group.rmdir()


class SizeViewer(RoomViewer):
    def __init__(self) -> None:
        super().__init__(want_audio=False)
        self.frames: list[tuple[float, int, int]] = []

    def on_video(self, event: rtc.VideoFrameEvent) -> None:
        self.frames.append((time.monotonic(), event.frame.width, event.frame.height))


@pytest.mark.skipif(not os.access(CPU_CGROUPS / "cgroup.procs", os.W_OK),
                    reason="needs a writable cgroup v1 cpu controller (root)")
async def test_viewers_keep_the_full_picture_when_the_bot_is_short_of_cpu(
    livekit: Settings, tmp_path: Path
) -> None:
    s = livekit
    room = "cpu-pressure"
    viewer = SizeViewer()
    await viewer.join(s.effective_livekit_url, mint_token(s, Role.VIEWER, room, "viewer"))
    log = open(tmp_path / "publisher.log", "w")  # noqa: SIM115 - closed below
    publisher = subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.starved_publisher", s.effective_livekit_url,
         mint_token(s, Role.BOT, room, s.bot_identity), str(SECONDS)],
        cwd=PROJECT_ROOT, env={**os.environ, **s.child_env()}, stdout=log,
        stderr=subprocess.STDOUT)
    try:
        with cpu_quota(publisher.pid, QUOTA_PERCENT):
            await asyncio.to_thread(publisher.wait, SECONDS + 60)
    finally:
        if publisher.poll() is None:
            publisher.kill()
            publisher.wait()
        log.close()
        await viewer.leave()
    out = (tmp_path / "publisher.log").read_text()
    assert publisher.returncode == 0, out[-2000:]
    ending = float(out.split("ending at ")[1].split()[0])
    frames = [f for f in viewer.frames if f[0] < ending]  # not the track's farewell frame
    sizes = {(w, h) for _, w, h in frames}
    seconds = frames[-1][0] - frames[0][0] if frames else 0.0
    rate = len(frames) / seconds if seconds else 0.0
    print(f"\nCPU PRESSURE ({QUOTA_PERCENT}% of a core): {len(frames)} frames in "
          f"{seconds:.1f} s ({rate:.1f} fps), sizes {sorted(sizes)}")
    assert len(frames) >= 5, "the track must stay alive under pressure"
    assert sizes == {(s.video_width, s.video_height)}, (
        f"viewers got {sorted(sizes)}: the picture was scaled down instead of the frame "
        "rate lowered")
