"""`broadcaster up` end to end: the whole stack starts, serves pages, and stops cleanly."""

import asyncio
import os
import signal
import sys
import time

import aiohttp

from broadcaster.config import Settings
from broadcaster.netutil import free_port


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _children(pid: int) -> set[int]:
    """Every process whose session or parent is ``pid`` (the supervisor's tree)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat[1]) == pid:
            found.add(int(entry))
    return found


async def test_up_runs_the_stack_and_stops_on_sigint(tmp_path):
    ports = {
        "BROADCASTER_WEB_PORT": free_port(),
        "BROADCASTER_LIVEKIT_PORT": free_port(),
        "BROADCASTER_LIVEKIT_RTC_TCP_PORT": free_port(),
        "BROADCASTER_LIVEKIT_RTC_UDP_PORT": free_port(),
        "BROADCASTER_AVATAR_PORT": free_port(),
    }
    env = {**os.environ, "BROADCASTER_STATE_DIR": str(tmp_path),
           **{k: str(v) for k, v in ports.items()}}
    env.pop("LIVEKIT_URL", None)
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "broadcaster", "up", "--no-bot", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out = b""
    try:
        out = await asyncio.wait_for(proc.stdout.readuntil(b"Ctrl-C stops everything."), 90)
        ready_s = time.monotonic() - started
        children = _children(proc.pid)
        assert len(children) == 3, out.decode()  # livekit-server, avatar service, web app
        settings = Settings.load(env={k: v for k, v in env.items()
                                      if k.startswith(("BROADCASTER_", "LIVEKIT_"))})
        base = f"http://127.0.0.1:{ports['BROADCASTER_WEB_PORT']}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/w/{settings.demo_room}") as r:
                assert r.status == 200 and "text/html" in r.headers["Content-Type"]
            async with http.get(f"http://127.0.0.1:{ports['BROADCASTER_LIVEKIT_PORT']}") as r:
                assert r.status == 200
        proc.send_signal(signal.SIGINT)
        out += await asyncio.wait_for(proc.stdout.read(), 30)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
    text = out.decode()
    assert "viewer page" in text and f"/w/{settings.demo_room}" in text
    for secret in settings.secret_values():
        assert secret not in text
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in children) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert not any(_alive(p) for p in children), "a child outlived `up`"
    print(f"up ready in {ready_s:.1f} s")
