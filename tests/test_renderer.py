"""The avatar face renderer: I420 layout, mouth, blinks, listening look, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from broadcaster.avatar.renderer import (
    MAX_SWAY_X,
    MAX_SWAY_Y,
    FaceRenderer,
    i420_to_rgb,
)

SIZES = [(1280, 720), (720, 1280)]
DARK_Y = 70  # the open mouth's interior is darker than anything else near the mouth


@pytest.fixture(scope="module", params=SIZES, ids=["landscape", "portrait"])
def renderer(request: pytest.FixtureRequest) -> FaceRenderer:
    w, h = request.param
    return FaceRenderer(w, h, seed=1)


def _y(r: FaceRenderer, frame: np.ndarray) -> np.ndarray:
    return frame[: r.width * r.height].reshape(r.height, r.width)


def _crop(r: FaceRenderer, frame: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x, y, w, h = box
    return _y(r, frame)[y : y + h, x : x + w].copy()


def _dark_pixels(r: FaceRenderer, frame: np.ndarray) -> int:
    return int((_crop(r, frame, r.mouth_box()) < DARK_Y).sum())


def test_frame_is_i420_sized(renderer: FaceRenderer) -> None:
    frame = renderer.render(0.0, 0.0)
    assert frame.dtype == np.uint8
    assert frame.ndim == 1 and frame.flags.c_contiguous
    assert frame.size == renderer.width * renderer.height * 3 // 2


def test_render_reuses_its_buffer_unless_copied(renderer: FaceRenderer) -> None:
    a = renderer.render(0.0, 0.0)
    b = renderer.render(0.04, 0.0)
    assert a is b
    c = renderer.render(0.08, 0.0, copy=True)
    assert c is not b


def test_render_into_matches_render(renderer: FaceRenderer) -> None:
    out = np.zeros(renderer.width * renderer.height * 3 // 2, np.uint8)
    renderer.render_into(out, 2.5, 0.6, "speaking")
    assert np.array_equal(out, renderer.render(2.5, 0.6, "speaking"))


def test_mouth_opens_with_mouth_value(renderer: FaceRenderer) -> None:
    t = 1.0
    closed = _crop(renderer, renderer.render(t, 0.0, "speaking"), renderer.mouth_box())
    opened_frame = renderer.render(t, 1.0, "speaking")
    opened = _crop(renderer, opened_frame, renderer.mouth_box())
    assert not np.array_equal(closed, opened)
    assert _dark_pixels(renderer, opened_frame) > 200 * (renderer.width * renderer.height) / 921600


def test_silent_mouth_stays_closed(renderer: FaceRenderer) -> None:
    for t in (0.0, 0.77, 1.9, 3.3, 5.05, 8.6):
        for state in ("idle", "listening", "speaking"):
            assert _dark_pixels(renderer, renderer.render(t, 0.0, state)) == 0


def test_mouth_box_inside_frame(renderer: FaceRenderer) -> None:
    x, y, w, h = renderer.mouth_box()
    assert 0 <= x and 0 <= y and w > 0 and h > 0
    assert x + w <= renderer.width and y + h <= renderer.height


def test_head_motion_is_small_and_whole_pixel(renderer: FaceRenderer) -> None:
    offsets = {renderer.head_offset(i / 25) for i in range(25 * 20)}
    assert len(offsets) > 1, "the presenter should sway a little when idle"
    for dx, dy in offsets:
        assert isinstance(dx, int) and isinstance(dy, int)
        assert abs(dx) <= MAX_SWAY_X and abs(dy) <= MAX_SWAY_Y


def test_blinks_within_ten_seconds(renderer: FaceRenderer) -> None:
    box = renderer.eye_box()
    whites = [
        int((_crop(renderer, renderer.render(i / 25, 0.0), box) > 225).sum())
        for i in range(25 * 10)
    ]
    levels = [renderer.blink_level(i / 25) for i in range(25 * 10)]
    assert max(levels) >= 0.5
    # the eye whites disappear behind the lids during a blink, whatever the head offset
    blink_i = int(np.argmax(levels))
    open_whites = [w for w, lv in zip(whites, levels, strict=True) if lv == 0.0]
    assert min(open_whites) > 0
    assert whites[blink_i] < 0.5 * min(open_whites)


def test_blink_is_short(renderer: FaceRenderer) -> None:
    closed = [i for i in range(1000 * 10) if renderer.blink_level(i / 1000) > 0]
    assert closed, "expected a blink in the first 10 s"
    first_run_end = next(
        (a for a, b in zip(closed, closed[1:], strict=False) if b != a + 1), closed[-1]
    )
    assert first_run_end - closed[0] <= 160


def test_listening_differs_from_idle(renderer: FaceRenderer) -> None:
    idle = renderer.render(1.0, 0.0, "idle", copy=True)
    listening = renderer.render(1.0, 0.0, "listening", copy=True)
    diff = np.abs(idle.astype(np.int16) - listening.astype(np.int16))
    assert (diff > 20).sum() > 2000


def test_deterministic_for_same_inputs() -> None:
    a = FaceRenderer(640, 360, seed=7)
    b = FaceRenderer(640, 360, seed=7)
    # b takes a different path through time first: results must not depend on history
    for t in (9.0, 0.3, 4.4):
        b.render(t, 0.5, "speaking")
    for t, m, s in [(0.0, 0.0, "idle"), (3.21, 0.4, "speaking"), (7.5, 0.0, "listening")]:
        assert np.array_equal(a.render(t, m, s), b.render(t, m, s))


def test_other_even_sizes_and_bad_input() -> None:
    r = FaceRenderer(320, 240)
    assert r.render(0.5, 0.3).size == 320 * 240 * 3 // 2
    assert r.render(0.5, float("nan")).size == 320 * 240 * 3 // 2
    with pytest.raises(ValueError):
        FaceRenderer(321, 240)
    with pytest.raises(ValueError):
        r.render(0.0, 0.0, "dancing")


def test_i420_to_rgb_roundtrips_grey() -> None:
    w, h = 4, 2
    buf = np.concatenate([np.full(w * h, 126, np.uint8), np.full(w * h // 2, 128, np.uint8)])
    rgb = i420_to_rgb(buf, w, h)
    assert rgb.shape == (h, w, 3)
    assert np.all(np.abs(rgb.astype(int) - 128) <= 1)


def test_face_looks_like_a_face(renderer: FaceRenderer) -> None:
    rgb = i420_to_rgb(renderer.render(1.0, 0.0, "idle"), renderer.width, renderer.height)
    x, y, w, h = renderer.eye_box()
    eyes = rgb[y : y + h, x : x + w]
    assert (eyes.min(axis=2) > 235).sum() > 50, "eye whites"
    assert (eyes.max(axis=2) < 40).sum() > 20, "pupils"
    cx, cy = renderer.width // 2, y + h + 10
    r, g, b = (int(c) for c in rgb[cy, cx])
    assert r > g > b, "warm skin between the eyes and the mouth"


def test_the_state_badge_keeps_clear_of_the_pages_corners(renderer: FaceRenderer) -> None:
    # The viewer and presenter pages put the speaker chip on the stage's top-left and the
    # caption controls on its top-right; the badge at the frame's top-left sat under the
    # chip ("You" over "…king", seen driving ./dev up in Chromium). It goes top-centre.
    idle = _y(renderer, renderer.render(1.0, 0.0, "idle", copy=True)).astype(np.int16)
    speaking = _y(renderer, renderer.render(1.0, 0.0, "speaking", copy=True)).astype(np.int16)
    ys, xs = np.nonzero(np.abs(idle - speaking) > 20)
    assert xs.size > 200, "no badge drawn"
    w = renderer.width
    assert xs.min() > 0.3 * w and xs.max() < 0.7 * w, (xs.min(), xs.max(), w)
