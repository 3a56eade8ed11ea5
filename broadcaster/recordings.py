"""Where recordings live and what their files are called.

Shared by the bot's recorder (which writes them) and the web app (which lists them
to the host and serves them).

``<recordings_dir>/<room, made safe>/<UTC start YYYYmmddTHHMMSSZ>[-n].mp4`` (``.part``
while written), with ``.json`` and ``.vtt`` sidecars of the same stem.
"""

from __future__ import annotations

import re
from pathlib import Path

#: every name the recorder gives a file; nothing else is ever served
RECORDING_NAME = re.compile(r"\A\d{8}T\d{6}Z(?:-\d{1,4})?\.(?:mp4|mp4\.part|vtt|json)\Z")


def safe_name(room: str) -> str:
    """Return ``room`` as one path component."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", room).strip("._") or "room"


def recording_dir(recordings_dir: str | Path, room: str) -> Path:
    """Return where the recordings of ``room`` go: ``<recordings_dir>/<room>/``."""
    return Path(recordings_dir) / safe_name(room)
