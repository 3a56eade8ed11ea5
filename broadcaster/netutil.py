"""Port and server helpers shared by the supervisor, the CLI, the servers and the tests."""

from __future__ import annotations

import asyncio
import socket
import time

import aiohttp

from broadcaster.config import Settings


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    """A port the OS says is free now (there is a small race; fine for tests)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_taken(port: int, host: str = "127.0.0.1", kind: int = socket.SOCK_STREAM) -> bool:
    """True when something already listens on (or holds) ``host:port``."""
    with socket.socket(socket.AF_INET, kind) as sock:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


async def wait_http_ok(url: str, timeout: float = 30.0, *, proc_alive=None) -> None:
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


def server_limits(settings: Settings) -> dict[str, float]:
    """aiohttp server options for the web app and the avatar service: how long an idle or
    half-sent request may hold a connection (aiohttp's AppRunner default: an hour), and
    how long an unread body is drained after the answer."""
    return {"keepalive_timeout": settings.http_idle_timeout_seconds,
            "lingering_time": min(2.0, settings.http_body_timeout_seconds)}
