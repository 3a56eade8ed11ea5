"""Port and server helpers shared by the supervisor, the CLI, the servers and the tests."""

from __future__ import annotations

import asyncio
import ipaddress
import random
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypedDict

import aiohttp

from broadcaster.config import Settings

_EPHEMERAL_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_handed_out: set[int] = set()
# its own generator: tests (hypothesis) reseed the global one, and parallel runs would
# then pick the same sequence
_rng = random.SystemRandom()


def ephemeral_range() -> tuple[int, int]:
    """Return the kernel's range for outgoing local ports (Linux default 32768-60999)."""
    try:
        low, high = (int(v) for v in _EPHEMERAL_FILE.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


def _pick_range() -> tuple[int, int]:
    """Ports to pick from: below the ephemeral range if there is room, else above it."""
    low, high = ephemeral_range()
    if low - 1 - 10000 >= 2000:
        return 10000, low - 1
    return high + 1, 65535


def free_port() -> int:
    """Return a port free now for TCP and UDP on every interface, outside the ephemeral range.

    Why not ``bind(0)``: the kernel hands out the same ephemeral ports to every outgoing
    connection, so a busy test run could take one between the pick and the server's bind.
    Ports handed out once are not handed out again by this process. The port is checked
    for TCP and UDP on all interfaces, so one number serves either.
    """
    low, high = _pick_range()
    for _ in range(500):
        port = _rng.randint(low, high)
        if port in _handed_out:
            continue
        if any(port_taken(port, "0.0.0.0", k) for k in (socket.SOCK_STREAM, socket.SOCK_DGRAM)):
            continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port between {low} and {high}")


def port_taken(port: int, host: str = "127.0.0.1", kind: int = socket.SOCK_STREAM) -> bool:
    """Tell whether something already listens on (or holds) ``host:port``."""
    with socket.socket(socket.AF_INET, kind) as sock:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


async def wait_http_ok(url: str, timeout: float = 30.0, *,  # noqa: ASYNC109
                       proc_alive: Callable[[], bool] | None = None) -> None:
    """Poll ``url`` until it answers 2xx; raise TimeoutError naming the URL."""
    deadline = time.monotonic() + timeout
    last: str = "no answer"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        while time.monotonic() < deadline:
            if proc_alive is not None and not proc_alive():
                raise RuntimeError(f"process exited before {url} became ready")
            try:
                async with http.get(url) as resp:
                    if resp.status < 300:
                        return
                    last = f"HTTP {resp.status}"
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                last = type(exc).__name__
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout:.0f} s ({last})")


class ServerLimits(TypedDict):
    """The aiohttp ``AppRunner`` options :func:`server_limits` sets."""

    keepalive_timeout: float
    lingering_time: float


def server_limits(settings: Settings) -> ServerLimits:
    """Return aiohttp's server options for the web app and the avatar service.

    They bound how long an idle or half-sent request may hold a connection (aiohttp's
    AppRunner default: an hour), and how long an unread body is drained after the answer.
    """
    return {"keepalive_timeout": settings.http_idle_timeout_seconds,
            "lingering_time": min(2.0, settings.http_body_timeout_seconds)}


LOCAL_NAMES = frozenset({"localhost", "localhost."})


def _host_name(host: str) -> str:
    """``Host`` without its port (``[::1]:8080`` → ``::1``), lowercased."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_local_host_header(host: str | None, configured: str = "") -> bool:
    """Tell whether ``Host`` names this machine.

    A loopback address, ``localhost`` or the configured host does; a DNS-rebinding page's
    requests name the attacker's domain instead.
    """
    name = _host_name(host or "")
    if not name:
        return False
    if name in LOCAL_NAMES or (configured and name == configured.lower()):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
