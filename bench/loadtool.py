"""Driving the Go load viewers (bench/loadviewers) from Python.

``ensure_built()`` builds ``.tools/bin/loadviewers`` when its sources changed (as
``./dev bench`` does); ``LoadViewers`` runs it and hands each JSON line it prints to a
callback as it arrives (``window_start`` when a measuring window opens, ``step`` when it
closes, ``final`` at the end), so a bench can read process CPU over exactly the
windows the viewers measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".tools" / "bin" / "loadviewers"
BUILD = ROOT / "bench" / "loadviewers" / "build.sh"

#: join requests come from this many loopback addresses (127.0.1.1 ...), so a
#: per-address join limit sees a crowd of clients rather than one (issue 11)
DEFAULT_SOURCES = 200


def ensure_built() -> Path:
    """The load viewer binary, built (cached by source hash) with the Go toolchain."""
    proc = subprocess.run(["bash", str(BUILD)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"building the load viewers failed:\n{proc.stdout}{proc.stderr}")
    return BIN


def source_addrs(count: int = DEFAULT_SOURCES) -> str:
    """``-source-addrs`` for ``count`` loopback addresses 127.0.1.1 ... (max 254 per /24)."""
    parts, left, third = [], count, 1
    while left > 0:
        n = min(left, 254)
        parts.append(f"127.0.{third}.1-127.0.{third}.{n}")
        left -= n
        third += 1
    return ",".join(parts)


Event = dict[str, Any]


class LoadViewers:
    """One run of the load viewers; ``await run()`` returns its ``final`` report."""

    def __init__(self, args: Sequence[str], on_event: Callable[[Event], Awaitable[None] | None]
                 | None = None, *, log: Path | None = None, prefix: Sequence[str] = ()) -> None:
        self.argv = [*prefix, str(ensure_built()), *args]
        self.on_event = on_event
        self.log = log
        self.events: list[Event] = []
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    async def run(self, timeout: float = 900) -> Event:
        stderr = open(self.log, "wb") if self.log else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv, stdout=asyncio.subprocess.PIPE, stderr=stderr, limit=1 << 24)
            return await asyncio.wait_for(self._read(), timeout)
        finally:
            if self.proc and self.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.terminate()
                try:
                    await asyncio.wait_for(self.proc.wait(), 30)
                except TimeoutError:
                    self.proc.kill()
                    await self.proc.wait()
            if self.log:
                stderr.close()  # type: ignore[union-attr]

    async def _read(self) -> Event:
        assert self.proc is not None and self.proc.stdout is not None
        final: Event | None = None
        while line := await self.proc.stdout.readline():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            self.events.append(event)
            if event.get("type") == "final":
                final = event
            if self.on_event is not None:
                res = self.on_event(event)
                if asyncio.iscoroutine(res):
                    await res
        code = await self.proc.wait()
        if final is None:
            raise RuntimeError(f"load viewers exited ({code}) without a report; see {self.log}")
        return final
