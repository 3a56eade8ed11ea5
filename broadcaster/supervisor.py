"""Run the stack's processes: ordered start, readiness, restart, clean stop.

Each part is a child process so a crash in one (the bot's media stack, say)
does not take the web pages down, and the supervisor restarts it. Output of
every child is prefixed with its name and scrubbed of secrets before it is
printed, because livekit-server and third-party libraries log what they like.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from loguru import logger

from broadcaster import proctree
from broadcaster.logs import child_line, make_scrubber
from broadcaster.netutil import port_taken, wait_http_ok
from broadcaster.restart_policy import RestartPolicy, RestartTracker

#: a part that ran 30 s is restarted at once; one that keeps dying sooner waits 1, 2, 4,
#: 8, 10 s, and is given up on at its 6th such crash within a minute
POLICY = RestartPolicy(healthy_after=30.0, first_delay=1.0, max_delay=10.0,
                       max_crashes=5, window=60.0)


class StartupError(RuntimeError):
    """A part could not start; the message says which and why."""


@dataclass
class ChildSpec:
    """How to run and check one part of the stack."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    ready_url: str | None = None
    ready_timeout: float = 60.0
    ports: list[tuple[str, int, str]] = field(default_factory=list)
    restart: bool = True
    stop_timeout: float = 10.0
    #: signal the stop again after this many seconds: livekit-server's first SIGTERM
    #: waits for every participant to leave, its second one closes the rooms at once
    repeat_stop_after: float | None = None
    #: whether to print a line of its output (None: every line)
    show_line: Callable[[str], bool] | None = None
    #: a line saying it began a slow stop on an outside signal (livekit-server's drain,
    #: broadcaster/livekit_drain.py): the supervisor signals it again, which ends it at
    #: once, and restarts it as after any exit
    draining_line: Callable[[str], bool] | None = None


def check_programs(specs: Sequence[ChildSpec]) -> None:
    """Fail before starting anything when a part's program does not exist."""
    for spec in specs:
        program = spec.argv[0]
        if not os.path.exists(program) and not shutil.which(program):
            raise StartupError(f"{spec.name}: {program} does not exist")


def check_ports(specs: Sequence[ChildSpec]) -> None:
    """Fail before starting anything when a port is already in use."""
    problems = []
    for spec in specs:
        for label, port, proto in spec.ports:
            kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
            if port and port_taken(port, kind=kind):
                problems.append(
                    f"{label} port {port}/{proto} is already in use (another broadcaster or "
                    f"livekit-server running? pick another with the matching setting)"
                )
    if problems:
        raise StartupError("; ".join(problems))


class Child:
    """One running part: process, output pump, restart bookkeeping."""

    def __init__(self, spec: ChildSpec, scrub: Callable[[str], str],
                 log_format: str = "text", policy: RestartPolicy = POLICY) -> None:
        self.spec = spec
        self.scrub = scrub
        self.log_format = log_format
        self.proc: asyncio.subprocess.Process | None = None
        self.spawning = False
        """Between the spawn and ``proc`` being set: the orphan sweep leaves us alone."""
        self.pump: asyncio.Task[None] | None = None
        self.restarts = RestartTracker(policy)
        self.started_at = 0.0  # monotonic, when the process was spawned
        self.restart_task: asyncio.Task[None] | None = None  # a restart waiting or starting
        self.stopping = False  # our own stop is under way: its drain is expected

    @property
    def alive(self) -> bool:
        """Whether the child process is running."""
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        """Start the child, its output prefixed and scrubbed of secrets."""
        spec = self.spec
        logger.info(f"starting {spec.name}")
        self.started_at = time.monotonic()
        self.stopping = False
        self.spawning = True  # spawned but not yet ours: not an orphan (end_orphans)
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *spec.argv,
                env={**os.environ, **spec.env},
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C goes to us; we stop children in order
            )
        except OSError as exc:  # a missing or non-executable program
            raise StartupError(f"{spec.name}: cannot run {spec.argv[0]}: {exc.strerror}") from exc
        finally:
            self.spawning = False
        self.pump = asyncio.create_task(self._pump(), name=f"pump-{spec.name}")
        if spec.ready_url:
            try:
                await wait_http_ok(
                    spec.ready_url, spec.ready_timeout, proc_alive=lambda: self.alive
                )
            except (TimeoutError, RuntimeError) as exc:
                await self.stop()
                raise StartupError(f"{spec.name} did not become ready: {exc}") from exc
        logger.info(f"{spec.name} is ready")

    async def _pump(self) -> None:
        proc = self.proc  # this process's output, even once a restart replaced it
        assert proc is not None and proc.stdout is not None
        name = f"{self.spec.name:>8}" if self.log_format == "text" else self.spec.name
        while line := await proc.stdout.readline():
            text = self.scrub(line.decode(errors="replace").rstrip())
            if self.spec.draining_line and self.spec.draining_line(text):
                self._end_drain(proc)
            if self.spec.show_line and not self.spec.show_line(text):
                continue
            sys.stdout.write(child_line(name, text, self.log_format))
            sys.stdout.flush()

    def _end_drain(self, proc: asyncio.subprocess.Process) -> None:
        """Signal again a child that began draining on a signal from outside."""
        if self.stopping or proc is not self.proc or proc.returncode is not None:
            return  # our own stop repeats its signal itself (``repeat_stop_after``)
        logger.warning(f"{self.spec.name} was sent a stop signal from outside and is draining "
                       "(it would wait for every participant to leave): signalling it again "
                       "to end it now; it is restarted")
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)

    async def stop(self) -> None:
        """Stop the child: SIGTERM, then SIGKILL after ``stop_timeout``.

        Then end whatever it started and left behind (its tree is noted before the SIGTERM).
        """
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        logger.info(f"stopping {self.spec.name}")
        self.stopping = True
        below = proctree.tree(proc.pid)
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            first = self.spec.repeat_stop_after
            if first is not None and first < self.spec.stop_timeout:
                try:
                    await asyncio.wait_for(asyncio.shield(proc.wait()), first)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), self.spec.stop_timeout)
        except TimeoutError:
            logger.warning(f"{self.spec.name} ignored SIGTERM for {self.spec.stop_timeout:.0f} s")
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        if left := await proctree.end(below):
            logger.warning(f"{self.spec.name} left {len(left)} process(es) running "
                           f"(pids {', '.join(str(p) for p, _ in left)}): ended them")
        if self.pump:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self.pump, 2)


