"""What a result ran on: the commit and package versions, recorded beside every figure.

No side effects on import (unlike bench.figures): the republish benches, which set malloc
per configuration themselves, use it too.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

#: the packages whose versions a figure depends on (recorded with every result)
PACKAGES = ("livekit", "livekit-api", "pipecat-ai", "aiohttp", "numpy", "av")


def provenance() -> dict[str, Any]:
    """The commit (``+dirty`` when the measured code had local edits) and versions run on."""
    from importlib.metadata import PackageNotFoundError, version

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip()

    def pkg(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    dirty = bool(git("status", "--porcelain", "--", "broadcaster", "bench", "probes",
                     ":!bench/results"))
    server = ROOT / ".tools" / "bin" / "livekit-server.version"
    livekit_server = server.read_text().strip() if server.exists() else None
    packages = {p: pkg(p) for p in PACKAGES}
    return {"commit": (git("rev-parse", "--short", "HEAD") or "unknown")
            + ("+dirty" if dirty else ""),
            "packages": packages,
            "livekit_server": livekit_server,
            "dirty": dirty,
            # the scale benches' stamp (issue 14): also the Go load tool and Redis
            "versions": {**packages, "livekit-server": livekit_server,
                         "server-sdk-go": _go_module("github.com/livekit/server-sdk-go/v2"),
                         "redis-server": _redis_version()}}


def _go_module(name: str) -> str | None:
    try:
        text = (ROOT / "bench" / "loadviewers" / "go.mod").read_text()
    except OSError:
        return None
    m = re.search(rf"^\s*{re.escape(name)} (\S+)", text, re.M)
    return m.group(1) if m else None


def _redis_version() -> str | None:
    try:
        out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True,
                             check=False).stdout
    except OSError:
        return None
    m = re.search(r"v=(\S+)", out)
    return m.group(1) if m else None
