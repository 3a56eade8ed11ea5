"""Start, stop and watch the avatar bot process of a webinar.

The bot is a separate process (``python -m broadcaster.bot --room R``) so a
crash in the media pipeline never takes the web app down, and it receives the
exact settings of this app through ``Settings.child_env()``. The command is
injectable so tests can launch a stand-in.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from loguru import logger

from broadcaster.atomic_file import write_atomic
from broadcaster.config import Settings
from broadcaster.logs import child_line
from broadcaster.restart_policy import RestartPolicy, RestartTracker

BotCommand = Callable[[str], Sequence[str]]


def default_command(room: str) -> list[str]:
    """Return the bot's command line: this interpreter, so the bot runs in our venv."""
    return [sys.executable, "-m", "broadcaster.bot", "--room", room]


def rehearsal_command(room: str) -> list[str]:
    """Return the command of the presenter's 1:1 rehearsal (broadcaster/bot/rehearsal.py)."""
    return [sys.executable, "-m", "broadcaster.cli", "serve", "rehearsal", "--room", room]


#: a bot that exits on its own is restarted (it asks for that with exit code 75 when
#: its avatar or LiveKit connection died): at once after 30 s up, else after 1, 2, 4, 8,
#: 15 s (x ``restart_backoff``); given up at its 6th short-run crash within 2 minutes
MAX_RESTARTS = 5
RESTART_WINDOW = 120.0
HEALTHY_AFTER = 30.0


@dataclass
class _Bot:
    room: str
    proc: asyncio.subprocess.Process
    restarts: RestartTracker
    started_at: float = field(default_factory=time.time)
    launched: float = field(default_factory=time.monotonic)
    watcher: asyncio.Task[None] | None = None
    pump: asyncio.Task[None] | None = None
    given_up: bool = False  # crashed too often: left exited, not resumed


