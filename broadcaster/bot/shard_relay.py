"""The stage's layered video in an audience shard: one ``svcrelay`` process per shard.

With ``video_svc`` = L3T1 the bot publishes one VP9 stream with three spatial layers
into the stage room. ``relay/svcrelay`` (Go, server-sdk-go) subscribes to it there and
writes the same RTP packets into a shard room, announcing the three layers, so the
shard's SFU picks a layer per viewer: a viewer behind 500 kbit/s gets 180p at full
frame rate while the others get 720p (tests/test_shard_weak_link.py). Nothing is
decoded or encoded per shard (bench/encode_once.py measures what a relay costs).

The relay exits when either room drops it or the stage's track goes away; the keeper
starts it again (fresh tokens, fresh publication) until ``stop``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
from pathlib import Path

from loguru import logger

from broadcaster.config import Settings
from broadcaster.config.paths import PROJECT_ROOT
from broadcaster.roles import RELAY_SUFFIX, Role, mint_token

#: seconds before a relay that exited is started again
RESTART_SECONDS = 1.0
#: seconds a relay gets to leave both rooms on SIGTERM
STOP_SECONDS = 3.0


def relay_binary(settings: Settings) -> str | None:
    """Return the svcrelay executable: ``shard_relay_bin``, .tools/bin/svcrelay, or PATH."""
    if settings.shard_relay_bin:
        return settings.shard_relay_bin if Path(settings.shard_relay_bin).is_file() else None
    local = PROJECT_ROOT / ".tools" / "bin" / "svcrelay"
    if local.is_file():
        return str(local)
    return shutil.which("svcrelay")


def spatial_layers(video_svc: str) -> int:
    """Return the spatial layers of an SVC mode ("L3T1" -> 3); 1 when empty."""
    m = re.match(r"L([1-3])T", video_svc)
    return int(m.group(1)) if m else 1


def use_relay(settings: Settings) -> bool:
    """Tell whether the shards get the stage's SVC layers through relays (``shard_video``)."""
    if settings.shard_video == "encode_once":
        return False
    layered = spatial_layers(settings.video_svc) > 1
    if settings.shard_video == "relay":
        return True  # the config check made sure the stage has layers
    return layered and relay_binary(settings) is not None


class SvcRelay:
    """One relay process from ``stage`` into ``shard``, kept running until ``stop``."""

    def __init__(self, settings: Settings, stage: str, shard: str, *,
                 width: int, height: int) -> None:
        self.settings, self.stage, self.shard = settings, stage, shard
        self.width, self.height = width, height
        self.identity = settings.bot_identity + RELAY_SUFFIX
        self.starts = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the relay and keep it running (from the event loop)."""
        self._task = asyncio.ensure_future(self._keep())

    def argv(self) -> list[str]:
        """Return the relay's command line, with fresh tokens for both rooms."""
        s = self.settings
        binary = relay_binary(s)
        if binary is None:
            raise FileNotFoundError("svcrelay is not built (bash relay/svcrelay/build.sh)")
        return [binary, "-url", s.effective_livekit_url,
                # one identity per relay in the stage room (several would replace each other)
                "-src-token", mint_token(s, Role.BOT, self.stage,
                                         f"{self.identity}-{self.shard.rsplit('--', 1)[-1]}",
                                         name="Avatar relay"),
                "-dst-token", mint_token(s, Role.BOT, self.shard, self.identity, name="Avatar"),
                "-from", s.bot_identity, "-width", str(self.width), "-height", str(self.height),
                "-spatial", str(spatial_layers(s.video_svc))]

    async def _keep(self) -> None:
        while True:
            try:
                self._proc = await asyncio.create_subprocess_exec(
                    *self.argv(), stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT)
            except OSError as exc:
                logger.error(f"shard {self.shard}: svcrelay cannot start ({exc})")
                await asyncio.sleep(10 * RESTART_SECONDS)
                continue
            self.starts += 1
            assert self._proc.stdout is not None
            async for line in self._proc.stdout:
                text = line.decode(errors="replace").rstrip()
                if '"stats"' not in text:
                    logger.info(f"shard {self.shard}: svcrelay {text[:300]}")
            code = await self._proc.wait()
            logger.warning(f"shard {self.shard}: svcrelay exited ({code}); starting again")
            await asyncio.sleep(RESTART_SECONDS)

    async def stop(self) -> None:
        """Stop keeping the relay and end it (SIGTERM, then SIGKILL)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        proc = self._proc
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), STOP_SECONDS)
            except TimeoutError:
                proc.kill()
                await proc.wait()

