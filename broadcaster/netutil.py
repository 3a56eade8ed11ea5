"""Port helpers shared by the supervisor, the CLI and the tests."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable

import aiohttp


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    """Return a port the OS says is free now (there is a small race; fine for tests)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


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
