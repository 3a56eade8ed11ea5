"""Sessions of one avatar share its built renderer: same pose at the same moment, no rebuild."""

from __future__ import annotations

import time

import numpy as np

from broadcaster.avatar.renderers import RendererCache


async def test_a_second_session_of_an_avatar_gets_a_twin_without_the_build() -> None:
    cache = RendererCache(kept=2)
    t0 = time.perf_counter()
    first = await cache.for_session(640, 360, "anna")
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    second = await cache.for_session(640, 360, "anna")
    twin = time.perf_counter() - t0
    assert twin < build / 5, f"twin {twin * 1000:.1f} ms vs build {build * 1000:.1f} ms"
    # the same picture at the same moment (a switch between them shows no jump)...
    for t in (0.5, 3.7, 12.34, 3599.9):
        for state in ("idle", "listening", "speaking"):
            a = first.render(t, 0.3, state, copy=True)
            b = second.render(t, 0.3, state, copy=True)
            assert np.array_equal(a, b), (t, state)
    # ...from buffers of their own: one rendering does not change the other's frame
    a = first.render(1.0, 0.0, "idle")
    kept = a.copy()
    second.render(2.0, 1.0, "speaking")
    assert np.array_equal(first.render(1.0, 0.0, "idle"), kept)
    other = await cache.for_session(640, 360, "bruno")
    assert not np.array_equal(other.render(3.0, 0.0, "idle"), first.render(3.0, 0.0, "idle"))


async def test_the_cache_keeps_a_few_avatars_only() -> None:
    """Avatar ids come from clients: random ones must not pile up built renderers."""
    cache = RendererCache(kept=2)
    for name in ("a", "b", "c", "d"):
        await cache.for_session(320, 180, name)
    assert len(cache._built) == 2
