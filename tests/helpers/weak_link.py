"""Two viewers of one room, one of them behind a rate-limited link (tests of layers).

Shared by the stage's and the shards' weak-link tests: the settings of a livekit-server
listening on the veth pair's host address, and a normal and a weak
``bench.frame_recorder`` recording side by side, with what went through the link.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import netns
from broadcaster.config import Settings
from broadcaster.netutil import free_port

ROOT = Path(__file__).resolve().parents[2]


def on_link(settings: Settings, link: netns.Link, state: Path, **changes: Any) -> Settings:
    """Settings of a livekit-server of its own on ``link``'s host address, layers on."""
    port = free_port()
    return settings.replace(video_svc="L3T1", livekit_port=port, livekit_rtc_tcp_port=free_port(),
                            livekit_rtc_udp_port=free_port(),
                            livekit_url=f"ws://{link.host_ip}:{port}", state_dir=str(state),
                            floor_guard=False, **changes)


async def run_child(argv: list[str], log: Path, timeout: float) -> None:
    """Run ``argv`` from the project root with its output in ``log``; killed at ``timeout``."""
    with open(log, "wb") as fh:
        proc = await asyncio.create_subprocess_exec(*argv, cwd=str(ROOT), stdout=fh, stderr=fh)
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def record_pair(link: netns.Link, url: str, token: Callable[[str], str], *,
                      seconds: float, settle: float, folder: Path, extra: tuple[str, ...] = ()
                      ) -> tuple[dict[str, Any], dict[str, Any], float]:
    """Record a "normal" viewer and a "weak" one (inside ``link``'s namespace) at once.

    Returns both recorders' reports and the kbit/s that went through the link meanwhile.
    """
    def recorder(who: str, prefix: list[str]) -> list[str]:
        return [*prefix, sys.executable, "-m", "bench.frame_recorder", "--url", url,
                "--token", token(who), *extra, "--seconds", str(seconds),
                "--settle", str(settle), "--out", str(folder / f"{who}.json")]

    tc0 = netns.tc_stats(link)
    await asyncio.gather(
        run_child(recorder("normal", []), folder / "normal.log", seconds + 40),
        run_child(recorder("weak", link.exec()), folder / "weak.log", seconds + 40))
    tc1 = netns.tc_stats(link)
    normal = json.loads((folder / "normal.json").read_text())
    weak = json.loads((folder / "weak.json").read_text())
    return normal, weak, (tc1["bytes"] - tc0["bytes"]) * 8 / 1000 / seconds
