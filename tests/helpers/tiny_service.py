"""A stand-in child process for supervisor tests: /healthz on a port, optional crash."""

import argparse
import asyncio
import os
import signal
import sys
import time
from pathlib import Path

from aiohttp import web


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("--log", required=True)
    p.add_argument("--crash-once", help="exit 3 after 0.3 s unless this file exists")
    p.add_argument("--ignore-term", action="store_true")
    args = p.parse_args()
    log = Path(args.log)
    with log.open("a") as fh:
        fh.write(f"start {os.getpid()} {time.monotonic()}\n")
    if args.ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    app = web.Application()
    app.router.add_get("/healthz", lambda r: web.json_response({"ok": True}))
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.port).start()
    with log.open("a") as fh:
        fh.write(f"ready {os.getpid()} {time.monotonic()}\n")
    print("secret-value-123456 should be scrubbed", flush=True)
    if args.crash_once and not Path(args.crash_once).exists():
        Path(args.crash_once).touch()
        await asyncio.sleep(0.3)
        sys.exit(3)
    while True:
        await asyncio.sleep(3600)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
