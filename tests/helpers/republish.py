"""Stamped synthetic frames, a viewer that reads the stamps, and a pipeline tap.

For the republisher's tests: frames carry a 16-bit stamp drawn into the picture
(the receive side repeats frames, so distinct stamps are counted, not callbacks)
and LiveKit frame metadata (``frame_id``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from livekit import rtc
from pipecat.frames.frames import Frame, OutputImageRawFrame, SpeechOutputAudioRawFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from broadcaster.config import Settings
from broadcaster.roles import Role, mint_token
from probes.viewer import RoomViewer

BLOCK = 32  # stamp bit size in pixels (survives VP8 at 1.7 Mbps easily)
BITS = 16
BG_LUMA = 100
FLASH_BOX = (slice(-200, None), slice(-200, None))  # bottom-right 200x200
AUDIO_RATE = 48_000
CHUNK = AUDIO_RATE // 100  # 10 ms, as the avatar's audio arrives


# ------------------------------------------------------------------------ frames
def _stamp(y: np.ndarray, value: int) -> None:
    """Draw ``value`` as 16 black/white blocks, and their complement below (a checksum)."""
    for i in range(BITS):
        bit = (value >> i) & 1
        y[0:BLOCK, i * BLOCK : (i + 1) * BLOCK] = 235 if bit else 16
        y[BLOCK : 2 * BLOCK, i * BLOCK : (i + 1) * BLOCK] = 16 if bit else 235


def read_stamp(y: np.ndarray) -> int | None:
    """The stamp in a luma plane (h, w), or None (no valid stamp: slate, garbage)."""
    region = y[: 2 * BLOCK, : BITS * BLOCK].reshape(2, BLOCK, BITS, BLOCK)
    cores = region[:, 8:24, :, 8:24].mean(axis=(1, 3))
    top, bottom = cores[0] > 128, cores[1] > 128
    if np.any(top == bottom) or np.any(np.abs(cores - 128) < 40):
        return None
    return int(sum(1 << i for i in range(BITS) if top[i]))


class FrameMaker:
    """Stamped synthetic frames; only the stamp region changes, so making one is a copy."""

    def __init__(self, w: int, h: int) -> None:
        self.w, self.h = w, h
        self._yuv = np.full(w * h * 3 // 2, 128, np.uint8)
        self._y = self._yuv[: w * h].reshape(h, w)
        self._y[:] = BG_LUMA
        self._y[h // 3 : h // 3 + 40, :] = 160
        self._rgb = np.full((h, w, 3), BG_LUMA, np.uint8)

    def i420(self, value: int, *, flash: bool = False) -> rtc.VideoFrame:
        _stamp(self._y, value)
        self._y[FLASH_BOX] = 235 if flash else BG_LUMA
        return rtc.VideoFrame(self.w, self.h, rtc.VideoBufferType.I420, bytearray(self._yuv.data))

    def rgb(self, value: int) -> OutputImageRawFrame:
        y = self._rgb[: 2 * BLOCK, : BITS * BLOCK, 0].copy()
        _stamp(y, value)
        self._rgb[: 2 * BLOCK, : BITS * BLOCK, :] = y[:, :, None]
        return OutputImageRawFrame(image=self._rgb.tobytes(), size=(self.w, self.h), format="RGB")


def tone(ms: int, freq: float = 440.0, amp: int = 8000, start: int = 0) -> bytes:
    n = AUDIO_RATE * ms // 1000
    t = (np.arange(n) + start) / AUDIO_RATE
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.int16).tobytes()


def speech_chunk(pcm: bytes) -> SpeechOutputAudioRawFrame:
    return SpeechOutputAudioRawFrame(audio=pcm, sample_rate=AUDIO_RATE, num_channels=1)


# ------------------------------------------------------------------------ receiving side
@dataclass
class Seen:
    t: float
    size: tuple[int, int]
    stamp: int | None
    frame_id: int
    slate: bool
    flash: bool


class Subscriber(RoomViewer):
    """A viewer: records every decoded frame and every audio frame with arrival times."""

    def __init__(self) -> None:
        super().__init__(audio_rate=AUDIO_RATE)
        self.video: list[Seen] = []
        self.audio: list[tuple[float, float]] = []  # (t, rms)

    @classmethod
    async def joined(cls, s: Settings, room: str, identity: str = "viewer-1") -> Subscriber:
        """A subscriber in ``room``, connected."""
        sub = cls()
        await sub.join(s.effective_livekit_url, mint_token(s, Role.VIEWER, room, identity))
        return sub

    def on_video(self, event: rtc.VideoFrameEvent) -> None:
        f = event.frame
        y = np.frombuffer(f.data, np.uint8, count=f.width * f.height)
        y = y.reshape(f.height, f.width)
        corner = float(y[-64:, :64].mean())
        self.video.append(Seen(
            t=time.monotonic(), size=(f.width, f.height), stamp=read_stamp(y),
            frame_id=event.metadata.frame_id if event.metadata is not None else 0,
            slate=abs(corner - 39) < 12,
            flash=float(y[FLASH_BOX].mean()) > 180,
        ))

    def on_audio(self, event: rtc.AudioFrameEvent) -> None:
        x = np.frombuffer(event.frame.data, np.int16).astype(np.float64)
        self.audio.append((time.monotonic(), float(np.sqrt((x**2).mean())) if x.size else 0))

    def between(self, t0: float, t1: float) -> list[Seen]:
        return [v for v in self.video if t0 <= v.t < t1]


async def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


class Tap(FrameProcessor):
    """Records frames that come out of the republisher, both directions."""

    def __init__(self) -> None:
        super().__init__()
        self.frames: list[Frame] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        self.frames.append(frame)
        await self.push_frame(frame, direction)
