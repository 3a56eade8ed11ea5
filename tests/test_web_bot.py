"""The avatar bot launcher: a real subprocess, started, watched and stopped."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from broadcaster.config import Settings
from broadcaster.web.bot_control import BotLauncher, default_command
from tests.fixtures_web import WebClient, wait_until

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
STUBBORN = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n" \
           "print('ready', flush=True)\nwhile True: time.sleep(0.1)"


def test_default_command_runs_the_bot_module():
    assert default_command("demo") == [sys.executable, "-m", "broadcaster.bot", "--room", "demo"]


async def test_launcher_start_status_stop(livekit: Settings, tmp_path):
    settings = livekit.replace(state_dir=str(tmp_path))
    bots = BotLauncher(settings, command=lambda room: SLEEPER)
    assert bots.status("r1")["state"] == "stopped"
    started = await bots.start("r1")
    assert started["state"] == "running" and started["pid"]
    assert (await bots.start("r1"))["pid"] == started["pid"]  # one bot per room
    stopped = await bots.stop("r1")
    assert stopped["state"] == "stopped" and stopped["returncode"] == -signal.SIGTERM
    assert bots.status("r1")["state"] == "stopped"


async def test_launcher_kills_a_bot_that_ignores_sigterm(livekit: Settings):
    bots = BotLauncher(livekit, command=lambda room: [sys.executable, "-c", STUBBORN],
                       stop_timeout=0.5)
    await bots.start("r2")
    await asyncio.sleep(0.3)  # let it install its SIGTERM handler
    stopped = await bots.stop("r2")
    assert stopped["returncode"] == -signal.SIGKILL


async def test_launcher_restarts_a_crashed_bot_then_gives_up(livekit: Settings, tmp_path):
    marker = tmp_path / "crashed-once"
    once = (f"import pathlib, sys, time\np = pathlib.Path({str(marker)!r})\n"
            "if not p.exists():\n    p.touch(); sys.exit(75)\ntime.sleep(60)")
    bots = BotLauncher(livekit, command=lambda room: [sys.executable, "-c", once],
                       restart_backoff=0.05)
    first = (await bots.start("r3"))["pid"]

    async def replaced() -> bool:
        status = bots.status("r3")
        return status["state"] == "running" and status["pid"] != first

    assert await wait_until(replaced, timeout=10)  # exit 75 -> a fresh bot
    await bots.stop_all()

    crash = [sys.executable, "-c", "raise SystemExit(3)"]
    always = BotLauncher(livekit, command=lambda room: crash, restart_backoff=0.01)
    await always.start("r4")

    async def given_up() -> bool:  # exited, and no restart (0.01-0.15 s backoff) follows
        first = always.status("r4")
        await asyncio.sleep(0.5)
        return first["state"] == "exited" and always.status("r4") == first

    assert await wait_until(given_up, timeout=15)
    last = always.status("r4")
    await asyncio.sleep(1.0)  # past every backoff: no further restart comes
    assert always.status("r4") == last and last["returncode"] == 3
    await always.stop_all()


async def test_bots_left_running_by_a_crash_start_again_and_a_host_stop_forgets_them(
        livekit: Settings, tmp_path: Path) -> None:
    """A web app that dies (SIGKILL) leaves its rooms written down; the next one resumes
    those whose webinar still exists; the host's stop (of one bot or all) resumes nothing."""
    running = tmp_path / "bots-running.json"
    first = BotLauncher(livekit, command=lambda room: SLEEPER, running_file=running)
    for room in ("kept", "gone", "stopped"):
        await first.start(room)
    await first.stop("stopped")
    # the web app is killed here: nothing stops ``first``'s bots (the supervisor ends them)
    for room in ("kept", "gone"):
        pid = first.status(room)["pid"]
        assert isinstance(pid, int)
        os.kill(pid, signal.SIGKILL)

    second = BotLauncher(livekit, command=lambda room: SLEEPER, running_file=running)
    assert sorted(second.left_running()) == ["gone", "kept"]
    assert await second.resume(lambda room: room != "gone") == ["kept"]
    assert second.status("kept")["state"] == "running"
    assert second.status("gone")["state"] == second.status("stopped")["state"] == "stopped"
    assert json.loads(running.read_text()) == ["kept"]
    await first.stop_all()
    await second.stop_all()  # a clean shutdown

    third = BotLauncher(livekit, command=lambda room: SLEEPER, running_file=running)
    assert third.left_running() == [] and await third.resume(lambda room: True) == []


