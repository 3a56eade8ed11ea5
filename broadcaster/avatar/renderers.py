"""Renderers for new avatar sessions: one build per avatar, a cheap twin per session.

Building a renderer's layers costs ~0.5 s of CPU (more on a busy machine), inside
``/sessions/start``. A bot rolling over opens its next session while the current one
still plays, so that cost lands on the overlap; the built renderer of a recent avatar is
kept and each session gets a twin (shared read-only layers, its own frame buffer).
The idle motion follows the avatar (its seed) and the service's clock, so two sessions
of one avatar show the same pose at the same moment: a switch between them shows no jump.
"""

from __future__ import annotations

import asyncio
import hashlib

from broadcaster.avatar.renderer import FaceRenderer

#: built renderers kept (~6 MB each at 720p); avatar ids come from clients, so a few only
KEPT = 4


def avatar_seed(avatar_id: str) -> int:
    """Return the renderer seed of an avatar (its sway phases and blink schedule)."""
    return int.from_bytes(hashlib.sha256((avatar_id or "default").encode()).digest()[:4],
                          "little")


class RendererCache:
    """The most recently used avatars' built renderers."""

    def __init__(self, kept: int = KEPT) -> None:
        self.kept = kept
        self._built: dict[tuple[int, int, int], FaceRenderer] = {}

    async def for_session(self, width: int, height: int, avatar_id: str) -> FaceRenderer:
        """Return a renderer for a new session of ``avatar_id`` (built in a thread if new)."""
        key = (width, height, avatar_seed(avatar_id))
        built = self._built.pop(key, None)
        if built is None:
            built = await asyncio.to_thread(FaceRenderer, width, height, key[2])
        self._built[key] = built  # most recent last
        while len(self._built) > self.kept:
            self._built.pop(next(iter(self._built)))
        return built.twin()
