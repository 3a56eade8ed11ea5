"""The rollover's measure of "the same picture": two encodes of one frame match, a step of
the avatar's sway does not (rendered by the avatar's own renderer, no network)."""

from __future__ import annotations

import numpy as np
from livekit import rtc

from broadcaster.avatar.renderer import FaceRenderer
from broadcaster.bot.picture_match import SAME_PICTURE, pictures_apart


def frame(buf: np.ndarray, w: int, h: int) -> rtc.VideoFrame:
    return rtc.VideoFrame(w, h, rtc.VideoBufferType.I420, buf.tobytes())


def test_a_sway_step_is_another_picture_codec_noise_is_not() -> None:
    w, h = 640, 360
    r = FaceRenderer(w, h, seed=7)
    times = np.arange(0.0, 10.0, 0.04)
    offsets = [r.head_offset(t) for t in times]
    i = next(k for k in range(1, len(times)) if offsets[k] != offsets[k - 1])
    a = r.render(times[i - 1], 0.0, copy=True)
    b = r.render(times[i], 0.0, copy=True)
    assert pictures_apart(frame(a, w, h), frame(a, w, h)) == 0.0
    assert pictures_apart(frame(a, w, h), frame(b, w, h)) > SAME_PICTURE  # one pixel of sway
    noisy = a.astype(np.int16)
    rng = np.random.default_rng(1)
    noisy[: w * h] += rng.integers(-1, 2, w * h, dtype=np.int16) * (rng.random(w * h) < 0.2)
    noise = np.clip(noisy, 0, 255).astype(np.uint8)
    assert pictures_apart(frame(a, w, h), frame(noise, w, h)) <= SAME_PICTURE  # encoder noise
    listening = r.render(times[i - 1], 0.0, "listening", copy=True)
    assert pictures_apart(frame(a, w, h), frame(listening, w, h)) > SAME_PICTURE


def test_frames_of_different_sizes_are_not_compared() -> None:
    small = np.zeros(320 * 180 * 3 // 2, np.uint8)
    big = np.zeros(640 * 360 * 3 // 2, np.uint8)
    assert pictures_apart(frame(small, 320, 180), frame(big, 640, 360)) is None
