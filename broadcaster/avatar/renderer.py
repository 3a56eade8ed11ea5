"""Cartoon presenter face rendered straight to I420, cheap enough for 25 fps on one core.

Why it looks like this: the local LiveAvatar-compatible service must publish
continuous 720p video next to the bot on a small machine, so per-frame work is
reduced to memory copies. Everything is drawn once at start-up with antialiased
signed-distance shapes in float RGB and converted to BT.601 limited-range YUV:

* a *canvas* per head pose (idle/speaking share one; listening has a tilted head,
  raised eyebrows and a coloured halo), slightly larger than the frame so the
  whole presenter can sway by whole pixels: a frame is a window into it;
* chroma of each canvas at the four 2x2 phases, so odd-pixel sways keep the
  4:2:0 chroma aligned without resampling;
* opaque *sprites* (Y plus phase-matched U/V) of the eye region for a few blink
  levels and of the mouth region for quantised openings, already composited
  over the face, so pasting them needs no blending;
* small opaque *badges* ("listening", "speaking") at a fixed frame position.

A frame then costs one window copy (only when the pose or offset changed since
the previous frame) plus a few tiny sprite copies. The output is written into a
reused buffer in the exact layout ``rtc.VideoFrame(w, h, VideoBufferType.I420, buf)``
expects.

Guarantees (relied on by tests and the publisher):

* head motion is whole-pixel, ``|dx| <= MAX_SWAY_X`` and ``|dy| <= MAX_SWAY_Y``;
* ``mouth_box()`` covers the mouth region for every offset and pose, so with
  ``mouth == 0`` the box never shows an open (dark) mouth, while the closed
  mouth inside it may move by a few pixels with the head;
* ``render`` is a pure function of ``(t, mouth, state, seed, size)``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

STATES: tuple[str, ...] = ("idle", "listening", "speaking")
MAX_SWAY_X = 3
MAX_SWAY_Y = 2
MOUTH_LEVELS = 16
BLINK_LEVELS = 6
BLINK_SECONDS = 0.15
_BLINK_PERIOD = 3600.0  # the blink schedule repeats, so memory stays bounded for any t

_MARGIN = 4  # canvas border around the frame; even and >= the sway bounds
_DARK_MOUTH = (0.33, 0.08, 0.12)

Color = tuple[float, float, float]
Alpha = Callable[[np.ndarray, np.ndarray], np.ndarray]
Shade = Callable[[np.ndarray, np.ndarray], np.ndarray]
Box = tuple[float, float, float, float]
Local = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, ...]]


# ---------------------------------------------------------------- colour space


def _rgb_to_yuv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BT.601 limited range (what libwebrtc assumes for I420), float planes."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 16.0 + 65.481 * r + 128.553 * g + 24.966 * b
    u = 128.0 - 37.797 * r - 74.203 * g + 112.0 * b
    v = 128.0 + 112.0 * r - 93.786 * g - 18.214 * b
    return y, u, v


_BAYER = np.array([[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]]) / 16.0 - 0.47


def _to_u8(plane: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(plane), 0, 255).astype(np.uint8)


def _subsample(plane: np.ndarray, py: int, px: int) -> np.ndarray:
    """2x2 box average of a 4:4:4 plane, blocks starting at (py, px)."""
    n = (plane.shape[0] - py) // 2
    m = (plane.shape[1] - px) // 2
    blocks = plane[py : py + 2 * n, px : px + 2 * m].reshape(n, 2, m, 2)
    return _to_u8(blocks.mean(axis=(1, 3)))


Chroma = dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]


def _chroma_phases(u: np.ndarray, v: np.ndarray) -> Chroma:
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
    return _to_u8(rgb)


# ---------------------------------------------------------------- raster helpers


class _Painter:
    """Float RGB raster of one canvas rectangle; shapes are evaluated only in their bbox."""

    def __init__(self, x0: int, y0: int, x1: int, y1: int) -> None:
        self.x0, self.y0, self.x1, self.y1 = x0, y0, x1, y1
        self.img = np.zeros((y1 - y0, x1 - x0, 3), np.float32)

    def paint(self, bbox: Box, color: Color | Shade, alpha: Alpha) -> None:
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
        y, u, v = _rgb_to_yuv(np.clip(self.img, 0.0, 1.0))
        rows = np.arange(self.y0, self.y1)[:, None] & 3
        cols = np.arange(self.x0, self.x1)[None, :] & 3
        return y + _BAYER[rows, cols], u, v


def _ellipse_sd(u: np.ndarray, v: np.ndarray, a: float, b: float) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipse (good near the edge)."""
    k0 = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    k1 = np.sqrt((u / (a * a)) ** 2 + (v / (b * b)) ** 2)
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-6)


