"""Where a recording goes and what it is: its path, start time, picture size, options."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from broadcaster.bot.recorder.fmp4 import continuable
from broadcaster.bot.recorder.writer import RecordingOptions
from broadcaster.recordings import RECORDING_NAME, recording_dir, safe_name

__all__ = [
    "RecordingFile",
    "continued_recording",
    "new_recording_path",
    "recording_dir",
    "safe_name",
]


def new_recording_path(directory: Path, started: datetime) -> Path:
    """``<directory>/<UTC start, YYYYmmddTHHMMSSZ>.mp4``, numbered if that exists."""
    stem = started.strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"{stem}.mp4"
    k = 1
    while path.exists() or path.with_name(path.name + ".part").exists():
        path = directory / f"{stem}-{k}.mp4"
        k += 1
    return path


def continued_recording(directory: Path, size: tuple[int, int],
                        ) -> tuple[Path, datetime] | None:
    """Find the webinar's latest file, if a run of this picture ``size`` can go on in it.

    Returns its complete name (``.mp4``; the caller renames a finished one back to
    ``.part`` while it writes) and the time its name gives (the file's time 0).
    """
    try:
        names = sorted(n for n in os.listdir(directory)
                       if RECORDING_NAME.match(n) and n.endswith((".mp4", ".mp4.part")))
    except OSError:
        return None
    if not names:
        return None
    latest = names[-1]
    candidate = directory / latest
    if candidate.is_symlink() or not continuable(candidate, size):
        return None
    stem = latest.split(".", 1)[0].split("-", 1)[0]
    started = datetime.strptime(stem, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return directory / latest.removesuffix(".part"), started


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
    run_offset_s: float = 0.0
    """Seconds from the file's time 0 to this run's (continuous files: earlier runs)."""

    @property
    def partial_path(self) -> Path:
        """Where the file is written until it is complete."""
        return self.path.with_name(self.path.name + ".part")
