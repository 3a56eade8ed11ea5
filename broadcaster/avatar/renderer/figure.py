"""The presenter's surroundings and body: background, listening halo, torso, shirt, neck."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from broadcaster.avatar.renderer.raster import (
    Alpha,
    Painter,
    ellipse_sd,
    smoothstep,
    superellipse_sd,
)
from broadcaster.avatar.renderer.style import JACKET, JACKET_DARK, LISTEN, SHIRT, SKIN_SHADE

if TYPE_CHECKING:
    from broadcaster.avatar.renderer.scene import Scene


def background(sc: Scene, p: Painter) -> None:
    """Paint the lit backdrop with its vignette."""
    top = np.array((0.85, 0.90, 0.95), np.float32)
    bottom = np.array((0.50, 0.62, 0.77), np.float32)
    glow = np.array((1.0, 0.97, 0.92), np.float32)
    ch, cw, cx, cy, s = sc.ch, sc.cw, sc.cx, sc.cy, sc.s

    def shade(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        t = (ys / ch)[..., None]
        col = top + (bottom - top) * t
        r2 = ((xs - cx) / (260 * s)) ** 2 + ((ys - cy + 20 * s) / (300 * s)) ** 2
        g = (0.35 * np.exp(-r2))[..., None]
        vig = ((xs - cw / 2) / (cw * 0.75)) ** 2 + ((ys - ch / 2) / (ch * 0.9)) ** 2
        return (col + (glow - col) * g) * (1.0 - 0.18 * vig)[..., None]

    p.paint((0, 0, cw, ch), shade, lambda xs, ys: np.ones((1, 1), np.float32))


def halo(sc: Scene, p: Painter) -> None:
    """Paint the listening halo around the presenter."""
    rx, ry = 168.0, 196.0

    def ring(width: float, peak: float) -> Alpha:
        def a(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
            u, v = sc.body(xs, ys)
            d = np.abs(ellipse_sd(u, v + 12, rx, ry))
            return peak * np.clip(1.0 - d / width, 0.0, 1.0) ** 1.5

        return a

    box = sc.bbox_body(-rx - 30, -ry - 42, rx + 30, ry + 18)
    p.paint(box, LISTEN, ring(26.0, 0.35))

    def line(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        u, v = sc.body(xs, ys)
        return sc.aa(np.abs(ellipse_sd(u, v + 12, rx, ry)) - 3.0)

    p.paint(box, LISTEN, line)


def body(sc: Scene, p: Painter) -> None:
    """Paint the jacket, shirt, lapels, collar and neck."""
    top = 212.0  # shoulder line next to the neck
    centre = top + 250.0

    def torso_sd(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        d = superellipse_sd(u, v - centre, 300.0, 250.0, 3.0)
        return np.where(v > centre, np.abs(u) - 300.0, d)

    def torso(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        return sc.aa(torso_sd(*sc.body(xs, ys)))

    def jacket(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        u, v = sc.body(xs, ys)
        shade = 1.0 - 0.22 * smoothstep(170, 300, np.abs(u)) - 0.1 * smoothstep(250, 650, v)
        return np.asarray(JACKET, np.float32) * shade[..., None]

    p.paint(sc.bbox_body(-305, top - 5, 305, 5000), jacket, torso)

    def vee(half_top: float, slope: float) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        def d(u: np.ndarray, v: np.ndarray) -> np.ndarray:
            return np.abs(u) - np.where(v < top, half_top, half_top - (v - top) * slope)

        return d

    shirt_d = vee(84.0, 0.45)
    skin_d = vee(44.0, 0.85)

    def shirt(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        u, v = sc.body(xs, ys)
        band = np.maximum(np.abs(u) - 62.0, top - 16.0 + 0.5 * (np.abs(u) - 44.0) - v)
        inside = np.minimum(torso_sd(u, v), band)  # under the jacket, or the collar
        return sc.aa(np.maximum(shirt_d(u, v), inside))

    p.paint(sc.bbox_body(-95, top - 20, 95, 420), SHIRT, shirt)

    def lapel(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        u, v = sc.body(xs, ys)
        return 0.75 * sc.aa(np.maximum(np.abs(shirt_d(u, v) - 4.0) - 2.5, torso_sd(u, v)))

    p.paint(sc.bbox_body(-100, top - 20, 100, 420), JACKET_DARK, lapel)

    def collar(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        u, v = sc.body(xs, ys)
        return 0.45 * sc.aa(np.maximum(np.abs(skin_d(u, v) + 3.0) - 3.0, top - 18.0 - v))

    def neck(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        u, v = sc.body(xs, ys)
        return sc.aa(np.maximum(skin_d(u, v), 60.0 - v))

    def neck_col(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        u, v = sc.body(xs, ys)
        k = 0.80 + 0.20 * smoothstep(100.0, 175.0, v)  # darker under the chin
        return np.asarray(SKIN_SHADE, np.float32) * k[..., None]

    p.paint(sc.bbox_body(-100, top - 20, 100, 320), (0.80, 0.82, 0.86), collar)
    p.paint(sc.bbox_body(-50, 55, 50, top + 60), neck_col, neck)

