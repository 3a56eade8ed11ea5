"""The presenter's head: hair, ears, face, nose, brows, eyes (blinking), mouth (opening)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from broadcaster.avatar.renderer.raster import Painter, ellipse_sd, smoothstep
from broadcaster.avatar.renderer.style import (
    DARK_MOUTH,
    EYE_RX,
    EYE_RY,
    EYE_X,
    EYE_Y,
    HAIR,
    HAIR_LIGHT,
    LID,
    LIP,
    LIP_LOW,
    MOUTH_HW,
    MOUTH_Y,
    SKIN,
    SKIN_SHADE,
)

if TYPE_CHECKING:
    from broadcaster.avatar.renderer.scene import Scene

Local = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def head(sc: Scene, p: Painter) -> None:
    """Paint hair, ears, face, blush, nose, fringe and brows."""
    hb = sc.bbox_head

    def bob_sd(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        bottom = 88.0 + 10.0 * smoothstep(90.0, 150.0, np.abs(u))
        return np.maximum(ellipse_sd(u, v + 12, 150.0, 178.0), v - bottom)

    def hair_back(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        return sc.aa(bob_sd(*sc.head(xs, ys)))

    p.paint(hb(-155, -195, 155, 105), HAIR, hair_back)

    for sgn in (-1.0, 1.0):

        def ear(xs: np.ndarray, ys: np.ndarray, sgn: float = sgn) -> np.ndarray:
            u, v = sc.head(xs, ys)
            return sc.aa(ellipse_sd(u - sgn * 114.0, v - 8.0, 17.0, 27.0))

        def ear_in(xs: np.ndarray, ys: np.ndarray, sgn: float = sgn) -> np.ndarray:
            u, v = sc.head(xs, ys)
            return 0.6 * sc.aa(ellipse_sd(u - sgn * 117.0, v - 8.0, 8.0, 16.0))

        p.paint(hb(sgn * 114 - 20, -22, sgn * 114 + 20, 38), SKIN, ear)
        p.paint(hb(sgn * 117 - 10, -10, sgn * 117 + 10, 26), SKIN_SHADE, ear_in)

    def face_sd(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        narrow = 1.0 - 0.13 * smoothstep(10.0, 150.0, v)
        return ellipse_sd(u / narrow, v, 116.0, 150.0)

    def face(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        return sc.aa(face_sd(*sc.head(xs, ys)))

    def skin(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        u, v = sc.head(xs, ys)
        r2 = (u / 118.0) ** 2 + ((v - 10) / 150.0) ** 2
        k = 1.0 - 0.10 * smoothstep(0.45, 1.0, r2)
        return np.asarray(SKIN, np.float32) * k[..., None]

    p.paint(hb(-125, -155, 125, 155), skin, face)

    for sgn in (-1.0, 1.0):

        def blush(xs: np.ndarray, ys: np.ndarray, sgn: float = sgn) -> np.ndarray:
            u, v = sc.head(xs, ys)
            return 0.28 * np.exp(-(((u - sgn * 66.0) / 20.0) ** 2 + ((v - 42.0) / 13.0) ** 2))

        p.paint(hb(sgn * 66 - 50, 10, sgn * 66 + 50, 75), (0.96, 0.52, 0.52), blush)

    # nose: soft side shadow and a small curved tip
    def nose_shadow(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        u, v = sc.head(xs, ys)
        return (
            0.35
            * np.exp(-(((u + 9.0) / 5.0) ** 2))
            * smoothstep(0, 25, v)
            * (1.0 - smoothstep(30, 40, v))
        )

    p.paint(hb(-25, -5, 10, 45), SKIN_SHADE, nose_shadow)

    def nose_tip(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        u, v = sc.head(xs, ys)
        curve = 38.0 + 5.0 * (1.0 - (u / 13.0) ** 2)
        return sc.aa(np.maximum(np.abs(v - curve) - 1.6, np.abs(u) - 13.0))

    p.paint(hb(-18, 30, 18, 50), (0.74, 0.50, 0.40), nose_tip)

    def fringe_shadow(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        u, v = sc.head(xs, ys)
        fringe = -104.0 + 0.0030 * (u + 38.0) ** 2
        below = v - fringe
        return 0.35 * np.exp(-((below / 7.0) ** 2)) * (below > -2.0) * face(xs, ys)

    p.paint(hb(-120, -110, 120, -20), SKIN_SHADE, fringe_shadow)

    # front hair: a swept fringe with a side part
    def hair_front(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        u, v = sc.head(xs, ys)
        fringe = -104.0 + 0.0030 * (u + 38.0) ** 2  # swept fringe, parted on the left
        window = np.maximum(ellipse_sd(u, v - 30.0, 106.0, 142.0), fringe - v)
        return sc.aa(np.maximum(bob_sd(u, v), -window))

    def hair_col(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        u, v = sc.head(xs, ys)
        ring = ellipse_sd(u, v + 20.0, 112.0, 150.0)
        arc = np.exp(-(((u + 30.0) / 55.0) ** 2)) * (v < -60.0)
        sheen = 0.8 * np.exp(-((ring / 7.0) ** 2)) * arc
        a = np.asarray(HAIR, np.float32)
        b = np.asarray(HAIR_LIGHT, np.float32)
        return a + (b - a) * sheen[..., None]

    p.paint(hb(-155, -195, 155, 105), hair_col, hair_front)

    # eyebrows (raised when listening)
    for sgn in (-1.0, 1.0):

        def brow(xs: np.ndarray, ys: np.ndarray, sgn: float = sgn) -> np.ndarray:
            u, v = sc.head(xs, ys)
            dx = (u - sgn * EYE_X) * sgn  # + towards the outside
            t = np.clip(dx / 25.0, -1.0, 1.0)
            curve = -37.0 - sc.pose.brow_raise - 6.0 * (1.0 - t * t) + 2.0 * t
            thick = 3.6 * (1.0 - 0.45 * (t + 1.0) / 2.0)
            d = np.maximum(np.abs(v - curve) - thick, np.abs(dx) - 25.0)
            return sc.aa(d)

        p.paint(hb(sgn * EYE_X - 32, -62, sgn * EYE_X + 32, -26), HAIR, brow)


def eyes(sc: Scene, p: Painter, blink: float) -> None:
    """Paint both eyes, the lids closed by ``blink`` (0 open .. 1 closed)."""
    hb = sc.bbox_head
    for sgn in (-1.0, 1.0):
        ex = sgn * EYE_X

        def local(xs: np.ndarray, ys: np.ndarray, ex: float = ex) -> tuple[np.ndarray, np.ndarray]:
            u, v = sc.head(xs, ys)
            return u - ex, v - EYE_Y

        def white(xs: np.ndarray, ys: np.ndarray, local: Local = local) -> np.ndarray:
            return sc.aa(ellipse_sd(*local(xs, ys), EYE_RX, EYE_RY))

        def lid(xs: np.ndarray, ys: np.ndarray, local: Local = local) -> np.ndarray:
            """Coverage of the upper eyelid inside the eye outline."""
            u, v = local(xs, ys)
            arc = EYE_RY * np.sqrt(np.clip(1.0 - (u / EYE_RX) ** 2, 0.0, 1.0))
            edge = -arc * (1.0 - 2.0 * blink)
            return sc.aa(v - edge) * white(xs, ys)

        def opened(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
            # visible eyeball: painting it only here keeps a closed eye free of white fringes
            return white(xs, ys) - lid(xs, ys)

        def iris(xs: np.ndarray, ys: np.ndarray, local: Local = local) -> np.ndarray:
            u, v = local(xs, ys)
            return sc.aa(np.hypot(u, v + 0.5) - 9.5) * opened(xs, ys)

        def iris_col(xs: np.ndarray, ys: np.ndarray, local: Local = local) -> np.ndarray:
            u, v = local(xs, ys)
            k = smoothstep(4.0, 9.5, np.hypot(u, v + 0.5))[..., None]
            a = np.asarray((0.42, 0.30, 0.18), np.float32)
            b = np.asarray((0.22, 0.14, 0.09), np.float32)
            return a + (b - a) * k

        def pupil(xs: np.ndarray, ys: np.ndarray, local: Local = local) -> np.ndarray:
            u, v = local(xs, ys)
            return sc.aa(np.hypot(u, v + 0.5) - 4.6) * opened(xs, ys)

        def glint(xs: np.ndarray, ys: np.ndarray, local: Local = local) -> np.ndarray:
            u, v = local(xs, ys)
            return sc.aa(np.hypot(u + 3.2, v + 4.0) - 2.4) * opened(xs, ys)

        def lash(xs: np.ndarray, ys: np.ndarray, local: Local = local) -> np.ndarray:
            u, v = local(xs, ys)
            arc = EYE_RY * np.sqrt(np.clip(1.0 - (u / EYE_RX) ** 2, 0.0, 1.0))
            edge = -arc * (1.0 - 2.0 * blink)
            d = np.maximum(np.abs(v - edge) - 1.5, np.abs(u) - EYE_RX)
            return sc.aa(d)

        def lower(xs: np.ndarray, ys: np.ndarray, local: Local = local) -> np.ndarray:
            u, v = local(xs, ys)
            return 0.35 * sc.aa(np.abs(ellipse_sd(u, v, EYE_RX, EYE_RY)) - 0.6) * (v > 2)

        box = hb(ex - EYE_RX - 3, EYE_Y - EYE_RY - 3, ex + EYE_RX + 3, EYE_Y + EYE_RY + 3)
        p.paint(box, LID, lid)
        p.paint(box, (0.98, 0.98, 0.97), opened)
        p.paint(box, iris_col, iris)
        p.paint(box, (0.04, 0.04, 0.05), pupil)
        p.paint(box, (1.0, 1.0, 1.0), glint)
        p.paint(box, (0.72, 0.50, 0.42), lower)
        p.paint(box, (0.16, 0.10, 0.08), lash)


def mouth(sc: Scene, p: Painter, m: float) -> None:
    """Paint the lips and, when ``m`` > 0, the open mouth (teeth, tongue)."""
    hw = MOUTH_HW - 7.0 * m

    def geom(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, ...]:
        u, v = sc.head(xs, ys)
        q = np.clip(1.0 - (u / hw) ** 2, 0.0, 1.0)
        centre = MOUTH_Y + 5.0 * q - 3.0  # corners turned up: a smile
        upper = centre - m * 7.0 * np.sqrt(q)
        lower = centre + m * 25.0 * q**0.7
        return u, v, q, upper, lower

    def lips(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        u, v, q, up, lo = geom(xs, ys)
        top = up - 4.5 * np.sqrt(q)
        bot = lo + 6.5 * np.sqrt(q)
        d = np.maximum(np.maximum(top - v, v - bot), np.abs(u) - hw - 1.0)
        return sc.aa(d)

    def lower_lip(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        u, v, q, up, lo = geom(xs, ys)
        bot = lo + 6.5 * np.sqrt(q)
        d = np.maximum(np.maximum(lo + 1.0 - v, v - bot), np.abs(u) - hw)
        return sc.aa(d)

    box = sc.bbox_head(-hw - 6, MOUTH_Y - 16, hw + 6, MOUTH_Y + 38)
    p.paint(box, LIP, lips)
    p.paint(box, LIP_LOW, lower_lip)

    def line(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        u, v, q, up, lo = geom(xs, ys)
        d = np.maximum(np.abs(v - up) - 1.1, np.abs(u) - hw - 2.0)
        return sc.aa(d)

    p.paint(box, (0.55, 0.24, 0.26), line)
    if m <= 0.0:
        return

    def inside(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        u, v, q, up, lo = geom(xs, ys)
        return sc.aa(np.maximum(np.maximum(up - v, v - lo), np.abs(u) - hw))

    p.paint(box, DARK_MOUTH, inside)

    def teeth(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        u, v, q, up, lo = geom(xs, ys)
        band = up + np.minimum(6.0, 0.4 * (lo - up))
        return sc.aa(np.maximum(v - band, np.abs(u) - 0.8 * hw)) * inside(xs, ys)

    def tongue(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        u, v, q, up, lo = geom(xs, ys)
        return sc.aa(ellipse_sd(u, v - (lo + 3.0), 0.55 * hw, 4.0 + 9.0 * m)) * inside(
            xs, ys
        )

    p.paint(box, (0.97, 0.96, 0.93), teeth)
    p.paint(box, (0.84, 0.42, 0.44), tongue)
