"""pipecat frames as PyAV frames, without copies where the layout allows."""

from __future__ import annotations

from typing import Any

import av
import numpy as np
from pipecat.frames.frames import OutputImageRawFrame

from broadcaster.frames import I420

_PACKED_FORMATS = {"RGB": ("rgb24", 3), "RGBA": ("rgba", 4), "BGRA": ("bgra", 4),
                   "ARGB": ("argb", 4)}


def to_av_frame(frame: OutputImageRawFrame) -> av.VideoFrame | None:
    """Wrap the image's own buffer as a PyAV frame (no copy); None if unsupported.

    I420 with even sizes is wrapped as ``yuv420p`` directly (Y, U, V planes back to
    back, as LiveKit and :class:`I420AvatarFrame` lay them out); odd sizes are copied
    plane by plane. RGB/RGBA/BGRA/ARGB are wrapped too (the encoder's scaler converts
    them, at a cost: I420 is the fast path).
    """
    width, height = frame.size
    if width <= 0 or height <= 0:
        return None
    buf = np.frombuffer(frame.image, np.uint8)
    fmt = frame.format or ""
    if fmt == I420:
        cw, ch = (width + 1) // 2, (height + 1) // 2
        if len(buf) != width * height + 2 * cw * ch:
            return None
        if width % 2 == 0 and height % 2 == 0:
            return av.VideoFrame.from_numpy_buffer(
                buf.reshape(height * 3 // 2, width), format="yuv420p"
            )
        vf = av.VideoFrame(width, height, "yuv420p")
        planes = (
            buf[: width * height].reshape(height, width),
            buf[width * height : width * height + cw * ch].reshape(ch, cw),
            buf[width * height + cw * ch :].reshape(ch, cw),
        )
        for plane, src in zip(vf.planes, planes, strict=True):
            # a VideoPlane is a buffer; PyAV's stubs do not say so
            dst = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)  # type: ignore[call-overload]
            dst[: src.shape[0], : src.shape[1]] = src
        return vf
    packed = _PACKED_FORMATS.get(fmt)
    if packed is None or len(buf) != width * height * packed[1]:
        return None
    return av.VideoFrame.from_numpy_buffer(buf.reshape(height, width, packed[1]),
                                           format=packed[0])


def pcm_mono(frame: Any) -> np.ndarray:
    """int16 mono samples of a pipecat audio frame (channels averaged)."""
    audio = frame.audio
    pcm = np.frombuffer(audio, np.int16, count=len(audio) // 2)
    channels = max(1, int(frame.num_channels or 1))
    if channels > 1:
        pcm = pcm[: len(pcm) // channels * channels].reshape(-1, channels).mean(axis=1)
    return pcm
