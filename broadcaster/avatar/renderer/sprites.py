"""Precomputed layers pasted into a frame: opaque sprites with chroma for every 2x2 phase."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from broadcaster.avatar.renderer.colour import Chroma, chroma_phases, to_u8
from broadcaster.avatar.renderer.raster import Box, Painter


@dataclass
class Sprite:
    """Opaque patch in canvas coordinates (even origin), with chroma for both phases per axis."""

    x0: int
    y0: int
    y: np.ndarray
    chroma: Chroma

    @classmethod
    def from_painter(cls, p: Painter) -> Sprite:
        """Make a sprite of what a painter drew."""
        y, u, v = p.yuv()
        return cls(p.x0, p.y0, to_u8(y), chroma_phases(u, v))

    def paste(self, yp: np.ndarray, up: np.ndarray, vp: np.ndarray, oy: int, ox: int) -> None:
        """Copy the sprite into the frame planes, the frame's window at (``oy``, ``ox``)."""
        ty, tx = self.y0 - oy, self.x0 - ox
        h, w = self.y.shape
        yp[ty : ty + h, tx : tx + w] = self.y
        py, px = oy & 1, ox & 1
        cu, cv = self.chroma[(py, px)]
        cy, cx = (self.y0 + py - oy) // 2, (self.x0 + px - ox) // 2
        ch, cw = cu.shape
        up[cy : cy + ch, cx : cx + cw] = cu
        vp[cy : cy + ch, cx : cx + cw] = cv


@dataclass
class Canvas:
    """One pose: the static frame (with margin) plus its eye and mouth sprites."""

    y: np.ndarray
    chroma: Chroma
    eyes: list[Sprite]
    mouths: list[Sprite]


def even_rect(box: Box, cw: int, ch: int) -> tuple[int, int, int, int]:
    """Snap a float box outwards to even integers (plus a 2 px margin), inside the canvas."""
    x0 = max(0, (math.floor(box[0]) - 2) & ~1)
    y0 = max(0, (math.floor(box[1]) - 2) & ~1)
    x1 = min(cw, (math.ceil(box[2]) + 3) & ~1)
    y1 = min(ch, (math.ceil(box[3]) + 3) & ~1)
    return x0, y0, x1, y1


def text_mask(text: str, size: int) -> np.ndarray | None:
    """Antialiased text coverage (float32 0..1), or None when Pillow is unavailable."""
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:  # the badge still shows its coloured dot
        return None
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # very old Pillow: bitmap font, no size
        font = ImageFont.load_default()
    x0, y0, x1, y1 = font.getbbox(text)
    img = Image.new("L", (int(x1) + 2, int(y1 - y0) + 2), 0)
    ImageDraw.Draw(img).text((0, -y0 + 1), text, fill=255, font=font)
    return np.asarray(img, np.float32) / 255.0
