"""The avatar service dies under a watching viewer; the bot reopens its session in place.

A real stack: the session's livekit-server and web app, the real bot process
(``running_bot``), and a local avatar service of this module's own (so killing it
leaves the session's one alone). The avatar service is killed with SIGKILL and
started again after 1 s, as the supervisor of ``broadcaster up`` does after a
first crash. A viewer that joined through the web app stays on the stage and
times what it sees (probes/stage_watch.py): the slate within 2 s, the live avatar
back within 5 s (issue 15's goals), and the bot process the same one throughout.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
from loguru import logger

from broadcaster.bot.picture_match import SAME_PICTURE
from broadcaster.config import PROJECT_ROOT, Settings
from broadcaster.netutil import free_port, wait_http_ok
from probes.rollover_watch import frames_around, judge, switch_jumps, switch_walls, switches
from probes.stage_watch import StageWatcher
from tests.fixtures_bot import BotStage, running_bot
from tests.fixtures_web import WebClient

pytestmark = [pytest.mark.timeout(150)]

#: a next session takes 1.0-1.4 s to open on a busy 2-core box, and must be ready 1 s
#: before the current one ends: with 5-s sessions and a 3.5-s lead one CI-like run in
#: three fell back to a close-and-reopen; 6 s with a 4.5-s lead leaves a 2-s margin
SANDBOX_SECONDS = 6.0
ROLLOVER_LEAD = 4.5
SUPERVISOR_DELAY = 1.0  # the supervisor: at once after a healthy run, 1 s after a short one


class AvatarProcess:
    """A local avatar service we may kill and start again, on a port of its own."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.log = Path(settings.state_dir) / f"avatar-{settings.avatar_port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        s = self.settings
        env = {**os.environ, **s.child_env(), "PYTHONUNBUFFERED": "1"}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "broadcaster.avatar"],
                                         cwd=PROJECT_ROOT, env=env, stdout=log,
                                         stderr=subprocess.STDOUT)
        proc = self.proc
        await wait_http_ok(f"http://{s.avatar_host}:{s.avatar_port}/healthz", timeout=30,
                           proc_alive=lambda: proc.poll() is None)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stage(web_client: WebClient, avatar_settings: Settings
                ) -> AsyncIterator[tuple[BotStage, AvatarProcess]]:
    # HeyGen's sandbox minute, emulated and accelerated to SANDBOX_SECONDS: only sessions
    # asked for as sandbox end (the rollover test's bot); the other bots ask for none
    settings = avatar_settings.replace(avatar_port=free_port(), avatar_emulate_limits=True,
                                       avatar_sandbox_session_seconds=SANDBOX_SECONDS)
    avatar = AvatarProcess(settings)
    await avatar.start()
    try:
        webinar = await web_client.new_webinar("Recovery drill")
        async with running_bot(settings.replace(avatar_emulate_limits=False), webinar) as bot:
            yield bot, avatar
    finally:
        avatar.stop()


async def watch(bot: BotStage, web: WebClient, identity: str) -> StageWatcher:
    joined = await web.join(bot.room, identity, name=identity.title())
    assert joined.status == 200, joined.text
    watcher = StageWatcher(bot.settings.bot_identity)
    await watcher.join(joined.data["url"], joined.data["token"])
    deadline = time.monotonic() + 15
    while not watcher.live_now():
        assert time.monotonic() < deadline, f"no live avatar at the viewer:\n{bot.tail()}"
        await asyncio.sleep(0.2)
    return watcher


async def restarts(bot: BotStage) -> int:
    m = re.search(r"broadcaster_avatar_session_restarts_total\{[^}]*\} (\S+)",
                  await bot.metrics())
    return int(float(m.group(1))) if m else -1


async def test_avatar_service_killed_the_bot_reopens_its_session_in_place(
        stage: tuple[BotStage, AvatarProcess], web_client: WebClient) -> None:
    bot, avatar = stage
    viewer = await watch(bot, web_client, "vera")
    pid = bot.proc.pid
    try:
        for round_ in range(2):  # twice: the second restart must work as the first did
            before = await restarts(bot)
            t0 = time.monotonic()
            avatar.kill()
            await asyncio.sleep(SUPERVISOR_DELAY)
            await avatar.start()
            deadline = t0 + 20
            while viewer.live_after(t0) is None and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            slate, live = viewer.slate_after(t0), viewer.live_after(t0)
            logger.info(f"avatar service killed (round {round_}): slate after {slate}, "
                        f"live after {live}")
            assert slate is not None and slate <= 2.0, f"slate after {slate}:\n{bot.tail()}"
            assert live is not None and live <= 5.0, f"live after {live}:\n{bot.tail()}"
            assert bot.alive() and bot.proc.pid == pid, "the bot process survives"
            assert await restarts(bot) > before, "reopened in place (the keeper's counter)"
            await asyncio.sleep(1.0)
    finally:
        await viewer.leave()


