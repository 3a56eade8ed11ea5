"""A bench viewer: every decoded frame and every 10 ms of audio, with wall-clock times."""

from __future__ import annotations

import asyncio
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from livekit import rtc

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import bench.process_env  # noqa: E402,F401
from probes.viewer import RoomViewer  # noqa: E402

W, H, FPS = 1280, 720, 25
AUDIO_RATE = 48_000
CHUNK = AUDIO_RATE // 100  # 10 ms


def block_rms(pcm: np.ndarray) -> float:
    if pcm.size == 0:
        return 0.0
    x = pcm.astype(np.float32)
    return float(np.sqrt(np.dot(x, x) / x.size))


def level_db(rms: float) -> float:
    return 20 * math.log10(max(rms, 1e-3) / 32768.0)


@dataclass
class VideoRecord:
    """A decoded frame at a bench viewer: receive time, frame metadata, size, mouth."""

    recv_us: int
    frame_id: int
    user_ts: int
    width: int
    height: int
    mouth: float = math.nan


@dataclass
class CaptionRecord:
    """A caption line as a bench viewer completed reading it."""

    recv_us: int
    speaker: str
    segment: str
    seq: int
    final: bool
    text: str


@dataclass
class AudioRecord:
    """10 ms of audio at a bench viewer: receive time and level."""

    recv_us: int
    rms: float


class Receiver(RoomViewer):
    """A LiveKit client that records every decoded video frame and every 10 ms of audio
    of one participant, with wall-clock receive times (µs)."""

    def __init__(self, name: str, *, from_identity: str | None = None,
                 video_track: str | None = None, want_audio: bool = True,
                 mouth_box: tuple[int, int, int, int] | None = None,
                 keep_pcm: bool = False) -> None:
        super().__init__(from_identity=from_identity, video_track=video_track,
                         want_audio=want_audio, audio_rate=AUDIO_RATE)
        self.name = name
        self.mouth_box = mouth_box
        self.video: list[VideoRecord] = []
        self.audio: list[AudioRecord] = []
        self.first_video_us: int | None = None
        self.keep_pcm = keep_pcm
        self.pcm: list[np.ndarray] = []
        """With ``keep_pcm``: every audio frame's samples, one entry per ``audio`` record."""
        self.captions: list[CaptionRecord] = []

    async def join(self, url: str, token: str, *, connect_timeout: float = 20.0) -> None:
        """Connect; caption lines (text streams) are recorded too."""
        from broadcaster.protocol import CAPTION_TOPIC

        self.room.register_text_stream_handler(CAPTION_TOPIC, self._caption)
        await super().join(url, token, connect_timeout=connect_timeout)

    def _caption(self, reader: rtc.TextStreamReader, _sender: str) -> None:
        self.tasks.append(asyncio.create_task(self._read_caption(reader)))

    async def _read_caption(self, reader: rtc.TextStreamReader) -> None:
        from broadcaster.protocol import CAPTION_FINAL_ATTR, CAPTION_SEQ_ATTR, CAPTION_SPEAKER_ATTR

        text = await reader.read_all()
        a = reader.info.attributes or {}
        self.captions.append(CaptionRecord(
            time.time_ns() // 1000, a.get(CAPTION_SPEAKER_ATTR, ""), a.get("lk.segment_id", ""),
            int(a.get(CAPTION_SEQ_ATTR) or 0), a.get(CAPTION_FINAL_ATTR) == "true", text))

    def on_video(self, event: rtc.VideoFrameEvent) -> None:
        recv = time.time_ns() // 1000
        f = event.frame
        md = event.metadata
        rec = VideoRecord(recv, md.frame_id if md is not None else 0,
                          md.user_timestamp if md is not None else 0, f.width, f.height)
        if self.mouth_box is not None:
            rec.mouth = mouth_openness(f, self.mouth_box)
        self.video.append(rec)
        if self.first_video_us is None:
            self.first_video_us = recv

    def on_audio(self, event: rtc.AudioFrameEvent) -> None:
        recv = time.time_ns() // 1000
        pcm = np.frombuffer(event.frame.data, np.int16)
        self.audio.append(AudioRecord(recv, block_rms(pcm)))
        if self.keep_pcm:
            self.pcm.append(pcm.copy())


def mouth_openness(frame: Any, box: tuple[int, int, int, int], dark: int = 70) -> float:
    """Share of dark pixels in the mouth box of a decoded I420 frame (0: closed).

    ``box`` is in 1280x720 pixels and is scaled to the frame's size (a simulcast layer).
    """
    x, y, w, h = box
    sx, sy = frame.width / W, frame.height / H
    x0, y0 = int(x * sx), int(y * sy)
    x1, y1 = max(x0 + 1, int((x + w) * sx)), max(y0 + 1, int((y + h) * sy))
    plane = np.frombuffer(frame.data, np.uint8, count=frame.width * frame.height)
    region = plane.reshape(frame.height, frame.width)[y0:y1, x0:x1]
    return float((region < dark).mean())