async def test_a_web_app_shut_down_cleanly_leaves_its_bots_for_the_next_one(
        livekit: Settings, tmp_path: Path) -> None:
    """SIGTERM to the web app (an operator, a redeploy) is not the host stopping the
    avatar: the supervisor restarts the web app, which must start its bots again. It used
    to forget them, and the webinar stayed on "Back in a moment" until a host came."""
    running = tmp_path / "bots-running.json"
    first = BotLauncher(livekit, command=lambda room: SLEEPER, running_file=running)
    for room in ("live", "stopped"):
        await first.start(room)
    await first.stop("stopped")  # the host's stop
    await first.stop_all(remember=True)  # the web app's shutdown
    assert first.status("live")["state"] == "stopped"  # its bot did stop

    second = BotLauncher(livekit, command=lambda room: SLEEPER, running_file=running)
    assert await second.resume(lambda room: True) == ["live"]
    assert second.status("live")["state"] == "running"
    await second.stop_all()


async def test_a_bot_given_up_on_is_not_resumed(livekit: Settings, tmp_path: Path) -> None:
    running = tmp_path / "bots-running.json"
    crash = [sys.executable, "-c", "raise SystemExit(3)"]
    bots = BotLauncher(livekit, command=lambda room: crash, restart_backoff=0.01,
                       running_file=running)
    await bots.start("loop")

    async def given_up() -> bool:
        await asyncio.sleep(0.3)
        later = BotLauncher(livekit, running_file=running)
        return bots.status("loop")["state"] == "exited" and later.left_running() == []

    assert await wait_until(given_up, timeout=15)
    await bots.stop_all()


async def test_an_unreadable_running_file_resumes_nothing(livekit: Settings,
                                                          tmp_path: Path) -> None:
    running = tmp_path / "bots-running.json"
    for junk in ("{not json", '{"room": "x"}', "[1, null, {}]", ""):
        running.write_text(junk)
        bots = BotLauncher(livekit, command=lambda room: SLEEPER, running_file=running)
        assert bots.left_running() == []
        assert await bots.resume(lambda room: True) == []
    assert json.loads(running.read_text()) == []


async def test_host_api_starts_and_stops_the_bot(web_client: WebClient):
    w = await web_client.new_webinar("Bot time")
    room = w["room"]
    base = f"/api/host/webinars/{room}/bot"
    status = (await web_client.host("GET", base)).data
    assert status["state"] == "stopped" and status["in_room"] is False  # nobody's bot there
    started = await web_client.host("POST", f"{base}/start")
    assert started.status == 200 and started.data["state"] == "running"
    record = Path(web_client.settings.state_dir) / f"fake-bot-{room}.json"

    async def launched() -> bool:
        return record.exists() and record.stat().st_size > 0

    assert await wait_until(launched, timeout=5)
    seen = json.loads(record.read_text())
    assert seen["argv"] == ["--room", room]
    assert seen["web_port"] == str(web_client.settings.web_port)  # settings reach the child
    assert (await web_client.host("GET", base)).data["pid"] == started.data["pid"]
    stopped = await web_client.host("POST", f"{base}/stop")
    assert stopped.data["state"] == "stopped" and stopped.data["returncode"] is not None
    # ending a webinar stops its bot
    await web_client.host("POST", f"{base}/start")
    await web_client.host("POST", f"/api/host/webinars/{room}/end")
    assert (await web_client.host("GET", base)).data["state"] == "stopped"
