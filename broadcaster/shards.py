"""Audience shard rooms: their names, shared by the web app (routing) and the bot (media).

A LiveKit room lives on one node, so past one node the audience is split into shard
rooms ``<stage>--a1`` ... ``<stage>--aN`` that LiveKit's own multi-node routing places on
its nodes (Redis, ``node_selector``). The stage room keeps host, presenter and bot.
Webinar rooms may not end like a shard (``is_shard_name``), so names never collide.
"""

from __future__ import annotations

import re

SHARD_RE = re.compile(r"^(?P<stage>[a-z0-9][a-z0-9-]*?)--a(?P<n>[1-9][0-9]?)$")


def shard_rooms(stage: str, shards: int) -> list[str]:
    """Return the names of ``stage``'s ``shards`` audience rooms (none when 0)."""
    return [f"{stage}--a{i}" for i in range(1, shards + 1)]


def is_shard_name(room: str) -> bool:
    """Whether ``room`` is shaped like a shard room's name (refused for webinars)."""
    return SHARD_RE.fullmatch(room) is not None


def stage_of(room: str, shards: int) -> str:
    """Return the stage room ``room`` belongs to (itself unless one of ``shards`` shards)."""
    m = SHARD_RE.fullmatch(room)
    if m and 1 <= int(m["n"]) <= shards:
        return m["stage"]
    return room
