"""What a result ran on: the commit and package versions, recorded beside every figure.

No side effects on import (unlike bench.figures): the republish benches, which set malloc
per configuration themselves, use it too.
"""

from __future__ import annotations

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
    return {"commit": (git("rev-parse", "--short", "HEAD") or "unknown")
            + ("+dirty" if dirty else ""),
            "packages": {p: pkg(p) for p in PACKAGES},
            "livekit_server": server.read_text().strip() if server.exists() else None}
