"""The rehearsal room: the presenter (or the host) starts a 1:1 talk with the avatar.

``POST /api/webinars/{room}/rehearsal`` starts ``broadcaster serve rehearsal`` for the
webinar (one at a time) and answers, once the avatar's room is up, the LiveKit URL and
the token to join it: a room the avatar service owns, not the stage, so nothing of it
reaches the audience. ``DELETE`` ends it (so does the presenter leaving the room).
Only the presenter's token of this webinar, or the host key, may.
"""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web

from broadcaster.rehearsal_room import rehearsal_file
from broadcaster.roles import Role
from broadcaster.web.auth import is_host, participant
from broadcaster.web.body import read_object
from broadcaster.web.errors import forbidden, json_error
from broadcaster.web.keys import REHEARSALS, SETTINGS, WEBINARS
from broadcaster.web.webinars import REMOVED

routes = web.RouteTableDef()

#: the avatar session and the speech models start in this time on a small machine
READY_SECS = 60.0


def _may_rehearse(request: web.Request, room: str) -> None:
    """Let the host, or whoever joined with the presenter code (her claim says so), pass.

    A token's ``role`` attribute is not enough: a viewer the host handed the floor gets a
    presenter's token on a rejoin, and keeps it after the demotion.
    """
    if is_host(request):
        return
    claims = participant(request, room)
    store = request.app[WEBINARS].store
    held = store.claim(room, claims.identity)
    if ((claims.attributes or {}).get("role") != Role.PRESENTER.value
            or held is None or held.role != Role.PRESENTER.value):
        raise forbidden("only the presenter (or the host) can rehearse")
    if store.banned(room, claims.identity):
        raise forbidden(REMOVED)


@routes.post("/api/webinars/{room}/rehearsal")
async def start(request: web.Request) -> web.Response:
    """Start (or rejoin) the webinar's rehearsal; its room's URL and the token to join."""
    room = request.match_info["room"]
    request.app[WEBINARS].get_live(room)
    _may_rehearse(request, room)
    await read_object(request, set())
    launcher = request.app[REHEARSALS]
    path = rehearsal_file(request.app[SETTINGS], room)
    if launcher.status(room)["state"] != "running":
        path.unlink(missing_ok=True)
        await launcher.start(room)
    deadline = time.monotonic() + READY_SECS
    while not path.exists():
        if launcher.status(room)["state"] != "running":
            return json_error(503, "the rehearsal could not start (see the web app's log)")
        if time.monotonic() > deadline:
            await launcher.stop(room)
            return json_error(503, "the avatar did not get ready in time; try again")
        await asyncio.sleep(0.25)
    way_in = json.loads(await asyncio.to_thread(path.read_text))
    return web.json_response({"room": room, "url": way_in["url"], "token": way_in["token"]},
                             headers={"Cache-Control": "no-store"})


@routes.delete("/api/webinars/{room}/rehearsal")
async def stop(request: web.Request) -> web.Response:
    """End the webinar's rehearsal."""
    room = request.match_info["room"]
    request.app[WEBINARS].get(room)
    _may_rehearse(request, room)
    return web.json_response(await request.app[REHEARSALS].stop(room))
