"""Antialiased shapes in a float RGB raster: signed distances and a bounded painter."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from broadcaster.avatar.renderer.colour import BAYER, rgb_to_yuv

Color = tuple[float, float, float]
Alpha = Callable[[np.ndarray, np.ndarray], np.ndarray]
Shade = Callable[[np.ndarray, np.ndarray], np.ndarray]
Box = tuple[float, float, float, float]


class Painter:
    """Float RGB raster of one canvas rectangle; shapes are evaluated only in their bbox."""

    def __init__(self, x0: int, y0: int, x1: int, y1: int) -> None:
        self.x0, self.y0, self.x1, self.y1 = x0, y0, x1, y1
        self.img = np.zeros((y1 - y0, x1 - x0, 3), np.float32)

    def paint(self, bbox: Box, color: Color | Shade, alpha: Alpha) -> None:
        """Blend ``color`` over the raster with coverage ``alpha``, only inside ``bbox``."""
        bx0 = max(self.x0, math.floor(bbox[0]))
        by0 = max(self.y0, math.floor(bbox[1]))
        bx1 = min(self.x1, math.ceil(bbox[2]))
        by1 = min(self.y1, math.ceil(bbox[3]))
        if bx0 >= bx1 or by0 >= by1:
            return
        xs = np.arange(bx0, bx1, dtype=np.float32)[None, :] + 0.5
        ys = np.arange(by0, by1, dtype=np.float32)[:, None] + 0.5
        a = np.broadcast_to(np.clip(alpha(xs, ys), 0.0, 1.0), (by1 - by0, bx1 - bx0))
        col = color(xs, ys) if callable(color) else np.asarray(color, np.float32)
        sub = self.img[by0 - self.y0 : by1 - self.y0, bx0 - self.x0 : bx1 - self.x0]
        sub += (col - sub) * a[..., None]

    def yuv(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Float Y/U/V; Y carries an ordered dither tied to canvas position (no banding)."""
        y, u, v = rgb_to_yuv(np.clip(self.img, 0.0, 1.0))
        rows = np.arange(self.y0, self.y1)[:, None] & 3
        cols = np.arange(self.x0, self.x1)[None, :] & 3
        return y + BAYER[rows, cols], u, v


def ellipse_sd(u: np.ndarray, v: np.ndarray, a: float, b: float) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipse (good near the edge)."""
    k0 = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    k1 = np.sqrt((u / (a * a)) ** 2 + (v / (b * b)) ** 2)
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-6)


def rbox_sd(u: np.ndarray, v: np.ndarray, hw: float, hh: float, r: float) -> np.ndarray:
    """Signed distance to a rounded box centred at the origin."""
    qx = np.abs(u) - hw + r
    qy = np.abs(v) - hh + r
    out = np.sqrt(np.maximum(qx, 0.0) ** 2 + np.maximum(qy, 0.0) ** 2)
    return out + np.minimum(np.maximum(qx, qy), 0.0) - r


def superellipse_sd(u: np.ndarray, v: np.ndarray, a: float, b: float, n: float) -> np.ndarray:
    """Approximate signed distance to |u/a|^n + |v/b|^n = 1 (first-order, via the gradient)."""
    x, y = np.abs(u) / a + 1e-6, np.abs(v) / b + 1e-6
    g = (x**n + y**n) ** (1.0 / n)
    k = g ** (1.0 - n)
    grad = k * np.sqrt((x ** (n - 1.0) / a) ** 2 + (y ** (n - 1.0) / b) ** 2)
    return (g - 1.0) / np.maximum(grad, 1e-6)


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    """Hermite-smoothed 0..1 ramp of ``x`` from ``e0`` to ``e1``."""
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)
