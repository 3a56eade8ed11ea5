"""Host API: everything under /api/host/ (the host key is checked by auth.host_guard)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from broadcaster.roles import check_identity
from broadcaster.web.body import opt_str, read_object, req_str
from broadcaster.web.keys import BOTS, WEBINARS
from broadcaster.web.participant_list import participant_list
from broadcaster.web.participant_pages import page_of
from broadcaster.web.store import Webinar

routes = web.RouteTableDef()


@routes.get("/api/host/session")
async def session(request: web.Request) -> web.Response:
    """Lets the console check a typed key before showing anything."""
    return web.json_response({"ok": True})


@routes.get("/api/host/webinars")
async def list_webinars(request: web.Request) -> web.Response:
    """``GET /api/host/webinars`` (host): every webinar with its links, newest first."""
    svc = request.app[WEBINARS]
    return web.json_response({"webinars": [svc.for_host(w) for w in svc.store.webinars()]})


@routes.post("/api/host/webinars")
async def create_webinar(request: web.Request) -> web.Response:
    """``POST /api/host/webinars`` (host) ``{title, room?}``: 201 and the new webinar."""
    body = await read_object(request, {"title", "room"})
    svc = request.app[WEBINARS]
    webinar = await svc.create(req_str(body, "title"), opt_str(body, "room"))
    return web.json_response(svc.for_host(webinar), status=201)


@routes.get("/api/host/webinars/{room}")
async def get_webinar(request: web.Request) -> web.Response:
    """``GET /api/host/webinars/{room}`` (host): the webinar with its invite code and links."""
    svc = request.app[WEBINARS]
    return web.json_response(svc.for_host(svc.get(request.match_info["room"])))


@routes.get("/api/host/webinars/{room}/participants")
async def participants(request: web.Request) -> web.Response:
    """``GET .../participants`` (host): who is in the room now, their roles and tracks."""
    svc = request.app[WEBINARS]
    room = request.match_info["room"]
    people = await participant_list(svc, room)  # ?q= &offset= &limit= (participant_pages)
    return web.json_response({"room": room, "speaker": svc.get(room).speaker,
                              **page_of(people, request.query)})


def participant_target(request: web.Request) -> tuple[str, str]:
    """Return the room and identity a participant route names, both validated."""
    room = request.match_info["room"]
    request.app[WEBINARS].get(room)  # 422/404 for the room before judging the identity
    identity = request.match_info["identity"]
    check_identity(identity)
    return room, identity


async def floor_change(request: web.Request,
                       change: Callable[[str, str], Awaitable[Webinar]]) -> web.Response:
    """Run a host's floor action on the named participant (no body); answer the speaker."""
    await read_object(request, set())
    room, identity = participant_target(request)
    webinar = await change(room, identity)
    return web.json_response({"room": room, "speaker": webinar.speaker})


@routes.post("/api/host/webinars/{room}/participants/{identity}/promote")
async def promote(request: web.Request) -> web.Response:
    """``POST .../{identity}/promote`` (host): hand that person the floor; answers the speaker."""
    return await floor_change(request, request.app[WEBINARS].promote)


@routes.post("/api/host/webinars/{room}/participants/{identity}/demote")
async def demote(request: web.Request) -> web.Response:
    """``POST .../{identity}/demote`` (host): take publishing away; answers the speaker."""
    return await floor_change(request, request.app[WEBINARS].demote)


@routes.post("/api/host/webinars/{room}/participants/{identity}/remove")
async def remove(request: web.Request) -> web.Response:
    """``POST .../{identity}/remove`` (host): demote, ban (identity and claim), disconnect."""
    await read_object(request, set())
    room, identity = participant_target(request)
    webinar = await request.app[WEBINARS].remove(room, identity)
    return web.json_response({"room": room, "removed": identity, "banned": True,
                              "speaker": webinar.speaker})


@routes.post("/api/host/webinars/{room}/end")
async def end(request: web.Request) -> web.Response:
    """``POST .../end`` (host): stop the bot, end the webinar for good, close its room."""
    await read_object(request, set())
    room = request.match_info["room"]
    svc = request.app[WEBINARS]
    svc.get(room)
    await request.app[BOTS].stop(room)
    return web.json_response(svc.for_host(await svc.end(room)))


@routes.post("/api/host/webinars/{room}/token")
async def watch_token(request: web.Request) -> web.Response:
    """``POST .../token`` (host): a subscribe-only token to watch the stage."""
    await read_object(request, set())
    return web.json_response(await request.app[WEBINARS].watch(request.match_info["room"]))


@routes.get("/api/host/webinars/{room}/bot")
async def bot_status(request: web.Request) -> web.Response:
    """``GET .../bot`` (host): whether the room's bot process runs, its pid and exit code.

    ``in_room``: whether the bot's identity is in the room now, whoever started it (a bot
    started elsewhere, e.g. its own deployment, is live though this console runs none).
    """
    room = request.match_info["room"]
    svc = request.app[WEBINARS]
    webinar = svc.get(room)
    present = await svc.livekit.participant(webinar.room, svc.settings.bot_identity)
    return web.json_response({"room": room, **request.app[BOTS].status(room),
                              "in_room": present is not None})


@routes.post("/api/host/webinars/{room}/bot/start")
async def bot_start(request: web.Request) -> web.Response:
    """``POST .../bot/start`` (host): launch the bot for a live webinar (no-op if running)."""
    await read_object(request, set())
    room = request.match_info["room"]
    request.app[WEBINARS].get_live(room)
    return web.json_response({"room": room, **await request.app[BOTS].start(room)})


@routes.post("/api/host/webinars/{room}/bot/stop")
async def bot_stop(request: web.Request) -> web.Response:
    """``POST .../bot/stop`` (host): SIGTERM the room's bot, SIGKILL it if it lingers."""
    await read_object(request, set())
    room = request.match_info["room"]
    request.app[WEBINARS].get(room)
    return web.json_response({"room": room, **await request.app[BOTS].stop(room)})
