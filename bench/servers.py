"""Servers for benchmarks: livekit-server on free ports, or the whole ``broadcaster up``.

They start the way tests/conftest.py starts them (``broadcaster.livekit_server``
config and command, free loopback ports, a throwaway state directory), or as the whole
``broadcaster up`` stack in a child process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import bench.process_env  # noqa: E402,F401
from broadcaster.config import Settings  # noqa: E402


def fresh_settings(**overrides: Any) -> Settings:
    """Settings on free loopback ports with a throwaway state directory."""
    from broadcaster.netutil import free_port

    state = Path(tempfile.mkdtemp(prefix="bench-"))
    return Settings.load(
        env={}, state_dir=str(state), livekit_port=free_port(),
        livekit_rtc_tcp_port=free_port(), livekit_rtc_udp_port=free_port(),
        web_port=free_port(), avatar_port=free_port(), bot_metrics_port=free_port(),
        **overrides,
    )


@contextlib.asynccontextmanager
async def livekit_server(settings: Settings | None = None) -> AsyncIterator[Settings]:
    """A livekit-server on free loopback ports (as tests/conftest.py); yields Settings."""
    from broadcaster import livekit_server as lks

    s = settings or fresh_settings()
    async with lks.running(s, Path(s.state_dir) / "livekit.log") as ready:
        yield ready


async def stop_process(proc: subprocess.Popen | asyncio.subprocess.Process,
                       timeout: float = 15.0) -> None:
    """SIGTERM (SIGINT for `up`'s supervisor is handled by the caller), then SIGKILL."""
    if _returncode(proc) is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    deadline = time.monotonic() + timeout
    while _returncode(proc) is None and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    if _returncode(proc) is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    if isinstance(proc, asyncio.subprocess.Process):
        await proc.wait()
    else:
        proc.wait()


def _returncode(proc: Any) -> int | None:
    return proc.poll() if isinstance(proc, subprocess.Popen) else proc.returncode


def child(module: str, args: list[str], settings: Settings, log: Path) -> subprocess.Popen:
    """``python -m <module> <args>`` with the settings in its environment."""
    env = {**os.environ, **settings.child_env(), "PYTHONUNBUFFERED": "1"}
    fh = open(log, "wb")  # noqa: SIM115 - the child owns it; closed when it ends
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT,
                            env=env, stdout=fh, stderr=subprocess.STDOUT)


# ------------------------------------------------------------------------ the `up` stack
@dataclass
class Stack:
    """``broadcaster up`` running in a child process; its output is kept in ``lines``."""

    settings: Settings
    proc: asyncio.subprocess.Process
    lines: list[tuple[float, str]] = field(default_factory=list)
    reader: asyncio.Task | None = None

    def grep(self, pattern: str, since: float = 0.0) -> list[str]:
        rx = re.compile(pattern)
        return [line for t, line in self.lines if t >= since and rx.search(line)]

    async def wait_line(self, pattern: str, timeout: float, since: float = 0.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.grep(pattern, since)
            if found:
                return found[0]
            if self.proc.returncode is not None:
                raise RuntimeError("broadcaster up exited:\n" + self.tail())
            await asyncio.sleep(0.1)
        raise TimeoutError(f"no line matching {pattern!r} in {timeout} s:\n{self.tail()}")

    def tail(self, n: int = 40) -> str:
        return "\n".join(line for _, line in self.lines[-n:])


async def _start_stack(start_bot: bool, env_extra: dict[str, str] | None,
                       overrides: dict[str, Any]) -> Stack:
    """Start ``broadcaster up`` on fresh ports and wait until it says it is up."""
    s = fresh_settings(**overrides)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BROADCASTER_", "LIVEKIT_", "HEYGEN_"))}
    env.update(env_extra or {})
    env.update(s.child_env())
    env["PYTHONUNBUFFERED"] = "1"
    args = [sys.executable, "-m", "broadcaster", "up"] + ([] if start_bot else ["--no-bot"])
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, start_new_session=True,
    )
    stack = Stack(s, proc)
    log = open(Path(s.state_dir) / "up.log", "w")  # noqa: SIM115 - closed by the reader

    async def read() -> None:
        assert proc.stdout is not None
        try:
            while line := await proc.stdout.readline():
                text = line.decode(errors="replace").rstrip("\n")
                stack.lines.append((time.monotonic(), text))
                log.write(text + "\n")
        finally:
            log.close()

    stack.reader = asyncio.create_task(read())
    try:
        await stack.wait_line(r"Ctrl-C stops everything", timeout=120)
    except RuntimeError as exc:
        await _stop_stack(stack)  # reads the output to its end: the cause is in the tail
        raise RuntimeError(f"broadcaster up exited:\n{stack.tail()}") from exc
    except BaseException:
        await _stop_stack(stack)
        raise
    return stack


async def _stop_stack(stack: Stack) -> None:
    """SIGINT to the supervisor (it stops its children), SIGKILL to the group if it hangs."""
    proc = stack.proc
    if proc.returncode is None:
        proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(proc.wait(), 40)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
    if stack.reader is not None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(stack.reader), 5)
        stack.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stack.reader


@contextlib.asynccontextmanager
async def up_stack(start_bot: bool = True, env_extra: dict[str, str] | None = None,
                   **overrides: Any) -> AsyncIterator[Stack]:
    """The whole local stack (livekit-server, avatar service, web app, demo bot).

    ``env_extra``: process environment for every part (e.g. ``MALLOC_ARENA_MAX``, ``GOGC``).
    A start that fails on a port taken meanwhile starts over on fresh ports.
    """
    from bench.ports import with_fresh_ports

    stack = await with_fresh_ports(lambda: _start_stack(start_bot, env_extra, overrides))
    try:
        yield stack
    finally:
        await _stop_stack(stack)
