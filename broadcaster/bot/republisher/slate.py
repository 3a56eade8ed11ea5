"""The "Reconnecting" card viewers see while the avatar's video is away."""

from __future__ import annotations

from typing import Any

from livekit import rtc

SLATE_RGB = (22, 27, 38)


def make_slate(width: int, height: int, text: str = "Reconnecting…") -> rtc.VideoFrame:
    """Draw a plain card with ``text`` as an I420 frame (computed once, then reused)."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (width, height), SLATE_RGB)
    draw = ImageDraw.Draw(img)
    try:
        font: Any = ImageFont.load_default(size=max(12, height // 12))
    except TypeError:  # Pillow < 10.1 has no scalable default font
        font = ImageFont.load_default()
    draw.text((width / 2, height / 2), text, fill=(230, 230, 235), font=font, anchor="mm")
    rgb = rtc.VideoFrame(width, height, rtc.VideoBufferType.RGB24, img.tobytes())
    return rgb.convert(rtc.VideoBufferType.I420)