LAUNCHER_BACKOFF = 1.0  # bot_control: at once after a healthy run (30 s), 1 s after a short one


async def test_bot_killed_a_new_bot_is_live_at_once_from_the_phrase_cache(
        stage: tuple[BotStage, AvatarProcess], web_client: WebClient) -> None:
    """SIGKILL the bot; a new one (as the launcher starts it) reads the answers' audio
    from disk instead of synthesizing them, and the viewer sees the live avatar soon.
    Then SIGTERM: the new bot exits 0 and closes its avatar session itself."""
    bot, _ = stage
    phrases = Path(bot.settings.state_dir) / "phrases"
    deadline = time.monotonic() + 60
    while not list(phrases.glob("*.phrases")):  # the first bot saved the answers' audio
        assert time.monotonic() < deadline, f"no phrase file:\n{bot.tail()}"
        await asyncio.sleep(0.5)
    viewer = await watch(bot, web_client, "kim")
    try:
        t0 = time.monotonic()
        bot.proc.kill()
        await asyncio.to_thread(bot.proc.wait)
        await asyncio.sleep(LAUNCHER_BACKOFF)
        async with running_bot(bot.settings, bot.webinar) as again:
            deadline = t0 + 30
            while viewer.live_after(t0) is None and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            live = viewer.live_after(t0)
            logger.info(f"bot killed: slate after {viewer.slate_after(t0)}, live after {live}; "
                        f"{len([x for x in viewer.seen if x.t > t0])} frames since, "
                        f"{len(viewer.tasks)} tracks, {viewer.room.connection_state}, "
                        f"{[p.identity for p in viewer.room.remote_participants.values()]}")
            assert again.grep(r"answer sentences read from disk, 0 synthesized"), again.tail()
            assert live is not None and live <= 8.0, f"live after {live}:\n{again.tail()}"
            await sigterm_stops_cleanly(again, stage[1])
    finally:
        await viewer.leave()


async def sigterm_stops_cleanly(bot: BotStage, avatar: AvatarProcess) -> None:
    """A SIGTERMed bot exits 0, promptly, and stops its avatar session itself (the
    service is told, not left to reap it)."""
    started = re.findall(r"avatar session (\S+) started", avatar.log.read_text())
    assert started, "the avatar service ran sessions"
    t0 = time.monotonic()
    bot.proc.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(bot.proc.wait, 20)
    assert code == 0, bot.tail()
    assert time.monotonic() - t0 < 10, "a prompt shutdown"
    deadline = time.monotonic() + 5
    pattern = rf"avatar session {re.escape(started[-1])} stopped: stopped by client"
    while not re.search(pattern, avatar.log.read_text()):
        assert time.monotonic() < deadline, avatar.log.read_text()[-3000:]
        await asyncio.sleep(0.2)



