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

Modules, one job each: ``face_renderer`` (the layers and the frames), ``scene``
(coordinates, drawing order), ``figure`` (background, halo, body), ``features``
(head, eyes, mouth), ``style`` (colours, poses, geometry), ``sprites``,
``raster`` (antialiased shapes), ``colour`` (YUV).
"""

from broadcaster.avatar.renderer.colour import i420_to_rgb
from broadcaster.avatar.renderer.face_renderer import (
    BLINK_LEVELS,
    BLINK_SECONDS,
    MAX_SWAY_X,
    MAX_SWAY_Y,
    MOUTH_LEVELS,
    STATES,
    FaceRenderer,
)

__all__ = [
    "BLINK_LEVELS",
    "BLINK_SECONDS",
    "MAX_SWAY_X",
    "MAX_SWAY_Y",
    "MOUTH_LEVELS",
    "STATES",
    "FaceRenderer",
    "i420_to_rgb",
]
