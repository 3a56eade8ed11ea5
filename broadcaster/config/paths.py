"""Where broadcaster's files are, and the fixed names and URLs its settings build on."""

from __future__ import annotations

import ipaddress
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # broadcaster/
DATA_DIR = PACKAGE_DIR / "data"
"""Runtime data shipped inside the package, so a plain ``pip install .`` has it too."""


def _project_root() -> Path:
    """Return the checkout this package runs from, else the working directory.

    A checkout keeps its tools (``.tools``: livekit-server, livekit-client), state
    (``.state``) and recordings beside the code; an installed package keeps them
    where it is run from (the container image's ``/app``).
    """
    checkout = PACKAGE_DIR.parent
    return checkout if (checkout / "pyproject.toml").is_file() else Path.cwd()


PROJECT_ROOT = _project_root()
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
HEYGEN_API_URL = "https://api.liveavatar.com/v1"
HEYGEN_SANDBOX_AVATAR_ID = "dd73ea75-1218-4ef3-92ce-606d5f7fbc0a"
LOCAL_AVATAR_ID = "local-presenter"
WEBHOOK_PATH = "/api/livekit/webhook"  # the web app's endpoint for livekit-server's events


def http_url(ws_url: str) -> str:
    """Turn a LiveKit ``ws(s)://`` URL into the same server's ``http(s)://`` URL."""
    return ws_url.replace("wss://", "https://", 1).replace("ws://", "http://", 1)
