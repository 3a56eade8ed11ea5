"""Viewers on weak links: with the republisher's layered encoding (``video_svc="L3T1"``:
VP9, three spatial layers), a viewer behind a 500 kbit/s link keeps >= 15 fps on a lower
layer while a normal viewer stays at 1280x720.

All real: a livekit-server of its own that listens on a veth pair's host address, a
publisher using ``RepublishEncoding.from_settings`` (bench/plain_publisher.py: the
avatar renderer's pictures, numbered frames), and two libwebrtc viewers
(bench/frame_recorder.py), one of them inside a network namespace whose link carries
``tc tbf rate 500kbit`` (bench/netns.py; deleted afterwards, even on failure). The
namespace needs root: without it the test is skipped and says why. The contrast (one
VP8 layer: the weak viewer gets 0 fps; VP8 simulcast: ~5 fps) is measured by
``bench/weak_link.py``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from bench import netns
from bench.weak_link import server_extra
from broadcaster import livekit_server
from broadcaster.bot.republisher import RepublishEncoding
from broadcaster.config import Settings
from broadcaster.roles import Role, mint_token
from tests.helpers.weak_link import ROOT, on_link, record_pair

SETTLE_S, HOLD_S = 12.0, 8.0  # the SFU settles on a layer within ~4-10 s


def test_svc_setting_publishes_vp9_layers(settings: Settings) -> None:
    enc = RepublishEncoding.from_settings(settings.replace(video_svc="L3T1"))
    opts = enc.video_options()
    assert (enc.codec, opts.scalability_mode, opts.simulcast) == ("VP9", "L3T1", False)
    plain = RepublishEncoding.from_settings(settings.replace(video_svc="")).video_options()
    assert not plain.scalability_mode
    # frame metadata (a trailer on each frame) on layered VP9: Chromium decoded no frame
    assert not opts.frame_metadata_features and plain.frame_metadata_features


async def test_weak_link_viewer_keeps_15_fps_on_a_lower_layer(
        settings: Settings, tmp_path: Path) -> None:
    reason = netns.unavailable()
    if reason:
        pytest.skip(f"no network namespace for the weak link: {reason}")
    with netns.weak_link(500) as link:
        s = on_link(settings, link, tmp_path)
        async with livekit_server.running(s, tmp_path / "livekit.log", extra=server_extra(link)):
            url = s.effective_livekit_url
            with open(tmp_path / "pub.log", "wb") as log:  # the bot's encoding, from s
                pub = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "bench.plain_publisher", "--url", url,
                    "--token", mint_token(s, Role.BOT, "weak", "pub"), "--state", "speaking",
                    cwd=str(ROOT), env={**os.environ, **s.child_env()}, stdout=log,
                    stderr=asyncio.subprocess.STDOUT)
            try:
                await asyncio.sleep(1.5)
                seconds = SETTLE_S + HOLD_S

                normal, weak, through = await record_pair(
                    link, url, lambda who: mint_token(s, Role.VIEWER, "weak", who),
                    seconds=seconds, settle=SETTLE_S, folder=tmp_path, extra=("--from", "pub"))
            finally:
                pub.terminate()
                await pub.wait()
    print(f"normal {normal.get('fps')} fps {normal.get('sizes')}; weak {weak.get('fps')} fps "
          f"{weak.get('sizes')} changes {weak.get('size_changes')}; link {through:.0f} kbit/s")
    assert through <= 500 * 1.1, f"{through:.0f} kbit/s through a 500 kbit/s link"
    assert normal.get("height") == 720 and normal["fps"] >= 22, normal
    assert weak.get("height") is not None and weak["height"] < 720, weak
    assert weak["fps"] >= 15, weak
