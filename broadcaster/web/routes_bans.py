"""Host API for keeping people out: the ban list and the presenter invite code.

Remove (routes_host) bans an identity and its claim; here the host sees who is banned,
lets someone back in, and replaces the presenter code (the only way to keep out a
presenter who has the invite link: the code, not the identity, is her credential).
"""

from __future__ import annotations

from aiohttp import web

from broadcaster.roles import check_identity
from broadcaster.web.body import read_object
from broadcaster.web.keys import WEBINARS

routes = web.RouteTableDef()


@routes.get("/api/host/webinars/{room}/bans")
async def bans(request: web.Request) -> web.Response:
    """``GET .../bans`` (host): who the host removed from this webinar, oldest first."""
    room = request.match_info["room"]
    listed = request.app[WEBINARS].bans(room)
    return web.json_response({"room": room, "bans": [b.as_json() for b in listed]})


@routes.delete("/api/host/webinars/{room}/bans/{identity}")
async def clear_ban(request: web.Request) -> web.Response:
    """``DELETE .../bans/{identity}`` (host): let that identity join again; 404 if not banned."""
    await read_object(request, set())
    room, identity = request.match_info["room"], request.match_info["identity"]
    svc = request.app[WEBINARS]
    svc.get(room)
    check_identity(identity)
    svc.unban(room, identity)
    return web.json_response({"room": room, "cleared": identity})


@routes.post("/api/host/webinars/{room}/presenter-code")
async def new_presenter_code(request: web.Request) -> web.Response:
    """``POST .../presenter-code`` (host): a new invite code; answers the webinar with new links."""
    await read_object(request, set())
    svc = request.app[WEBINARS]
    return web.json_response(svc.for_host(
        await svc.new_presenter_code(request.match_info["room"])))
