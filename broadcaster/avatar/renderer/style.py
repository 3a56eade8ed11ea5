"""How the presenter looks: colours, poses and feature geometry (in head units)."""

from __future__ import annotations

from dataclasses import dataclass

from broadcaster.avatar.renderer.raster import Color

DARK_MOUTH: Color = (0.33, 0.08, 0.12)


SKIN: Color = (0.95, 0.77, 0.64)
SKIN_SHADE: Color = (0.84, 0.62, 0.50)
LID: Color = (0.93, 0.74, 0.61)
HAIR: Color = (0.27, 0.17, 0.12)
HAIR_LIGHT: Color = (0.45, 0.30, 0.20)
JACKET: Color = (0.17, 0.28, 0.45)
JACKET_DARK: Color = (0.11, 0.19, 0.32)
SHIRT: Color = (0.96, 0.96, 0.97)
LIP: Color = (0.80, 0.44, 0.44)
LIP_LOW: Color = (0.86, 0.52, 0.51)
LISTEN: Color = (0.20, 0.78, 0.55)
SPEAK: Color = (0.30, 0.62, 1.00)


@dataclass(frozen=True)
class Pose:
    """Everything that differs between the idle/speaking and the listening canvas."""

    tilt_deg: float = 0.0
    brow_raise: float = 0.0
    halo: bool = False


POSES: dict[str, Pose] = {
    "idle": Pose(),
    "listening": Pose(tilt_deg=-3.5, brow_raise=5.0, halo=True),
}
STATE_POSE: dict[str, str] = {"idle": "idle", "speaking": "idle", "listening": "listening"}

# feature geometry in head units (1 unit = 1 px at scale 1; origin head centre, y down)
EYE_X, EYE_Y, EYE_RX, EYE_RY = 44.0, -4.0, 20.0, 13.5
MOUTH_Y, MOUTH_HW = 74.0, 33.0
PIVOT_Y = 115.0  # neck pivot for the head tilt
