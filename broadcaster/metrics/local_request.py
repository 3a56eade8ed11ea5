"""Whether a request came straight from this machine (the web app's metrics guard).

TODO(issue 11 merge): issue 11 moves this check into broadcaster/web/; drop this
module (and its re-export from broadcaster.metrics) once that is merged.
"""

from __future__ import annotations

import ipaddress
from typing import Any


def is_local_request(remote: str | None, headers: Any) -> bool:
    """Tell a direct loopback connection (a reverse proxy adds X-Forwarded-For / Forwarded)."""
    if not remote or "X-Forwarded-For" in headers or "Forwarded" in headers:
        return False
    try:
        return ipaddress.ip_address(remote.split("%", 1)[0]).is_loopback
    except ValueError:
        return remote == "unix"