class Supervisor:
    """Start children in order, keep them running, stop them in reverse order."""

    def __init__(self, specs: Sequence[ChildSpec], secrets: Sequence[str] = (),
                 log_format: str = "text", policy: RestartPolicy = POLICY) -> None:
        scrub = make_scrubber(secrets)
        self.children = [Child(spec, scrub, log_format, policy) for spec in specs]
        self._stopping = asyncio.Event()
        self._foreign: set[int] = set()  # our children before run(): not orphans to end

    def request_stop(self) -> None:
        """Ask :meth:`run` to stop every child (safe from a signal handler)."""
        self._stopping.set()

    async def run(self, on_ready: Callable[[], Awaitable[None]] | None = None) -> int:
        """Run until a stop is requested (signal) or a child keeps crashing."""
        check_ports([c.spec for c in self.children])
        check_programs([c.spec for c in self.children])
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop)
        # orphans of a crashed part (a bot of a dead web app) become ours, not init's
        proctree.become_subreaper()
        self._foreign = set(proctree.children_map().get(os.getpid(), []))
        code = 0
        try:
            for child in self.children:
                if self._stopping.is_set():
                    return 130
                await child.start()
            if on_ready and not self._stopping.is_set():
                await on_ready()
            code = await self._watch()
        finally:
            await self.stop_all()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        return code

    async def _watch(self) -> int:
        try:
            while not self._stopping.is_set():
                await self._wait_exit_or_stop()
                await self.end_orphans()
                for child in self.children:
                    if child.alive or child.restart_task or self._stopping.is_set():
                        continue
                    rc = child.proc.returncode if child.proc else None
                    now = time.monotonic()
                    ran = now - child.started_at
                    delay = (child.restarts.on_exit(child.started_at, now)
                             if child.spec.restart else None)
                    if delay is None:
                        logger.error(f"{child.spec.name} exited (code {rc}); giving up")
                        return 1
                    if delay == 0:
                        logger.warning(f"{child.spec.name} exited (code {rc}) after {ran:.0f} s "
                                       "up; restarting now")
                    else:
                        logger.warning(f"{child.spec.name} exited (code {rc}) {ran:.1f} s after "
                                       f"its start; restarting in {delay:g} s")
                    # one part's backoff never holds up another's restart
                    child.restart_task = asyncio.create_task(self._restart(child, delay))
            return 0
        finally:
            pending = [c.restart_task for c in self.children if c.restart_task]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _restart(self, child: Child, delay: float) -> None:
        try:
            if delay:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
            if not self._stopping.is_set():
                await child.start()
        except StartupError as exc:
            logger.error(str(exc))
        finally:
            child.restart_task = None

    async def _wait_exit_or_stop(self) -> None:
        """Return when a child exits, a stop is requested, or after 0.5 s (orphans)."""
        waits = [asyncio.ensure_future(c.proc.wait()) for c in self.children
                 if c.proc is not None and c.alive]
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait([stop, *waits], timeout=0.5,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (stop, *waits):
                task.cancel()

    async def stop_all(self) -> None:
        """Stop every child, in reverse start order, then any orphan they left us."""
        for child in reversed(self.children):
            await child.stop()
        await self.end_orphans()

    async def end_orphans(self) -> None:
        """End the processes re-parented to us (their part died before stopping them).

        A bot left by a crashed web app would otherwise run on beside the new one's.
        """
        if any(c.spawning for c in self.children):
            return  # a restart's new process is not recorded yet; the next sweep comes soon
        ours = {c.proc.pid for c in self.children if c.proc is not None}
        adopted = [pid for pid in proctree.children_map().get(os.getpid(), [])
                   if pid not in ours and pid not in self._foreign]
        if not adopted:
            return
        procs: list[proctree.Proc] = []
        for pid in adopted:
            if (st := proctree.start_time(pid)) is not None:
                procs += [(pid, st), *proctree.tree(pid)]
        if left := await proctree.end(procs):
            logger.warning(f"ended {len(left)} orphaned process(es) "
                           f"(pids {', '.join(str(p) for p, _ in left)})")
        proctree.reap(adopted)
