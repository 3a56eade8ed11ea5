"""A weak link for one viewer: a network namespace behind a rate-limited veth pair.

``weak_link(rate_kbit=500)`` creates a namespace ``bcw-<pid>-<n>`` and a veth pair
(10.251.<k>.1/30 on the host side, .2 inside), limits what the host sends into it with
``tc qdisc ... tbf rate 500kbit burst 16kbit latency 200ms`` (DESIGN.md: this kernel has
tbf/htb, not netem), and deletes both when the block ends, on failure too. Processes
run inside with ``ip netns exec <name> ...`` (``Link.exec``); a server they must reach
has to listen on and offer ICE candidates for ``Link.host_ip``.

Bounded: at most ``MAX_LINKS`` at once per process, and namespaces left behind by a
killed run (their pid is gone) are deleted before a new one is made. Needs root (or
CAP_NET_ADMIN) and the ``ip``/``tc`` tools; ``unavailable()`` says why not, for a
clear skip.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

PREFIX = "bcw-"
MAX_LINKS = 4
_counter = itertools.count()
_open: set[str] = set()


class NetnsUnavailable(RuntimeError):
    """Namespaces cannot be made here; the message says why."""


@dataclass(frozen=True)
class Link:
    name: str         # namespace
    host_if: str      # veth end on the host (carries the rate limit)
    host_ip: str      # reachable from inside the namespace
    ns_ip: str
    rate_kbit: int

    def exec(self, *argv: str) -> list[str]:
        """argv that runs ``argv`` inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check, timeout=10)


def unavailable() -> str | None:
    """Why weak links cannot be made here, or None when they can."""
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"'{tool}' is not installed (iproute2)"
    if os.geteuid() != 0:
        return "creating network namespaces needs root (CAP_NET_ADMIN)"
    probe = f"{PREFIX}probe-{os.getpid()}"
    res = _run("ip", "netns", "add", probe, check=False)
    if res.returncode != 0:
        return f"'ip netns add' is not permitted here: {res.stderr.strip()}"
    _run("ip", "netns", "del", probe, check=False)
    return None


def cleanup_stale() -> list[str]:
    """Delete namespaces (and their veths) of runs whose process is gone."""
    removed = []
    out = _run("ip", "netns", "list", check=False).stdout
    for line in out.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.fullmatch(rf"{PREFIX}(\d+)-(\d+)", name)
        if not m:
            continue
        pid = int(m.group(1))
        if pid == os.getpid() or os.path.exists(f"/proc/{pid}"):
            continue
        _delete(name, f"bcw{pid % 100000}x{m.group(2)}")
        removed.append(name)
    return removed


def _delete(name: str, host_if: str) -> None:
    _run("ip", "netns", "del", name, check=False)  # takes its veth end, and so the pair
    _run("ip", "link", "del", host_if, check=False)


@contextlib.contextmanager
def weak_link(rate_kbit: int = 500, *, burst: str = "16kbit",
              latency: str = "200ms") -> Iterator[Link]:
    reason = unavailable()
    if reason:
        raise NetnsUnavailable(reason)
    if len(_open) >= MAX_LINKS:
        raise NetnsUnavailable(f"already {MAX_LINKS} weak links open in this process")
    cleanup_stale()
    n = next(_counter)
    pid = os.getpid()
    name = f"{PREFIX}{pid}-{n}"
    host_if, ns_if = f"bcw{pid % 100000}x{n}", f"bcw{pid % 100000}y{n}"
    k = (pid * 8 + n) % 250 + 1  # 10.251.k.0/30: distinct per run and link
    host_ip, ns_ip = f"10.251.{k}.1", f"10.251.{k}.2"
    _open.add(name)
    try:
        for argv in (
            ("ip", "netns", "add", name),
            ("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if),
            ("ip", "link", "set", ns_if, "netns", name),
            ("ip", "addr", "add", f"{host_ip}/30", "dev", host_if),
            ("ip", "link", "set", host_if, "up"),
            ("ip", "-n", name, "addr", "add", f"{ns_ip}/30", "dev", ns_if),
            ("ip", "-n", name, "link", "set", ns_if, "up"),
            ("ip", "-n", name, "link", "set", "lo", "up"),
            ("tc", "qdisc", "add", "dev", host_if, "root", "tbf", "rate", f"{rate_kbit}kbit",
             "burst", burst, "latency", latency),
        ):
            res = _run(*argv, check=False)
            if res.returncode != 0:
                raise NetnsUnavailable(f"{' '.join(argv)}: {res.stderr.strip()}")
        yield Link(name, host_if, host_ip, ns_ip, rate_kbit)
    finally:
        _delete(name, host_if)
        _open.discard(name)


def tc_stats(link: Link) -> dict[str, int]:
    """Bytes/packets sent and dropped by the link's rate limiter so far."""
    out = _run("tc", "-s", "qdisc", "show", "dev", link.host_if, check=False).stdout
    m = re.search(r"Sent (\d+) bytes (\d+) pkt \(dropped (\d+), overlimits (\d+)", out)
    if not m:
        return {}
    return {"bytes": int(m.group(1)), "packets": int(m.group(2)),
            "dropped": int(m.group(3)), "overlimits": int(m.group(4))}
