"""The presenter as antialiased shapes in canvas pixels: coordinates and the drawing order.

Geometry is in head units (1 unit = 1 px at scale 1; origin at the head's centre, y
down); the head tilts about the neck for the listening pose. The parts are drawn by
:mod:`~broadcaster.avatar.renderer.figure` and :mod:`~broadcaster.avatar.renderer.features`.
"""

from __future__ import annotations

import math

import numpy as np

from broadcaster.avatar.renderer import features, figure
from broadcaster.avatar.renderer.raster import Box, Painter
from broadcaster.avatar.renderer.style import (
    EYE_RX,
    EYE_RY,
    EYE_X,
    EYE_Y,
    MOUTH_HW,
    MOUTH_Y,
    PIVOT_Y,
    Pose,
)


class Scene:
    """The presenter as a set of antialiased shapes, in canvas pixel coordinates."""

    def __init__(self, cw: int, ch: int, cx: float, cy: float, scale: float, pose: Pose) -> None:
        self.cw, self.ch, self.cx, self.cy, self.s = cw, ch, cx, cy, scale
        self.pose = pose
        th = math.radians(pose.tilt_deg)
        self.cos, self.sin = math.cos(th), math.sin(th)

    # coordinate helpers ------------------------------------------------
    def aa(self, d: np.ndarray) -> np.ndarray:
        """Coverage from a signed distance in head units (one-pixel soft edge)."""
        return np.clip(0.5 - d * self.s, 0.0, 1.0)

    def body(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map canvas pixels to body units (origin at the head's centre)."""
        return (xs - self.cx) / self.s, (ys - self.cy) / self.s

    def head(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map canvas pixels to head units, the tilt about the neck undone."""
        bx, by = self.body(xs, ys)
        by = by - PIVOT_Y
        u = self.cos * bx + self.sin * by
        v = -self.sin * bx + self.cos * by + PIVOT_Y
        return u, v

    def bbox_body(self, u0: float, v0: float, u1: float, v1: float) -> Box:
        """Map a body-unit box to canvas pixels, with a 2 px margin."""
        s = self.s
        return (
            self.cx + u0 * s - 2,
            self.cy + v0 * s - 2,
            self.cx + u1 * s + 2,
            self.cy + v1 * s + 2,
        )

    def bbox_head(self, u0: float, v0: float, u1: float, v1: float) -> Box:
        """Map a head-unit box to the canvas box that holds it at the pose's tilt."""
        pts = []
        for u in (u0, u1):
            for v in (v0, v1):
                vv = v - PIVOT_Y
                pts.append((self.cos * u - self.sin * vv, self.sin * u + self.cos * vv + PIVOT_Y))
        xs = [p[0] for p in pts]
        ys = [p[1] for p in pts]
        return self.bbox_body(min(xs), min(ys), max(xs), max(ys))

    # the drawing -------------------------------------------------------
    def draw(self, p: Painter, blink: float, mouth: float) -> None:
        """Paint everything that intersects the painter's rectangle."""
        figure.background(self, p)
        if self.pose.halo:
            figure.halo(self, p)
        figure.body(self, p)
        features.head(self, p)
        features.eyes(self, p, blink)
        features.mouth(self, p, mouth)

    def eye_rect_head(self) -> Box:
        """Head-unit box that contains every blink level of both eyes."""
        ex, ey = EYE_X + EYE_RX + 5, EYE_RY + 5
        return (-ex, EYE_Y - ey, ex, EYE_Y + ey)

    def mouth_rect_head(self) -> Box:
        """Head-unit box that contains every opening of the mouth."""
        return (-MOUTH_HW - 8, MOUTH_Y - 18, MOUTH_HW + 8, MOUTH_Y + 40)
