"""BT.601 limited-range YUV (what libwebrtc assumes for I420): conversion and 4:2:0 chroma."""

from __future__ import annotations

import numpy as np


def rgb_to_yuv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BT.601 limited range (what libwebrtc assumes for I420), float planes."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 16.0 + 65.481 * r + 128.553 * g + 24.966 * b
    u = 128.0 - 37.797 * r - 74.203 * g + 112.0 * b
    v = 128.0 + 112.0 * r - 93.786 * g - 18.214 * b
    return y, u, v


BAYER = np.array([[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]]) / 16.0 - 0.47


def to_u8(plane: np.ndarray) -> np.ndarray:
    """Round and clamp a float plane to uint8."""
    return np.clip(np.rint(plane), 0, 255).astype(np.uint8)


def _subsample(plane: np.ndarray, py: int, px: int) -> np.ndarray:
    """2x2 box average of a 4:4:4 plane, blocks starting at (py, px)."""
    n = (plane.shape[0] - py) // 2
    m = (plane.shape[1] - px) // 2
    blocks = plane[py : py + 2 * n, px : px + 2 * m].reshape(n, 2, m, 2)
    return to_u8(blocks.mean(axis=(1, 3)))


Chroma = dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]


def chroma_phases(u: np.ndarray, v: np.ndarray) -> Chroma:
    """U/V subsampled at all four 2x2 phases, keyed (row phase, column phase)."""
    return {
        (py, px): (_subsample(u, py, px), _subsample(v, py, px)) for py in (0, 1) for px in (0, 1)
    }


def i420_to_rgb(buf: np.ndarray, width: int, height: int) -> np.ndarray:
    """HxWx3 uint8 RGB from an I420 buffer (BT.601 limited), for screenshots and tests."""
    buf = np.asarray(buf, dtype=np.uint8).reshape(-1)
    n = width * height
    q = n // 4
    y = buf[:n].reshape(height, width).astype(np.float32) - 16.0
    u = buf[n : n + q].reshape(height // 2, width // 2).astype(np.float32) - 128.0
    v = buf[n + q : n + 2 * q].reshape(height // 2, width // 2).astype(np.float32) - 128.0
    u = u.repeat(2, axis=0).repeat(2, axis=1)
    v = v.repeat(2, axis=0).repeat(2, axis=1)
    y *= 1.164
    rgb = np.empty((height, width, 3), np.float32)
    rgb[..., 0] = y + 1.596 * v
    rgb[..., 1] = y - 0.392 * u - 0.813 * v
    rgb[..., 2] = y + 2.017 * u
    return to_u8(rgb)