async def test_sandbox_sessions_roll_over_ahead_without_a_slate(
        stage: tuple[BotStage, AvatarProcess], web_client: WebClient) -> None:
    """A webinar against sandbox sessions that the service ends after SANDBOX_SECONDS
    (HeyGen's minute, accelerated 10x): the bot opens each next session ahead, lets it
    warm up and switches to it at a pause. A viewer counts what it saw over ~8 sessions:
    no slate frame, frames at the full rate, the picture held no longer than a frame
    interval or two at a switch (measured in the bot), and no jump: the largest change
    between consecutive frames around each switch within that of normal windows."""
    _, avatar = stage
    settings = avatar.settings.replace(avatar_rollover_lead_seconds=ROLLOVER_LEAD)
    webinar = await web_client.new_webinar("Sandbox marathon")
    async with running_bot(settings, webinar) as bot:
        viewer = await watch(bot, web_client, "sol")
        try:
            t0 = time.monotonic()
            await asyncio.sleep(7 * SANDBOX_SECONDS)
            t1 = time.monotonic()
            found, sequential = switches(bot.grep("rolling over at a pause"))
            baseline = judge(viewer.seen, found, t0, t1)
            ended = len(re.findall(r"stopped: sandbox session limit", avatar.log.read_text()))
            slate, gap = viewer.slate_frames(t0, t1), viewer.longest_gap(t0, t1)
            frames = sum(1 for s in viewer.seen if t0 <= s.t <= t1)
            helds = [sw.held_s for sw in found]
            held = max(helds, default=0.0)
            windows = [sw.change for sw in found if sw.change is not None]
            # each switch's own jump: the change of the first frame from the new session
            jumps = switch_jumps(viewer.seen, switch_walls(bot.grep("another session")))
            normal = float(np.percentile(baseline, 99.5)) if baseline else 0.0
            for sw in found:
                logger.info(f"switch at {sw.at:.3f} (change {sw.change}): "
                            f"{frames_around(viewer.seen, sw)}")
            logger.info(f"sandbox marathon: each switch's first frame changed the picture by "
                        f"{[round(j, 2) for j in jumps]}")
            logger.info(f"sandbox marathon: {len(found)} overlapped rollovers, {sequential} "
                        f"sequential, {ended} sessions ended by the service, {slate} slate "
                        f"frames, {frames / (t1 - t0):.1f} fps at the viewer, longest gap "
                        f"{gap:.2f} s, held at a switch max {held:.3f} s, picture change at a "
                        f"switch's first frame max {max(jumps, default=0):.2f} (p50 "
                        f"{float(np.median(jumps)) if jumps else 0:.2f}; windows around the "
                        f"switches max {max(windows, default=0):.2f}; normal windows p99.5 "
                        f"{normal:.2f}, max {max(baseline, default=0):.2f})")
            assert len(found) >= 6 and sequential == 0, "\n".join(
                bot.grep(r"avatar_keeper|HeyGen session started|rror"))
            assert ended == 0, "every session was replaced before the service ended it"
            assert slate == 0, f"{slate} slate frames:\n{bot.tail()}"
            assert frames / (t1 - t0) >= 20, "the viewer got the avatar at its frame rate"
            assert gap < 0.5, f"a {gap:.2f} s gap at the viewer"
            # a frame interval is 0.04 s; a busy 2-core box delays single frames by ~0.15 s
            assert float(np.median(helds)) <= 0.1 and held <= 0.25, (
                f"the picture was held {helds} s at the switches")
            assert len(windows) == len(found), "the viewer got frames around every switch"
            assert len(jumps) >= len(found) - 1, "the viewer saw each switch's first frame"
            # the jump the issue forbids: before the fix (switching 3 frames into the next
            # session, its stream still ramping up) a switch window's largest change was up
            # to 1.14-1.31 against 0.70-0.89 in normal windows; now the keeper waits until the
            # next session's picture matches and the switch is made at a matching frame
            # a switch at a matching frame changes the picture by the two encoders' noise
            # (p50 0.2); when the sway steps at that very frame, by a step plus that noise
            # (measured 0.5-0.71 in 5 of 15 switches once): never more
            assert max(jumps) <= normal + SAME_PICTURE, (
                f"the picture jumped at a switch: {sorted(jumps)} (mean |Δ luma|) against "
                f"{normal:.2f} at most in normal windows (p99.5) + {SAME_PICTURE} noise\n"
                + "\n".join(bot.grep("rolling over at a pause")))
        finally:
            await viewer.leave()


async def test_the_avatar_service_stops_on_sigint_closing_its_live_sessions(
        stage: tuple[BotStage, AvatarProcess]) -> None:
    """SIGINT (Ctrl-C) to the avatar service while a bot's session is live: it exits 0
    at once and closes that session itself (its room deleted), leaving nothing to reap."""
    bot, avatar = stage
    async with running_bot(bot.settings, bot.webinar):
        started = re.findall(r"avatar session (\S+) started", avatar.log.read_text())
        assert avatar.proc is not None and started
        t0 = time.monotonic()
        avatar.proc.send_signal(signal.SIGINT)
        code = await asyncio.to_thread(avatar.proc.wait, 15)
        took = time.monotonic() - t0
        logger.info(f"avatar service SIGINT with a live session: exit {code} in {took:.2f} s")
        assert code == 0, avatar.log.read_text()[-3000:]
        assert took < 5
        assert re.search(rf"avatar session {re.escape(started[-1])} stopped: service shutting "
                         "down", avatar.log.read_text()), avatar.log.read_text()[-3000:]
