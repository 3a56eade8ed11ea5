"""The files next to a finished recording.

``<name>.json`` says what, when and the counters; ``<name>.vtt`` holds the session's
captions within the recording, as WebVTT subtitles.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import NamedTuple

from loguru import logger

from broadcaster.bot.recorder.files import RecordingFile
from broadcaster.bot.recorder.mixer import AUDIO_RATE
from broadcaster.bot.recorder.stats import RecorderStats


class Cue(NamedTuple):
    """One caption line: seconds into the recording, "speaker: text"."""

    at: float
    text: str


def write_sidecars(rec: RecordingFile, duration: float, stats: RecorderStats,
                   owner: object = "recorder") -> None:
    """Write the JSON sidecar and, when captions fall within it, the WebVTT file.

    Sidecars are a convenience: a failure is logged, never raised.
    """
    start = rec.started_at
    options = rec.options
    info = {
        "file": rec.path.name,
        "started_at": start.isoformat(timespec="milliseconds"),
        "ended_at": (start + timedelta(seconds=duration)).isoformat(timespec="milliseconds"),
        "duration_s": duration,
        "video": {"codec": "h264", "width": rec.size[0], "height": rec.size[1],
                  "fps": options.fps, "preset": options.preset, "crf": options.crf},
        "audio": {"codec": "aac", "sample_rate": AUDIO_RATE, "channels": 1,
                  "bitrate": options.audio_bitrate},
        "captions": str(rec.captions_path) if rec.captions_path else None,
        "stats": asdict(stats),
    }
    try:
        cues = caption_cues(rec.captions_path, start, duration)
        if cues:
            vtt = rec.path.with_suffix(".vtt")
            _write_private(vtt, webvtt(cues, duration))
            info["subtitles"] = vtt.name
        _write_private(rec.path.with_suffix(".json"), json.dumps(info, indent=2) + "\n")
    except Exception as e:
        logger.warning(f"{owner}: could not write the sidecar files: {e}")


def caption_cues(path: Path | None, start: datetime, duration: float) -> list[Cue]:
    """Return the caption lines of ``path`` (captions.jsonl) within the recording."""
    if path is None or not path.exists():
        return []
    cues = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
            at = (datetime.fromisoformat(entry["time"]) - start).total_seconds()
            text = str(entry["text"]).strip()
        except (ValueError, KeyError, TypeError):
            continue
        if 0 <= at <= duration and text:
            cues.append(Cue(at, f"{entry.get('speaker') or entry.get('source')}: {text}"))
    return sorted(cues)


def vtt_time(seconds: float) -> str:
    """``HH:MM:SS.mmm``."""
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def webvtt(cues: list[Cue], duration: float, hold: float = 5.0) -> str:
    """WebVTT text: each cue shown until the next one (at most ``hold`` seconds)."""
    out = ["WEBVTT", ""]
    for i, (at, text) in enumerate(cues):
        end = min(at + hold, cues[i + 1].at if i + 1 < len(cues) else duration)
        out += [f"{vtt_time(at)} --> {vtt_time(max(end, at + 0.5))}", text, ""]
    return "\n".join(out)


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, readable by its owner only (captions quote people)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