def _rbox_sd(u: np.ndarray, v: np.ndarray, hw: float, hh: float, r: float) -> np.ndarray:
    """Signed distance to a rounded box centred at the origin."""
    qx = np.abs(u) - hw + r
    qy = np.abs(v) - hh + r
    out = np.sqrt(np.maximum(qx, 0.0) ** 2 + np.maximum(qy, 0.0) ** 2)
    return out + np.minimum(np.maximum(qx, qy), 0.0) - r


def _superellipse_sd(u: np.ndarray, v: np.ndarray, a: float, b: float, n: float) -> np.ndarray:
    """Approximate signed distance to |u/a|^n + |v/b|^n = 1 (first-order, via the gradient)."""
    x, y = np.abs(u) / a + 1e-6, np.abs(v) / b + 1e-6
    g = (x**n + y**n) ** (1.0 / n)
    k = g ** (1.0 - n)
    grad = k * np.sqrt((x ** (n - 1.0) / a) ** 2 + (y ** (n - 1.0) / b) ** 2)
    return (g - 1.0) / np.maximum(grad, 1e-6)


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


# ---------------------------------------------------------------- the drawing


_SKIN: Color = (0.95, 0.77, 0.64)
_SKIN_SHADE: Color = (0.84, 0.62, 0.50)
_LID: Color = (0.93, 0.74, 0.61)
_HAIR: Color = (0.27, 0.17, 0.12)
_HAIR_LIGHT: Color = (0.45, 0.30, 0.20)
_JACKET: Color = (0.17, 0.28, 0.45)
_JACKET_DARK: Color = (0.11, 0.19, 0.32)
_SHIRT: Color = (0.96, 0.96, 0.97)
_LIP: Color = (0.80, 0.44, 0.44)
_LIP_LOW: Color = (0.86, 0.52, 0.51)
_LISTEN: Color = (0.20, 0.78, 0.55)
_SPEAK: Color = (0.30, 0.62, 1.00)


@dataclass(frozen=True)
class _Pose:
    """Everything that differs between the idle/speaking and the listening canvas."""

    tilt_deg: float = 0.0
    brow_raise: float = 0.0
    halo: bool = False


_POSES: dict[str, _Pose] = {
    "idle": _Pose(),
    "listening": _Pose(tilt_deg=-3.5, brow_raise=5.0, halo=True),
}
_STATE_POSE: dict[str, str] = {"idle": "idle", "speaking": "idle", "listening": "listening"}

# feature geometry in head units (1 unit = 1 px at scale 1; origin head centre, y down)
_EYE_X, _EYE_Y, _EYE_RX, _EYE_RY = 44.0, -4.0, 20.0, 13.5
_MOUTH_Y, _MOUTH_HW = 74.0, 33.0
_PIVOT_Y = 115.0  # neck pivot for the head tilt


