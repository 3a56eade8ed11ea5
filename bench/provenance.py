"""What a result was measured on: the commit and the versions of the parts that matter."""

from __future__ import annotations

import re
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("livekit", "livekit-api", "pipecat-ai", "av", "numpy")


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def _go_module(name: str) -> str | None:
    try:
        text = (ROOT / "bench" / "loadviewers" / "go.mod").read_text()
    except OSError:
        return None
    m = re.search(rf"^\s*{re.escape(name)} (\S+)", text, re.M)
    return m.group(1) if m else None


def provenance() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    try:
        versions["livekit-server"] = (ROOT / ".tools" / "bin" / "livekit-server.version"
                                      ).read_text().strip()
    except OSError:
        versions["livekit-server"] = None
    versions["server-sdk-go"] = _go_module("github.com/livekit/server-sdk-go/v2")
    try:
        out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True,
                             check=False).stdout
        m = re.search(r"v=(\S+)", out)
        versions["redis-server"] = m.group(1) if m else None
    except OSError:
        versions["redis-server"] = None
    return {"commit": _git("rev-parse", "--short=12", "HEAD") or None,
            "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
            "versions": versions}
