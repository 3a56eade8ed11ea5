"""Where a webinar's rehearsal leaves the presenter's way in.

Written by the rehearsal process, read by the web app:
``<state_dir>/rehearsals/<room>.json``, 0600, holding ``{"url", "token"}`` of the
avatar's own room.
"""

from __future__ import annotations

from pathlib import Path

from broadcaster.config import Settings
from broadcaster.recordings import safe_name


def rehearsal_file(settings: Settings, room: str) -> Path:
    """Return where the rehearsal of ``room`` leaves the presenter's way in."""
    return Path(settings.state_dir) / "rehearsals" / f"{safe_name(room)}.json"
