"""Start-up retries for servers on "free" ports.

Servers here get ports that were free a moment before (``free_port``); on a busy
machine (hundreds of load-viewer connections on ephemeral ports) livekit-server
sometimes finds one taken ("bind: address already in use") and exits at start. A bench
then starts over with fresh ports instead of failing.
"""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def port_clash(exc: BaseException, logs: list[Path] | None = None) -> bool:
    """The start failed because a port was taken (said by the error or a server log).

    livekit-server says "address already in use"; the supervisor's own check "is already in use".
    """
    if "already in use" in str(exc):
        return True
    for log in logs or []:
        try:
            if "already in use" in log.read_text(errors="replace")[-4000:]:
                return True
        except OSError:
            continue
    return False


def recent_server_logs() -> list[Path]:
    """livekit.log of the newest bench state directories (``fresh_settings``' tmp dirs)."""
    dirs = sorted(Path(tempfile.gettempdir()).glob("bench-*"), key=lambda p: p.stat().st_mtime)
    return [d / "livekit.log" for d in dirs[-2:]]


async def with_fresh_ports(run: Callable[[], Awaitable[T]], *, attempts: int = 3,
                           logs: Callable[[], list[Path]] | None = None) -> T:
    """``await run()``, again (with new ports: ``run`` picks them) after a port clash."""
    for attempt in range(1, attempts + 1):
        try:
            return await run()
        except RuntimeError as exc:
            if attempt == attempts or not port_clash(exc, logs() if logs else None):
                raise
            print(f"a port was taken while starting (attempt {attempt}); new ports", flush=True)
    raise AssertionError("unreachable")
