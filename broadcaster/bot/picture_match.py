"""How far apart two avatar pictures are: the measure a rollover switches on.

The mean absolute luma difference over a sparse grid of pixels (every 9th row, every
7th column: ~15,000 samples of a 720p frame, ~0.1 ms), the same measure the viewer-side
probe uses for the change between consecutive frames (probes/stage_watch.py). The idle
avatar's sway of one pixel moves it by ~0.3-0.9; two encodes of the same picture differ
by ~0.15; a new stream's first, blurred frames by ~1.
"""

from __future__ import annotations

import numpy as np
from livekit import rtc

ROW_STEP, COL_STEP = 9, 7
#: two pictures this close are the same picture through two encoders (measured 0.15-0.18
#: between two sessions of the local avatar; one pixel of sway moves it by 0.3-0.9)
SAME_PICTURE = 0.25


def luma_grid(y: np.ndarray) -> np.ndarray:
    """Return the sparse grid of a luma plane (height x width), int16 so differences do not wrap."""
    return y[::ROW_STEP, ::COL_STEP].astype(np.int16)


def luma_sample(frame: rtc.VideoFrame) -> np.ndarray:
    """Return the sparse luma grid of a frame."""
    if frame.type != rtc.VideoBufferType.I420:
        frame = frame.convert(rtc.VideoBufferType.I420)
    y = np.frombuffer(frame.data, np.uint8, count=frame.width * frame.height)
    return luma_grid(y.reshape(frame.height, frame.width))


def grids_apart(a: np.ndarray, b: np.ndarray) -> float | None:
    """Mean |Δ luma| (0-255) between two grids; None when their shapes differ."""
    if a.shape != b.shape:
        return None
    return float(np.abs(a - b).mean())


def pictures_apart(a: rtc.VideoFrame, b: rtc.VideoFrame) -> float | None:
    """Mean |Δ luma| (0-255) between two frames; None when their sizes differ."""
    if (a.width, a.height) != (b.width, b.height):
        return None
    return grids_apart(luma_sample(a), luma_sample(b))