class BotLauncher:
    """At most one bot process per room."""

    def __init__(
        self,
        settings: Settings,
        command: BotCommand = default_command,
        *,
        stop_timeout: float = 10.0,
        restart_backoff: float = 1.0,
        running_file: Path | None = None,
    ) -> None:
        """``running_file``: where the rooms with a bot are kept, for :meth:`resume`."""
        self._env = {**os.environ, **settings.child_env()}
        self._log_format = settings.log_format
        self._command = command
        self._stop_timeout = stop_timeout
        self._policy = RestartPolicy(
            healthy_after=HEALTHY_AFTER, first_delay=restart_backoff,
            max_delay=15.0 * restart_backoff, max_crashes=MAX_RESTARTS, window=RESTART_WINDOW)
        self._bots: dict[str, _Bot] = {}
        self._lock = asyncio.Lock()
        self._running_file = running_file

    def _save(self) -> None:
        """Write down the rooms that have a bot (atomically: a crash leaves old or new)."""
        if self._running_file is None:
            return
        rooms = sorted(r for r, b in self._bots.items() if not b.given_up)
        try:
            write_atomic(self._running_file, json.dumps(rooms).encode())
        except OSError as exc:
            logger.warning("could not write {}: {}", self._running_file, exc)

    def left_running(self) -> list[str]:
        """Rooms whose bot was running when this launcher's process last ended.

        After the web app's exit (a crash, or a shutdown: ``stop_all(remember=True)``) the
        rooms whose bot was running; a room the host stopped, or a bot given up on, is not.
        """
        if self._running_file is None:
            return []
        try:
            rooms = json.loads(self._running_file.read_text())
        except (OSError, ValueError):
            return []
        return [r for r in rooms if isinstance(r, str)] if isinstance(rooms, list) else []

    async def resume(self, exists: Callable[[str], bool]) -> list[str]:
        """Start again the bots the last web app left running (rooms that still exist)."""
        rooms = [r for r in self.left_running() if exists(r)]
        for room in rooms:
            logger.warning("bot for room {} was running when the web app last ended; "
                           "starting it again", room)
            await self.start(room)
        if not rooms:
            self._save()
        return rooms

    def status(self, room: str) -> dict[str, object]:
        """``{"state": "running"|"exited"|"stopped", "pid", "returncode", "started_at"}``."""
        bot = self._bots.get(room)
        if bot is None:
            return {"state": "stopped", "pid": None, "returncode": None, "started_at": None}
        code = bot.proc.returncode
        return {
            "state": "running" if code is None else "exited",
            "pid": bot.proc.pid,
            "returncode": code,
            "started_at": bot.started_at,
        }

    async def start(self, room: str) -> dict[str, object]:
        """Launch the bot for ``room`` unless one is already running there."""
        async with self._lock:
            bot = self._bots.get(room)
            if bot is not None and bot.proc.returncode is None:
                return self.status(room)
            self._bots[room] = await self._launch(room, RestartTracker(self._policy))
            self._save()
            return self.status(room)

    async def _launch(self, room: str, restarts: RestartTracker) -> _Bot:
        proc = await asyncio.create_subprocess_exec(
            *self._command(room), env=self._env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in a terminal reaches the supervisor only
        )
        bot = _Bot(room, proc, restarts)
        bot.watcher = asyncio.create_task(self._watch(bot), name=f"bot-watch-{room}")
        bot.pump = asyncio.create_task(self._pump(bot, self._log_format),
                                       name=f"bot-output-{room}")
        logger.info("bot for room {} started (pid {})", room, proc.pid)
        return bot

    @staticmethod
    async def _pump(bot: _Bot, log_format: str = "text") -> None:
        """Forward the bot's output, each line marked with its room (bots are many)."""
        assert bot.proc.stdout is not None
        name = f"bot[{bot.room}]"
        while line := await bot.proc.stdout.readline():
            text = line.decode(errors="replace").rstrip("\n")
            if log_format == "text":
                sys.stdout.write(f"{name} {text}\n")
            else:
                sys.stdout.write(child_line(name, text, log_format))
            sys.stdout.flush()

    async def _watch(self, bot: _Bot) -> None:
        """Restart a bot that exits without being asked to.

        At once after a healthy run; with a growing backoff when it keeps dying soon
        after its start.
        """
        code = await bot.proc.wait()
        async with self._lock:
            if self._bots.get(bot.room) is not bot:
                return  # stopped on purpose, or already replaced
            now = time.monotonic()
            delay = bot.restarts.on_exit(bot.launched, now)
            if delay is None:
                logger.error("bot for room {} exited (code {}) {} times in {:.0f} s; "
                             "not restarting", bot.room, code, len(bot.restarts.crashes),
                             RESTART_WINDOW)
                bot.given_up = True
                self._save()
                return
            logger.warning("bot for room {} exited (code {}) after {:.1f} s up; restarting "
                           "in {:.1f} s", bot.room, code, now - bot.launched, delay)
        if delay:
            await asyncio.sleep(delay)
        async with self._lock:
            if self._bots.get(bot.room) is bot:
                self._bots[bot.room] = await self._launch(bot.room, bot.restarts)

    async def stop(self, room: str, *, remember: bool = False) -> dict[str, object]:
        """SIGTERM, then SIGKILL after the timeout; forget the process.

        ``remember``: the room stays written down for the next launcher's :meth:`resume`.
        """
        async with self._lock:
            bot = self._bots.pop(room, None)
            if bot is None:
                return self.status(room)
            if not remember:
                self._save()
            await self._terminate(bot)
            status = {
                "state": "stopped", "pid": bot.proc.pid,
                "returncode": bot.proc.returncode, "started_at": bot.started_at,
            }
            return status

    async def _terminate(self, bot: _Bot) -> None:
        if bot.watcher is not None:
            bot.watcher.cancel()
        proc = bot.proc
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), self._stop_timeout)
            except TimeoutError:
                logger.warning("bot for room {} ignored SIGTERM; killing it", bot.room)
                proc.kill()
                await proc.wait()
        logger.info("bot for room {} stopped (exit {})", bot.room, proc.returncode)

    async def stop_all(self, *, remember: bool = False) -> None:
        """Stop every bot, one after another (each within its stop timeout).

        ``remember``: the web app is exiting (SIGTERM, Ctrl-C, a redeploy), not the host
        stopping the bots: their rooms stay written down and the next web app starts them
        again (:meth:`resume`), as after a crash. Only the host's stop forgets a room.
        """
        for room in list(self._bots):
            await self.stop(room, remember=remember)
