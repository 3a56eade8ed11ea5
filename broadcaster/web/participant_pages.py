"""The host's participant list at scale: one page at a time, searchable, with counts.

LiveKit lists a room's participants in one call; the console asks for a page of them
(``offset``, ``limit``) matching a search (``q``: part of a name or identity, any case),
and the counts per role of the whole room, so a webinar of thousands stays usable.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from broadcaster.web.errors import invalid

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_QUERY_CHARS = 64
MAX_OFFSET = 1_000_000


def _int(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 7 or not low <= int(raw) <= high:
        raise invalid(f"query {name!r} must be an integer from {low} to {high}")
    return int(raw)


def page_of(people: list[dict[str, Any]], query: Mapping[str, str]) -> dict[str, Any]:
    """Return ``{"participants", "total", "matching", "offset", "limit", "counts"}``.

    ``people`` is the whole list (the speaker comes first, then presenters, then by
    joining time); ``counts`` counts every role in the room whatever the search.
    """
    q = query.get("q", "")
    if len(q) > MAX_QUERY_CHARS or not q.isprintable():
        raise invalid(f"query 'q' must be at most {MAX_QUERY_CHARS} printable characters")
    offset = _int(query, "offset", 0, 0, MAX_OFFSET)
    limit = _int(query, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    needle = q.strip().casefold()
    # a total order (LiveKit lists in no fixed order and joined_at is in seconds), so
    # consecutive pages neither repeat nor skip anyone
    people = sorted(people, key=lambda p: (not p["speaker"], p["role"] != "presenter",
                                           p["joined_at"], p["identity"]))
    matching = [p for p in people if not needle or needle in p["identity"].casefold()
                or needle in str(p["name"]).casefold()]
    return {
        "participants": matching[offset:offset + limit],
        "total": len(people), "matching": len(matching), "offset": offset, "limit": limit,
        "counts": dict(Counter(p["role"] for p in people)),
    }
