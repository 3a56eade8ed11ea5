"""The renderer: builds the layers once, then composes each frame from them.

A frame is one window copy into the pose's canvas (only when the pose or offset
changed since the previous frame) plus a few tiny sprite pastes (eyes, mouth,
badge); blinks and idle sway follow a deterministic schedule per seed.
"""

from __future__ import annotations

import bisect
import math

import numpy as np

from broadcaster.avatar.renderer import figure
from broadcaster.avatar.renderer.colour import chroma_phases, to_u8
from broadcaster.avatar.renderer.raster import Painter, rbox_sd
from broadcaster.avatar.renderer.scene import Scene
from broadcaster.avatar.renderer.sprites import Canvas, Sprite, even_rect, text_mask
from broadcaster.avatar.renderer.style import LISTEN, POSES, SPEAK, STATE_POSE, Pose

STATES: tuple[str, ...] = ("idle", "listening", "speaking")
MAX_SWAY_X = 3
MAX_SWAY_Y = 2
MOUTH_LEVELS = 16
BLINK_LEVELS = 6
BLINK_SECONDS = 0.15
_BLINK_PERIOD = 3600.0  # the blink schedule repeats, so memory stays bounded for any t

_MARGIN = 4  # canvas border around the frame; even and >= the sway bounds


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
        self._canvases = {name: self._build(pose) for name, pose in POSES.items()}
        self._badges = {name: self._badge(name) for name in ("listening", "speaking")}

        self._out = np.empty(width * height * 3 // 2, np.uint8)
        self._last: tuple[str, int, int, str] | None = None

    # ---------------------------------------------------------------- build
    def _scene(self, pose: Pose) -> Scene:
        cx, cy = self._head_xy
        return Scene(self._cw, self._ch, cx + _MARGIN, cy + _MARGIN, self.scale, pose)

    def _build(self, pose: Pose) -> Canvas:
        sc = self._scene(pose)
        full = Painter(0, 0, self._cw, self._ch)
        sc.draw(full, 0.0, 0.0)
        y, u, v = full.yuv()
        chroma = chroma_phases(u, v)
        eye_rect = even_rect(sc.bbox_head(*sc.eye_rect_head()), self._cw, self._ch)
        mouth_rect = even_rect(sc.bbox_head(*sc.mouth_rect_head()), self._cw, self._ch)
        nb, nm = BLINK_LEVELS - 1, MOUTH_LEVELS - 1
        eyes = [self._sprite(sc, eye_rect, i / nb, 0.0) for i in range(nb + 1)]
        mouths = [self._sprite(sc, mouth_rect, 0.0, i / nm) for i in range(nm + 1)]
        return Canvas(to_u8(y), chroma, eyes, mouths)

    @staticmethod
    def _sprite(sc: Scene, rect: tuple[int, int, int, int], blink: float, mouth: float) -> Sprite:
        p = Painter(*rect)
        sc.draw(p, blink, mouth)
        return Sprite.from_painter(p)

    def _badge(self, state: str) -> Sprite:
        """Small pill at the frame's top centre, composited over the zero-offset background.

        Not top-left: the viewer and presenter pages put the speaker chip there (and the
        caption controls top-right), which hid it.
        """
        k = min(self.width, self.height) / 720.0
        text = state
        size = max(8, round(22 * k))
        color = LISTEN if state == "listening" else SPEAK
        h = 2 * round(20 * k)
        mask = text_mask(text, size)
        tw = mask.shape[1] if mask is not None else 0
        w = 2 * ((h + round(10 * k) + tw + round(16 * k) + 1) // 2)
        x0 = _MARGIN + 2 * ((self.width - w) // 4)
        y0 = _MARGIN + 2 * round(14 * k)
        sc = self._scene(POSES[STATE_POSE[state]])
        p = Painter(x0, y0, x0 + w, y0 + h)
        figure.background(sc, p)
        r = h / 2

        def pill(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
            d = rbox_sd(xs - (x0 + w / 2), ys - (y0 + h / 2), w / 2 - 0.5, h / 2 - 0.5, r - 0.5)
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
        return Sprite.from_painter(p)

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
        pose = STATE_POSE.get(state)
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
