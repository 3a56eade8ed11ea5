"""Where a recording goes and what it is: its path, start time, picture size, options."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from broadcaster.bot.recorder.writer import RecordingOptions
from broadcaster.recordings import recording_dir, safe_name

__all__ = ["RecordingFile", "new_recording_path", "recording_dir", "safe_name"]


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
