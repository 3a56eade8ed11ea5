"""The recorder's counters, written to each recording's JSON sidecar."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RecorderStats:
    """Counters (plain attributes; written by the event loop and the worker thread)."""

    video_frames_in: int = 0
    video_frames_encoded: int = 0
    """Frames handed to the encoder (the final hold frame included)."""
    video_frames_dropped_rate: int = 0
    """Arrived faster than ``fps`` (more than half a frame ahead of the next slot)."""
    video_frames_dropped_backlog: int = 0
    """The encoder had fallen ``max_backlog_seconds`` behind: dropped, never queued."""
    video_frames_unsupported: int = 0
    video_frames_rescaled: int = 0
    """Frames whose size differed from the first frame's (scaled to it)."""
    video_gaps: int = 0
    """Times the video grid was re-anchored after a pause (the last frame is held)."""
    audio_chunks_in: int = 0
    audio_chunks_before_start: int = 0
    """Audio before the first video frame (time 0 of the file): not recorded."""
    audio_chunks_dropped_backlog: int = 0
    audio_chunks_dropped_lead: int = 0
    """Live audio arriving faster than real time by more than ``max_audio_lead``."""
    audio_realigned: int = 0
    """Times a live audio source's timeline was moved back onto its arrivals."""
    audio_late_ms: float = 0.0
    """Audio that arrived after its part of the timeline had been encoded (lost)."""
    queue_high_water: int = 0
    encode_ms_total: float = 0.0
    """Worker wall time spent converting + encoding + muxing video frames."""
    encode_ms_max: float = 0.0
    duration_s: float = 0.0
    size_bytes: int = 0
    error: str | None = None

    @property
    def encode_ms_per_frame(self) -> float:
        """Mean worker time per encoded video frame."""
        frames = self.video_frames_encoded
        return self.encode_ms_total / frames if frames else 0.0
