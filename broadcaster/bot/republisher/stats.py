"""The republisher's counters, read by the bot's metrics at scrape time."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RepublisherStats:
    """Counters for metrics (plain attributes, read them any time)."""

    frames_in: int = 0
    frames_published: int = 0
    """Real frames captured (not repeats or slates)."""
    frames_repeated: int = 0
    frames_slate: int = 0
    frames_dropped: int = 0
    """Frames replaced by a newer one before their turn (backlog, faster than fps)."""
    frames_unsupported: int = 0
    audio_frames_in: int = 0
    audio_frames_published: int = 0
    audio_frames_dropped: int = 0
    """Continuous-speech frames dropped to keep audio within ``max_audio_lag`` of video."""
    audio_frames_muted: int = 0
    """Avatar speech frames published as silence: the tail of an interrupted answer."""
    last_hop_ms: float = 0.0
    """Last real frame: entry into the republisher -> capture_frame returned."""
    last_source_age_ms: float = 0.0
    """Last I420AvatarFrame: decoded frame reached Python (avatar client) -> captured;
    the whole in-process hop, pipeline transit included."""
    last_audio_lag_ms: float = 0.0
    """Last audio frame: entry -> handed to LiveKit, plus what LiveKit still queues."""
    source_switches: int = 0
    """Times the frames' source (avatar session) changed from one frame to the next."""
    last_switch_gap_s: float = 0.0
    """Seconds between the old source's last frame and the new one's first, at the last
    switch: how long the picture was held."""
    speaking: bool = False
    """What is published now is the avatar's speech (the keeper rolls sessions at a pause)."""
    stalled: bool = False
    """The source has not delivered a frame for ``slate_after`` seconds (slate shown)."""
    stalls: int = 0
