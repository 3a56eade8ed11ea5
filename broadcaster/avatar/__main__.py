"""``python -m broadcaster.avatar``: run the local avatar service with Settings.load()."""

from __future__ import annotations

import asyncio
import contextlib
import signal

from broadcaster.avatar.app import serve
from broadcaster.config import Settings


async def _main() -> None:
    task = asyncio.create_task(serve(Settings.load()))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


if __name__ == "__main__":
    asyncio.run(_main())