class _Scene:
    """The presenter as a set of antialiased shapes, in canvas pixel coordinates."""

    def __init__(self, cw: int, ch: int, cx: float, cy: float, scale: float, pose: _Pose) -> None:
        self.cw, self.ch, self.cx, self.cy, self.s = cw, ch, cx, cy, scale
        self.pose = pose
        th = math.radians(pose.tilt_deg)
        self.cos, self.sin = math.cos(th), math.sin(th)

    # coordinate helpers ------------------------------------------------
    def aa(self, d: np.ndarray) -> np.ndarray:
        """Coverage from a signed distance in head units (one-pixel soft edge)."""
        return np.clip(0.5 - d * self.s, 0.0, 1.0)

    def body(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (xs - self.cx) / self.s, (ys - self.cy) / self.s

    def head(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        bx, by = self.body(xs, ys)
        by = by - _PIVOT_Y
        u = self.cos * bx + self.sin * by
        v = -self.sin * bx + self.cos * by + _PIVOT_Y
        return u, v

    def bbox_body(self, u0: float, v0: float, u1: float, v1: float) -> Box:
        s = self.s
        return (
            self.cx + u0 * s - 2,
            self.cy + v0 * s - 2,
            self.cx + u1 * s + 2,
            self.cy + v1 * s + 2,
        )

    def bbox_head(self, u0: float, v0: float, u1: float, v1: float) -> Box:
        pts = []
        for u in (u0, u1):
            for v in (v0, v1):
                vv = v - _PIVOT_Y
                pts.append((self.cos * u - self.sin * vv, self.sin * u + self.cos * vv + _PIVOT_Y))
        xs = [p[0] for p in pts]
        ys = [p[1] for p in pts]
        return self.bbox_body(min(xs), min(ys), max(xs), max(ys))

    # the drawing -------------------------------------------------------
    def draw(self, p: _Painter, blink: float, mouth: float) -> None:
        """Paint everything that intersects the painter's rectangle."""
        self._background(p)
        if self.pose.halo:
            self._halo(p)
        self._body(p)
        self._head(p)
        self._eyes(p, blink)
        self._mouth(p, mouth)

    def _background(self, p: _Painter) -> None:
        top = np.array((0.85, 0.90, 0.95), np.float32)
        bottom = np.array((0.50, 0.62, 0.77), np.float32)
        glow = np.array((1.0, 0.97, 0.92), np.float32)
        ch, cw, cx, cy, s = self.ch, self.cw, self.cx, self.cy, self.s

        def shade(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
            t = (ys / ch)[..., None]
            col = top + (bottom - top) * t
            r2 = ((xs - cx) / (260 * s)) ** 2 + ((ys - cy + 20 * s) / (300 * s)) ** 2
            g = (0.35 * np.exp(-r2))[..., None]
            vig = ((xs - cw / 2) / (cw * 0.75)) ** 2 + ((ys - ch / 2) / (ch * 0.9)) ** 2
            return (col + (glow - col) * g) * (1.0 - 0.18 * vig)[..., None]

        p.paint((0, 0, cw, ch), shade, lambda xs, ys: np.ones((1, 1), np.float32))

    def _halo(self, p: _Painter) -> None:
        rx, ry = 168.0, 196.0

        def ring(width: float, peak: float) -> Alpha:
            def a(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
                u, v = self.body(xs, ys)
                d = np.abs(_ellipse_sd(u, v + 12, rx, ry))
                return peak * np.clip(1.0 - d / width, 0.0, 1.0) ** 1.5

            return a

        box = self.bbox_body(-rx - 30, -ry - 42, rx + 30, ry + 18)
        p.paint(box, _LISTEN, ring(26.0, 0.35))

        def line(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
            u, v = self.body(xs, ys)
            return self.aa(np.abs(_ellipse_sd(u, v + 12, rx, ry)) - 3.0)

        p.paint(box, _LISTEN, line)

    def _body(self, p: _Painter) -> None:
        top = 212.0  # shoulder line next to the neck
        centre = top + 250.0

        def torso_sd(u: np.ndarray, v: np.ndarray) -> np.ndarray:
            d = _superellipse_sd(u, v - centre, 300.0, 250.0, 3.0)
            return np.where(v > centre, np.abs(u) - 300.0, d)

        def torso(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
            return self.aa(torso_sd(*self.body(xs, ys)))

        def jacket(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
            u, v = self.body(xs, ys)
            shade = 1.0 - 0.22 * _smoothstep(170, 300, np.abs(u)) - 0.1 * _smoothstep(250, 650, v)
            return np.asarray(_JACKET, np.float32) * shade[..., None]

        p.paint(self.bbox_body(-305, top - 5, 305, 5000), jacket, torso)

        def vee(half_top: float, slope: float) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
            def d(u: np.ndarray, v: np.ndarray) -> np.ndarray:
                return np.abs(u) - np.where(v < top, half_top, half_top - (v - top) * slope)

            return d

        shirt_d = vee(84.0, 0.45)
        skin_d = vee(44.0, 0.85)

        def shirt(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
            u, v = self.body(xs, ys)
            band = np.maximum(np.abs(u) - 62.0, top - 16.0 + 0.5 * (np.abs(u) - 44.0) - v)
            inside = np.minimum(torso_sd(u, v), band)  # under the jacket, or the collar
            return self.aa(np.maximum(shirt_d(u, v), inside))

        p.paint(self.bbox_body(-95, top - 20, 95, 420), _SHIRT, shirt)

        def lapel(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
            u, v = self.body(xs, ys)
            return 0.75 * self.aa(np.maximum(np.abs(shirt_d(u, v) - 4.0) - 2.5, torso_sd(u, v)))

        p.paint(self.bbox_body(-100, top - 20, 100, 420), _JACKET_DARK, lapel)

        def collar(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
            u, v = self.body(xs, ys)
            return 0.45 * self.aa(np.maximum(np.abs(skin_d(u, v) + 3.0) - 3.0, top - 18.0 - v))

        def neck(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
            u, v = self.body(xs, ys)
            return self.aa(np.maximum(skin_d(u, v), 60.0 - v))

        def neck_col(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
            u, v = self.body(xs, ys)
            k = 0.80 + 0.20 * _smoothstep(100.0, 175.0, v)  # darker under the chin
            return np.asarray(_SKIN_SHADE, np.float32) * k[..., None]

        p.paint(self.bbox_body(-100, top - 20, 100, 320), (0.80, 0.82, 0.86), collar)
        p.paint(self.bbox_body(-50, 55, 50, top + 60), neck_col, neck)

    def _head(self, p: _Painter) -> None:
        hb = self.bbox_head

        def bob_sd(u: np.ndarray, v: np.ndarray) -> np.ndarray:
            bottom = 88.0 + 10.0 * _smoothstep(90.0, 150.0, np.abs(u))
            return np.maximum(_ellipse_sd(u, v + 12, 150.0, 178.0), v - bottom)

        def hair_back(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
            return self.aa(bob_sd(*self.head(xs, ys)))

        p.paint(hb(-155, -195, 155, 105), _HAIR, hair_back)

        for sgn in (-1.0, 1.0):

            def ear(xs: np.ndarray, ys: np.ndarray, sgn: float = sgn) -> np.ndarray:
                u, v = self.head(xs, ys)
                return self.aa(_ellipse_sd(u - sgn * 114.0, v - 8.0, 17.0, 27.0))

            def ear_in(xs: np.ndarray, ys: np.ndarray, sgn: float = sgn) -> np.ndarray:
                u, v = self.head(xs, ys)
                return 0.6 * self.aa(_ellipse_sd(u - sgn * 117.0, v - 8.0, 8.0, 16.0))

            p.paint(hb(sgn * 114 - 20, -22, sgn * 114 + 20, 38), _SKIN, ear)
            p.paint(hb(sgn * 117 - 10, -10, sgn * 117 + 10, 26), _SKIN_SHADE, ear_in)

        def face_sd(u: np.ndarray, v: np.ndarray) -> np.ndarray:
            narrow = 1.0 - 0.13 * _smoothstep(10.0, 150.0, v)
            return _ellipse_sd(u / narrow, v, 116.0, 150.0)

        def face(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
            return self.aa(face_sd(*self.head(xs, ys)))

        def skin(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
            u, v = self.head(xs, ys)
            r2 = (u / 118.0) ** 2 + ((v - 10) / 150.0) ** 2
            k = 1.0 - 0.10 * _smoothstep(0.45, 1.0, r2)
            return np.asarray(_SKIN, np.float32) * k[..., None]

        p.paint(hb(-125, -155, 125, 155), skin, face)

        for sgn in (-1.0, 1.0):

            def blush(xs: np.ndarray, ys: np.ndarray, sgn: float = sgn) -> np.ndarray:
                u, v = self.head(xs, ys)
                return 0.28 * np.exp(-(((u - sgn * 66.0) / 20.0) ** 2 + ((v - 42.0) / 13.0) ** 2))

            p.paint(hb(sgn * 66 - 50, 10, sgn * 66 + 50, 75), (0.96, 0.52, 0.52), blush)

        # nose: soft side shadow and a small curved tip
        def nose_shadow(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
            u, v = self.head(xs, ys)
            return (
                0.35
                * np.exp(-(((u + 9.0) / 5.0) ** 2))
                * _smoothstep(0, 25, v)
                * (1.0 - _smoothstep(30, 40, v))
            )

        p.paint(hb(-25, -5, 10, 45), _SKIN_SHADE, nose_shadow)

        def nose_tip(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
            u, v = self.head(xs, ys)
            curve = 38.0 + 5.0 * (1.0 - (u / 13.0) ** 2)
            return self.aa(np.maximum(np.abs(v - curve) - 1.6, np.abs(u) - 13.0))

        p.paint(hb(-18, 30, 18, 50), (0.74, 0.50, 0.40), nose_tip)

        def fringe_shadow(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
            u, v = self.head(xs, ys)
            fringe = -104.0 + 0.0030 * (u + 38.0) ** 2
            below = v - fringe
            return 0.35 * np.exp(-((below / 7.0) ** 2)) * (below > -2.0) * face(xs, ys)

        p.paint(hb(-120, -110, 120, -20), _SKIN_SHADE, fringe_shadow)

        # front hair: a swept fringe with a side part
        def hair_front(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
            u, v = self.head(xs, ys)
            fringe = -104.0 + 0.0030 * (u + 38.0) ** 2  # swept fringe, parted on the left
            window = np.maximum(_ellipse_sd(u, v - 30.0, 106.0, 142.0), fringe - v)
            return self.aa(np.maximum(bob_sd(u, v), -window))

        def hair_col(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
            u, v = self.head(xs, ys)
            ring = _ellipse_sd(u, v + 20.0, 112.0, 150.0)
            arc = np.exp(-(((u + 30.0) / 55.0) ** 2)) * (v < -60.0)
            sheen = 0.8 * np.exp(-((ring / 7.0) ** 2)) * arc
            a = np.asarray(_HAIR, np.float32)
            b = np.asarray(_HAIR_LIGHT, np.float32)
            return a + (b - a) * sheen[..., None]

        p.paint(hb(-155, -195, 155, 105), hair_col, hair_front)

        # eyebrows (raised when listening)
        for sgn in (-1.0, 1.0):

            def brow(xs: np.ndarray, ys: np.ndarray, sgn: float = sgn) -> np.ndarray:
                u, v = self.head(xs, ys)
                dx = (u - sgn * _EYE_X) * sgn  # + towards the outside
                t = np.clip(dx / 25.0, -1.0, 1.0)
                curve = -37.0 - self.pose.brow_raise - 6.0 * (1.0 - t * t) + 2.0 * t
                thick = 3.6 * (1.0 - 0.45 * (t + 1.0) / 2.0)
                d = np.maximum(np.abs(v - curve) - thick, np.abs(dx) - 25.0)
                return self.aa(d)

            p.paint(hb(sgn * _EYE_X - 32, -62, sgn * _EYE_X + 32, -26), _HAIR, brow)

    def eye_rect_head(self) -> Box:
        """Head-unit box that contains every blink level of both eyes."""
        ex, ey = _EYE_X + _EYE_RX + 5, _EYE_RY + 5
        return (-ex, _EYE_Y - ey, ex, _EYE_Y + ey)

    def _eyes(self, p: _Painter, blink: float) -> None:
        hb = self.bbox_head
        for sgn in (-1.0, 1.0):
            ex = sgn * _EYE_X

            def local(xs: np.ndarray, ys: np.ndarray, ex: float = ex) -> tuple[np.ndarray, ...]:
                u, v = self.head(xs, ys)
                return u - ex, v - _EYE_Y

            def white(xs: np.ndarray, ys: np.ndarray, local: Local = local) -> np.ndarray:
                return self.aa(_ellipse_sd(*local(xs, ys), _EYE_RX, _EYE_RY))

            def lid(xs: np.ndarray, ys: np.ndarray, local: Local = local) -> np.ndarray:
                """Coverage of the upper eyelid inside the eye outline."""
                u, v = local(xs, ys)
                arc = _EYE_RY * np.sqrt(np.clip(1.0 - (u / _EYE_RX) ** 2, 0.0, 1.0))
                edge = -arc * (1.0 - 2.0 * blink)
                return self.aa(v - edge) * white(xs, ys)

            def opened(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
                # visible eyeball: painting it only here keeps a closed eye free of white fringes
                return white(xs, ys) - lid(xs, ys)

            def iris(xs: np.ndarray, ys: np.ndarray, local: Local = local) -> np.ndarray:
                u, v = local(xs, ys)
                return self.aa(np.hypot(u, v + 0.5) - 9.5) * opened(xs, ys)

            def iris_col(xs: np.ndarray, ys: np.ndarray, local: Local = local) -> np.ndarray:
                u, v = local(xs, ys)
                k = _smoothstep(4.0, 9.5, np.hypot(u, v + 0.5))[..., None]
                a = np.asarray((0.42, 0.30, 0.18), np.float32)
                b = np.asarray((0.22, 0.14, 0.09), np.float32)
                return a + (b - a) * k

            def pupil(xs: np.ndarray, ys: np.ndarray, local: Local = local) -> np.ndarray:
                u, v = local(xs, ys)
                return self.aa(np.hypot(u, v + 0.5) - 4.6) * opened(xs, ys)

            def glint(xs: np.ndarray, ys: np.ndarray, local: Local = local) -> np.ndarray:
                u, v = local(xs, ys)
                return self.aa(np.hypot(u + 3.2, v + 4.0) - 2.4) * opened(xs, ys)

            def lash(xs: np.ndarray, ys: np.ndarray, local: Local = local) -> np.ndarray:
                u, v = local(xs, ys)
                arc = _EYE_RY * np.sqrt(np.clip(1.0 - (u / _EYE_RX) ** 2, 0.0, 1.0))
                edge = -arc * (1.0 - 2.0 * blink)
                d = np.maximum(np.abs(v - edge) - 1.5, np.abs(u) - _EYE_RX)
                return self.aa(d)

            def lower(xs: np.ndarray, ys: np.ndarray, local: Local = local) -> np.ndarray:
                u, v = local(xs, ys)
                return 0.35 * self.aa(np.abs(_ellipse_sd(u, v, _EYE_RX, _EYE_RY)) - 0.6) * (v > 2)

            box = hb(ex - _EYE_RX - 3, _EYE_Y - _EYE_RY - 3, ex + _EYE_RX + 3, _EYE_Y + _EYE_RY + 3)
            p.paint(box, _LID, lid)
            p.paint(box, (0.98, 0.98, 0.97), opened)
            p.paint(box, iris_col, iris)
            p.paint(box, (0.04, 0.04, 0.05), pupil)
            p.paint(box, (1.0, 1.0, 1.0), glint)
            p.paint(box, (0.72, 0.50, 0.42), lower)
            p.paint(box, (0.16, 0.10, 0.08), lash)

    def mouth_rect_head(self) -> Box:
        """Head-unit box that contains every opening of the mouth."""
        return (-_MOUTH_HW - 8, _MOUTH_Y - 18, _MOUTH_HW + 8, _MOUTH_Y + 40)

    def _mouth(self, p: _Painter, m: float) -> None:
        hw = _MOUTH_HW - 7.0 * m

        def geom(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, ...]:
            u, v = self.head(xs, ys)
            q = np.clip(1.0 - (u / hw) ** 2, 0.0, 1.0)
            centre = _MOUTH_Y + 5.0 * q - 3.0  # corners turned up: a smile
            upper = centre - m * 7.0 * np.sqrt(q)
            lower = centre + m * 25.0 * q**0.7
            return u, v, q, upper, lower

        def lips(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
            u, v, q, up, lo = geom(xs, ys)
            top = up - 4.5 * np.sqrt(q)
            bot = lo + 6.5 * np.sqrt(q)
            d = np.maximum(np.maximum(top - v, v - bot), np.abs(u) - hw - 1.0)
            return self.aa(d)

        def lower_lip(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
            u, v, q, up, lo = geom(xs, ys)
            bot = lo + 6.5 * np.sqrt(q)
            d = np.maximum(np.maximum(lo + 1.0 - v, v - bot), np.abs(u) - hw)
            return self.aa(d)

        box = self.bbox_head(-hw - 6, _MOUTH_Y - 16, hw + 6, _MOUTH_Y + 38)
        p.paint(box, _LIP, lips)
        p.paint(box, _LIP_LOW, lower_lip)

        def line(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
            u, v, q, up, lo = geom(xs, ys)
            d = np.maximum(np.abs(v - up) - 1.1, np.abs(u) - hw - 2.0)
            return self.aa(d)

        p.paint(box, (0.55, 0.24, 0.26), line)
        if m <= 0.0:
            return

        def inside(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
            u, v, q, up, lo = geom(xs, ys)
            return self.aa(np.maximum(np.maximum(up - v, v - lo), np.abs(u) - hw))

        p.paint(box, _DARK_MOUTH, inside)

        def teeth(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
            u, v, q, up, lo = geom(xs, ys)
            band = up + np.minimum(6.0, 0.4 * (lo - up))
            return self.aa(np.maximum(v - band, np.abs(u) - 0.8 * hw)) * inside(xs, ys)

        def tongue(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
            u, v, q, up, lo = geom(xs, ys)
            return self.aa(_ellipse_sd(u, v - (lo + 3.0), 0.55 * hw, 4.0 + 9.0 * m)) * inside(
                xs, ys
            )

        p.paint(box, (0.97, 0.96, 0.93), teeth)
        p.paint(box, (0.84, 0.42, 0.44), tongue)


# ---------------------------------------------------------------- sprites


@dataclass
class _Sprite:
    """Opaque patch in canvas coordinates (even origin), with chroma for both phases per axis."""

    x0: int
    y0: int
    y: np.ndarray
    chroma: Chroma

    @classmethod
    def from_painter(cls, p: _Painter) -> _Sprite:
        y, u, v = p.yuv()
        return cls(p.x0, p.y0, _to_u8(y), _chroma_phases(u, v))

    def paste(self, yp: np.ndarray, up: np.ndarray, vp: np.ndarray, oy: int, ox: int) -> None:
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
class _Canvas:
    """One pose: the static frame (with margin) plus its eye and mouth sprites."""

    y: np.ndarray
    chroma: Chroma
    eyes: list[_Sprite]
    mouths: list[_Sprite]


def _even_rect(box: Box, cw: int, ch: int) -> tuple[int, int, int, int]:
    """Snap a float box outwards to even integers (plus a 2 px margin), inside the canvas."""
    x0 = max(0, (math.floor(box[0]) - 2) & ~1)
    y0 = max(0, (math.floor(box[1]) - 2) & ~1)
    x1 = min(cw, (math.ceil(box[2]) + 3) & ~1)
    y1 = min(ch, (math.ceil(box[3]) + 3) & ~1)
    return x0, y0, x1, y1


# ---------------------------------------------------------------- the renderer


class FaceRenderer:
    """Friendly cartoon presenter, rendered directly to I420 from precomputed layers.

    ``render`` returns a view of one reused buffer: the next call overwrites it, so
    hand it to ``rtc.VideoSource.capture_frame`` (which copies) before rendering
    again, or pass ``copy=True``. Do not modify the returned array: unchanged
    regions are not repainted. ``render_into`` writes a full frame into a caller's
    buffer instead.
    """

    def __init__(self, width: int = 1280, height: int = 720, seed: int = 0) -> None:
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise ValueError(f"width and height must be positive and even, got {width}x{height}")
        self.width = width
        self.height = height
        self.seed = seed
        self.scale = min(height / 720.0, width / 560.0)
        portrait = float(np.clip((height / width - 1.0) / 0.78, 0.0, 1.0))
        self._head_xy = (width / 2.0, height * (0.45 - 0.08 * portrait))
        self._rng = np.random.default_rng(seed)
        self._blinks: list[float] = []
        self._blink_horizon = 0.0
        self._phase = self._rng.uniform(0.0, 2.0 * math.pi, size=4)

        m = _MARGIN
        self._cw, self._ch = width + 2 * m, height + 2 * m
        self._canvases = {name: self._build(pose) for name, pose in _POSES.items()}
        self._badges = {name: self._badge(name) for name in ("listening", "speaking")}

        self._out = np.empty(width * height * 3 // 2, np.uint8)
        self._last: tuple[str, int, int, str] | None = None

    # ---------------------------------------------------------------- build
    def _scene(self, pose: _Pose) -> _Scene:
        cx, cy = self._head_xy
        return _Scene(self._cw, self._ch, cx + _MARGIN, cy + _MARGIN, self.scale, pose)

    def _build(self, pose: _Pose) -> _Canvas:
        sc = self._scene(pose)
        full = _Painter(0, 0, self._cw, self._ch)
        sc.draw(full, 0.0, 0.0)
        y, u, v = full.yuv()
        chroma = _chroma_phases(u, v)
        eye_rect = _even_rect(sc.bbox_head(*sc.eye_rect_head()), self._cw, self._ch)
        mouth_rect = _even_rect(sc.bbox_head(*sc.mouth_rect_head()), self._cw, self._ch)
        nb, nm = BLINK_LEVELS - 1, MOUTH_LEVELS - 1
        eyes = [self._sprite(sc, eye_rect, i / nb, 0.0) for i in range(nb + 1)]
        mouths = [self._sprite(sc, mouth_rect, 0.0, i / nm) for i in range(nm + 1)]
        return _Canvas(_to_u8(y), chroma, eyes, mouths)

    @staticmethod
    def _sprite(sc: _Scene, rect: tuple[int, int, int, int], blink: float, mouth: float) -> _Sprite:
        p = _Painter(*rect)
        sc.draw(p, blink, mouth)
        return _Sprite.from_painter(p)

    def _badge(self, state: str) -> _Sprite:
        """Small pill at the frame's top-left, composited over the zero-offset background."""
        k = min(self.width, self.height) / 720.0
        text = state
        size = max(8, round(22 * k))
        color = _LISTEN if state == "listening" else _SPEAK
        h = 2 * round(20 * k)
        x0 = _MARGIN + 2 * round(14 * k)
        y0 = _MARGIN + 2 * round(14 * k)
        mask = _text_mask(text, size)
        tw = mask.shape[1] if mask is not None else 0
        w = 2 * ((h + round(10 * k) + tw + round(16 * k) + 1) // 2)
        sc = self._scene(_POSES[_STATE_POSE[state]])
        p = _Painter(x0, y0, x0 + w, y0 + h)
        sc._background(p)
        r = h / 2

        def pill(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
            d = _rbox_sd(xs - (x0 + w / 2), ys - (y0 + h / 2), w / 2 - 0.5, h / 2 - 0.5, r - 0.5)
            return 0.62 * np.clip(0.5 - d, 0.0, 1.0)

        p.paint((x0, y0, x0 + w, y0 + h), (0.08, 0.10, 0.14), pill)
        dot_x, dot_y, dot_r = x0 + r + 2 * k, y0 + h / 2, 7.0 * k

        def dot(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
            return np.clip(0.5 - (np.hypot(xs - dot_x, ys - dot_y) - dot_r), 0.0, 1.0)

        p.paint((x0, y0, x0 + w, y0 + h), color, dot)
        if mask is not None:
            tx = round(x0 + h + 4 * k) - x0
            ty = (h - mask.shape[0]) // 2
            mh, mw = mask.shape
            mh, mw = min(mh, h - ty), min(mw, w - tx)
            sub = p.img[ty : ty + mh, tx : tx + mw]
            a = mask[:mh, :mw, None]
            sub += (np.float32(0.97) - sub) * a
        return _Sprite.from_painter(p)

    # ---------------------------------------------------------------- time
    def _blink_starts(self, t: float) -> list[float]:
        """Blink start times up to t: every 3-6 s, sometimes a double blink."""
        while self._blink_horizon <= t + 1.0:
            start = self._blink_horizon + self._rng.uniform(3.0, 6.0)
            if not self._blinks:
                start = self._rng.uniform(1.0, 3.0)
            self._blinks.append(start)
            if self._rng.random() < 0.15:
                start += 0.35
                self._blinks.append(start)
            self._blink_horizon = start
        return self._blinks

    def blink_level(self, t: float) -> float:
        """Eyelid closure 0 (open) .. 1 (closed) at time t; deterministic for a seed."""
        if not math.isfinite(t) or t < 0:
            return 0.0
        t = t % _BLINK_PERIOD
        starts = self._blink_starts(t)
        i = bisect.bisect_right(starts, t) - 1
        if i < 0:
            return 0.0
        ph = (t - starts[i]) / BLINK_SECONDS
        if ph >= 1.0:
            return 0.0
        return float(min(1.0, 1.8 * (1.0 - abs(2.0 * ph - 1.0))))

    def head_offset(self, t: float) -> tuple[int, int]:
        """Whole-pixel idle sway (dx) and bob (dy) of the presenter at time t."""
        if not math.isfinite(t):
            return 0, 0
        a, b, c, d = self._phase
        tau = 2.0 * math.pi
        sx = 0.65 * math.sin(tau * t / 6.7 + a) + 0.35 * math.sin(tau * t / 2.9 + b)
        sy = 0.6 * math.sin(tau * t / 4.3 + c) + 0.4 * math.sin(tau * t / 3.1 + d)
        dx = max(-MAX_SWAY_X, min(MAX_SWAY_X, round(MAX_SWAY_X * sx)))
        dy = max(-MAX_SWAY_Y, min(MAX_SWAY_Y, round(MAX_SWAY_Y * sy)))
        return dx, dy

    # ---------------------------------------------------------------- frames
    def render(self, t: float, mouth: float, state: str = "idle", copy: bool = False) -> np.ndarray:
        """I420 frame at time t (seconds since start); mouth 0..1; state in STATES.

        Returns a flat uint8 array of w*h*3//2 bytes, the renderer's reused buffer
        (overwritten by the next call) unless ``copy`` is true.
        """
        self._render(self._out, t, mouth, state, reuse=True)
        return self._out.copy() if copy else self._out

    def render_into(
        self, out: np.ndarray, t: float, mouth: float, state: str = "idle"
    ) -> np.ndarray:
        """Like ``render`` but paints a whole frame into ``out`` (flat uint8, w*h*3//2)."""
        if out.dtype != np.uint8 or out.size != self._out.size or not out.flags.c_contiguous:
            raise ValueError("out must be a contiguous uint8 array of width*height*3//2 bytes")
        self._render(out.reshape(-1), t, mouth, state, reuse=False)
        return out

    def _render(self, out: np.ndarray, t: float, mouth: float, state: str, reuse: bool) -> None:
        pose = _STATE_POSE.get(state)
        if pose is None:
            raise ValueError(f"unknown state {state!r}; expected one of {STATES}")
        w, h = self.width, self.height
        n, q = w * h, w * h // 4
        yp = out[:n].reshape(h, w)
        up = out[n : n + q].reshape(h // 2, w // 2)
        vp = out[n + q :].reshape(h // 2, w // 2)
        cv = self._canvases[pose]
        dx, dy = self.head_offset(t)
        oy, ox = _MARGIN - dy, _MARGIN - dx
        key = (pose, oy, ox, state)
        if not reuse or key != self._last:
            np.copyto(yp, cv.y[oy : oy + h, ox : ox + w])
            py, px = oy & 1, ox & 1
            cu, cvv = cv.chroma[(py, px)]
            cy, cx = (oy - py) // 2, (ox - px) // 2
            np.copyto(up, cu[cy : cy + h // 2, cx : cx + w // 2])
            np.copyto(vp, cvv[cy : cy + h // 2, cx : cx + w // 2])
            badge = self._badges.get(state)
            if badge is not None:
                badge.paste(yp, up, vp, _MARGIN, _MARGIN)
        self._last = key if reuse else None
        m = 0.0 if not math.isfinite(mouth) else min(1.0, max(0.0, float(mouth)))
        cv.eyes[round(self.blink_level(t) * (BLINK_LEVELS - 1))].paste(yp, up, vp, oy, ox)
        cv.mouths[round(m * (MOUTH_LEVELS - 1))].paste(yp, up, vp, oy, ox)

    # ---------------------------------------------------------------- regions
    def _region(self, which: str) -> tuple[int, int, int, int]:
        x0 = y0 = 1 << 30
        x1 = y1 = -(1 << 30)
        for cv in self._canvases.values():
            sp = cv.mouths[0] if which == "mouth" else cv.eyes[0]
            sh, sw = sp.y.shape
            x0 = min(x0, sp.x0 - _MARGIN - MAX_SWAY_X)
            y0 = min(y0, sp.y0 - _MARGIN - MAX_SWAY_Y)
            x1 = max(x1, sp.x0 + sw - _MARGIN + MAX_SWAY_X)
            y1 = max(y1, sp.y0 + sh - _MARGIN + MAX_SWAY_Y)
        x0, y0 = max(0, x0), max(0, y0)
        x1, y1 = min(self.width, x1), min(self.height, y1)
        return x0, y0, x1 - x0, y1 - y0

    def mouth_box(self) -> tuple[int, int, int, int]:
        """(x, y, w, h) in frame pixels covering the mouth at any opening, offset and pose."""
        return self._region("mouth")

    def eye_box(self) -> tuple[int, int, int, int]:
        """(x, y, w, h) in frame pixels covering both eyes at any offset and pose."""
        return self._region("eyes")


def _text_mask(text: str, size: int) -> np.ndarray | None:
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
    img = Image.new("L", (x1 + 2, y1 - y0 + 2), 0)
    ImageDraw.Draw(img).text((0, -y0 + 1), text, fill=255, font=font)
    return np.asarray(img, np.float32) / 255.0
