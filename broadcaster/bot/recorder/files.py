"""Where a recording goes and what it is: its path, start time, picture size, options."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from broadcaster.bot.recorder.writer import RecordingOptions


def safe_name(room: str) -> str:
    """``room`` as one path component."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", room).strip("._") or "room"


def recording_dir(recordings_dir: str | Path, room: str) -> Path:
    """Where the recordings of ``room`` go: ``<recordings_dir>/<room>/``."""
    return Path(recordings_dir) / safe_name(room)


def new_recording_path(directory: Path, started: datetime) -> Path:
    """``<directory>/<UTC start, YYYYmmddTHHMMSSZ>.mp4``, numbered if that exists."""
    stem = started.strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"{stem}.mp4"
    k = 1
    while path.exists() or path.with_name(path.name + ".part").exists():
        path = directory / f"{stem}-{k}.mp4"
        k += 1
    return path


@dataclass(frozen=True)
class RecordingFile:
    """One recording: written to :attr:`partial_path`, renamed to :attr:`path` when complete."""

    path: Path
    started_at: datetime
    """Wall-clock (UTC) time of the file's time 0."""
    size: tuple[int, int]
    """The picture size (the first frame's, rounded down to even)."""
    options: RecordingOptions
    captions_path: Path | None = None
    """The session's captions.jsonl, for the WebVTT sidecar."""

    @property
    def partial_path(self) -> Path:
        """Where the file is written until it is complete."""
        return self.path.with_name(self.path.name + ".part")
