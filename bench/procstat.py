"""CPU of named processes from /proc, sampled at the edges of a measuring window.

The capacity benches run the stack in child processes (``broadcaster up``: its
livekit-server, avatar service, web app and the bot the web app starts); this module
finds them by command line under a root pid and turns two readings of
``utime + stime`` into cores used (1.0 = one core busy for the whole window).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")

#: part name -> test on a process's argv (first match wins)
PARTS: dict[str, Callable[[list[str]], bool]] = {
    "sfu": lambda a: bool(a) and Path(a[0]).name == "livekit-server",
    "bot": lambda a: "broadcaster.bot" in a or a[-3:-1] == ["serve", "bot"],
    "avatar": lambda a: a[-2:] == ["serve", "avatar"],
    "web": lambda a: a[-2:] == ["serve", "web"],
    "redis": lambda a: bool(a) and Path(a[0]).name == "redis-server",
    "loadviewers": lambda a: bool(a) and Path(a[0]).name == "loadviewers",
    "publisher": lambda a: "bench.plain_publisher" in a,
}


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of ``pid`` in seconds, or None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory(pid: int) -> tuple[float, int, int, float] | None:
    """RSS (MB), open files, threads and anonymous RSS (MB: heap, not mapped files) of
    ``pid``, or None when it is gone: what the soak and the faults bench watch grow."""
    try:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        rss = int(next(x for x in status if x.startswith("VmRSS")).split()[1]) / 1024
        anon = int(next(x for x in status if x.startswith("RssAnon")).split()[1]) / 1024
        threads = int(next(x for x in status if x.startswith("Threads")).split()[1])
        files = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, StopIteration, ValueError):
        return None
    return rss, files, threads, anon


def argv(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [p.decode(errors="replace") for p in raw.split(b"\0") if p]


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def descendants(root: int) -> list[int]:
    kids = _children()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def classify(pids: list[int]) -> dict[str, int]:
    """part name -> pid for the processes among ``pids`` that match a part."""
    found: dict[str, int] = {}
    for pid in pids:
        a = argv(pid)
        for name, test in PARTS.items():
            if name not in found and a and test(a):
                found[name] = pid
                break
    return found


@dataclass
class Reading:
    wall: float
    cpu: dict[str, float | None]


def read(parts: dict[str, int]) -> Reading:
    return Reading(time.monotonic(), {n: cpu_seconds(p) for n, p in parts.items()})


def cores(a: Reading, b: Reading) -> dict[str, float | None]:
    """Cores used by each part between two readings (None: not running throughout)."""
    wall = max(b.wall - a.wall, 1e-9)
    out: dict[str, float | None] = {}
    for name, start in a.cpu.items():
        end = b.cpu.get(name)
        out[name] = None if start is None or end is None else round((end - start) / wall, 4)
    return out


def box_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, for the box's own load."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    vals = [int(v) for v in first]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return float(sum(vals) - idle), float(sum(vals))


def box_cores(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Cores busy on the whole machine between two ``box_busy`` readings."""
    total = max(b[1] - a[1], 1e-9)
    return round((b[0] - a[0]) / total * (os.cpu_count() or 1), 3)
