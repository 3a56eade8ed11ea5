"""The host console's view of a webinar room: who is in it, as what, with which tracks.

A person's role is the one they joined as (their claim), not their token's attribute:
a viewer handed the floor gets a presenter token, yet stays a viewer. The stack's own
participants (bot, host consoles) keep their token's role.
"""

from __future__ import annotations

from typing import Any

from livekit import api

from broadcaster.roles import Role
from broadcaster.web.webinars import Webinars

TRACK_SOURCES = {v: k.removeprefix("SOURCE_").lower() for k, v in api.TrackSource.items()}
TRACK_TYPES = {v: k.lower() for k, v in api.TrackType.items()}


async def participant_list(svc: Webinars, room: str) -> list[dict[str, Any]]:
    """List who is in ``room`` now: the speaker first, then presenters, then by join time."""
    webinar = svc.get(room)
    claims = svc.store.claims(room)
    out = []
    for p in await svc.livekit.participants(room):
        claim = claims.get(p.identity)
        role = p.attributes.get("role", "unknown")
        if claim is not None and role not in (Role.BOT, Role.HOST):
            role = claim.role
        out.append({
            "identity": p.identity,
            "name": p.name or p.identity,
            "role": role,
            "stack": svc.is_stack(p),
            "speaker": p.identity == webinar.speaker,
            "can_publish": p.permission.can_publish,
            "hidden": p.permission.hidden,
            "joined_at": p.joined_at,
            "tracks": [
                {"sid": t.sid, "kind": TRACK_TYPES.get(t.type, "unknown"),
                 "source": TRACK_SOURCES.get(t.source, "unknown"), "muted": t.muted}
                for t in p.tracks
            ],
        })
    out.sort(key=lambda p: (not p["speaker"], p["role"] != "presenter", p["joined_at"]))
    return out
