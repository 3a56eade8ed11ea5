"""Process trees from /proc: what a stopping process leaves behind, and ending it.

A part of the stack may start processes of its own in new sessions (the web app starts
one bot per webinar); when that part dies or is killed before it stopped them, they
live on with init as their parent, holding ports, avatar sessions and CPU. The
supervisor therefore notes each child's whole tree before stopping it, ends whatever
of it outlives the child, and makes itself a "child subreaper" so orphans of a crashed
part are re-parented to it (and ended with the rest) instead of escaping to init.

Processes are named by pid *and* start time, so a pid reused meanwhile is never hit.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import time
from pathlib import Path

#: (pid, start time in clock ticks since boot): one process, even across pid reuse
Proc = tuple[int, int]

PR_SET_CHILD_SUBREAPER = 36


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_time(pid: int) -> int | None:
    """Return the process's start time (clock ticks since boot), or None when it is gone."""
    fields = _stat(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def alive(proc: Proc) -> bool:
    """Whether this very process still runs (a zombie does not)."""
    fields = _stat(proc[0])
    return fields is not None and fields[0] != "Z" and int(fields[19]) == proc[1]


def children_map() -> dict[int, list[int]]:
    """Map each parent pid to its children's pids, from one pass over /proc."""
    kids: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))):
            kids.setdefault(int(fields[1]), []).append(int(entry.name))
    return kids


def tree(root: int) -> list[Proc]:
    """Every process below ``root`` (not ``root`` itself), with its start time."""
    kids = children_map()
    out: list[Proc] = []
    todo = list(kids.get(root, []))
    while todo:
        pid = todo.pop()
        if (st := start_time(pid)) is not None:
            out.append((pid, st))
        todo.extend(kids.get(pid, []))
    return out


def become_subreaper() -> bool:
    """Make orphans of our descendants our children (Linux); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def reap(pids: list[int]) -> None:
    """Collect the exit status of those of ``pids`` that are our exited children."""
    for pid in pids:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)


async def end(procs: list[Proc], grace: float = 5.0) -> list[Proc]:
    """End those of ``procs`` still running: SIGTERM, SIGKILL after ``grace`` seconds.

    Returns the ones that had to be ended (for the log).
    """
    left = [p for p in procs if alive(p)]
    for pid, _ in left:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(alive(p) for p in left) and time.monotonic() < deadline:
        reap([pid for pid, _ in left])
        await asyncio.sleep(0.05)
    for pid, _ in (p for p in left if alive(p)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 2.0
    while any(alive(p) for p in left) and time.monotonic() < deadline:
        reap([pid for pid, _ in left])
        await asyncio.sleep(0.05)
    reap([pid for pid, _ in left])
    return left
