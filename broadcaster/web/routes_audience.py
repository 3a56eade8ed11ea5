"""Audience API: raise hand, the moderated Q&A, "ask the avatar" (web/audience.py).

Viewers act with their LiveKit token (``Authorization: Bearer``), limited per identity
and per address; the host with the host key (every ``/api/host/`` path, auth.py); the
speaker (the live floor, as for reading questions) may ask the avatar too.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from livekit.api.access_token import Claims

from broadcaster.web.audience import SORTS, Audience, question_id
from broadcaster.web.auth import is_host, participant
from broadcaster.web.body import read_object, req_str
from broadcaster.web.client_address import client_key
from broadcaster.web.errors import forbidden, invalid, type_name
from broadcaster.web.keys import AUDIENCE, SETTINGS, WEBINARS
from broadcaster.web.routes_host import floor_change, participant_target
from broadcaster.web.text import clean_text
from broadcaster.web.webinars import REMOVED

routes = web.RouteTableDef()


def _flag(body: dict[str, Any], name: str) -> bool:
    if name not in body:
        raise invalid(f"field {name!r} is required")
    value = body[name]
    if not isinstance(value, bool):
        raise invalid(f"field {name!r} must be true or false, not {type_name(value)}")
    return value


def _sort(request: web.Request) -> str:
    sort = request.query.get("sort", "top")
    if sort not in SORTS:
        raise invalid(f"query 'sort' must be one of {', '.join(SORTS)}")
    return sort


def _address(request: web.Request) -> str:
    return client_key(request, request.app[SETTINGS].trusted_proxy_networks)


def _caller(request: web.Request, *, live: bool) -> tuple[str, Audience, Claims]:
    """Return the room, the audience and the verified token of a viewer route's caller.

    In the order a caller learns what is wrong: the room (404, or 409 unless ``live``),
    then the token (401/403).
    """
    room = request.match_info["room"]
    audience = request.app[AUDIENCE]
    (audience.webinars.get_live if live else audience.webinars.get)(room)
    return room, audience, participant(request, room)


# --- viewers -------------------------------------------------------------------------
@routes.get("/api/webinars/{room}/hand")
async def my_hand(request: web.Request) -> web.Response:
    """Tell a participant whether their hand is up, its place, and whether they speak."""
    room, audience, who = _caller(request, live=False)
    return web.json_response(audience.hand(room, who.identity))


@routes.post("/api/webinars/{room}/hand")
async def raise_hand(request: web.Request) -> web.Response:
    """Raise the caller's hand with ``{"raised": true}`` (at the back), lower it with false."""
    room, audience, who = _caller(request, live=True)
    body = await read_object(request, {"raised"})
    raised = _flag(body, "raised")
    audience.admit(room, who.identity, _address(request))
    name = clean_text(who.name or "")[:64] or who.identity
    return web.json_response(audience.set_hand(room, who.identity, name, raised))


@routes.get("/api/webinars/{room}/qa")
async def board(request: web.Request) -> web.Response:
    """List the questions for the audience (``?sort=top|new``), hidden ones left out."""
    room, audience, who = _caller(request, live=False)
    if audience.store.banned(room, who.identity):
        raise forbidden(REMOVED)
    return web.json_response({"room": room, "sort": _sort(request),
                              "questions": audience.board(room, who.identity,
                                                          _sort(request))})


@routes.post("/api/webinars/{room}/questions/{qid}/vote")
async def vote(request: web.Request) -> web.Response:
    """Add the caller's one vote with ``{"up": true}``; false takes it back."""
    room = request.match_info["room"]
    audience = request.app[AUDIENCE]
    audience.webinars.get_live(room)
    qid = question_id(request.match_info["qid"])
    who = participant(request, room)
    up = _flag(await read_object(request, {"up"}), "up")
    audience.admit(room, who.identity, _address(request))
    return web.json_response(audience.vote(room, qid, who.identity, up))


@routes.post("/api/webinars/{room}/questions/{qid}/ask")
async def speaker_asks(request: web.Request) -> web.Response:
    """Let the speaker pick a question for the avatar (the live floor decides, not a role)."""
    room = request.match_info["room"]
    svc = request.app[WEBINARS]
    svc.get_live(room)
    qid = question_id(request.match_info["qid"])
    await read_object(request, set())
    if not is_host(request) and not svc.may_read_questions(room,
                                                           participant(request, room).identity):
        raise forbidden("only the host and whoever holds the floor can ask the avatar")
    question = await request.app[AUDIENCE].ask_avatar(room, qid)
    return web.json_response(question.as_json())


# --- host ----------------------------------------------------------------------------
@routes.get("/api/host/webinars/{room}/hands")
async def hands(request: web.Request) -> web.Response:
    """List the raised hands in the order they went up."""
    room = request.match_info["room"]
    return web.json_response({"room": room, "hands": request.app[AUDIENCE].hands(room)})


@routes.post("/api/host/webinars/{room}/hands/{identity}/floor")
async def hand_floor(request: web.Request) -> web.Response:
    """Give the hand's owner the floor in one click (promote); the hand goes down."""
    return await floor_change(request, request.app[AUDIENCE].give_floor)


@routes.delete("/api/host/webinars/{room}/hands/{identity}")
async def lower_hand(request: web.Request) -> web.Response:
    """Put someone's hand down without giving them the floor."""
    await read_object(request, set())
    room, identity = participant_target(request)
    return web.json_response({"room": room, "identity": identity,
                              "lowered": request.app[AUDIENCE].lower(room, identity)})


@routes.get("/api/host/webinars/{room}/qa")
async def host_board(request: web.Request) -> web.Response:
    """List every question with its state and votes (``?sort=top|new``)."""
    room = request.match_info["room"]
    return web.json_response({"room": room, "sort": _sort(request),
                              "questions": request.app[AUDIENCE].for_host(room,
                                                                          _sort(request))})


@routes.post("/api/host/webinars/{room}/questions/{qid}")
async def moderate(request: web.Request) -> web.Response:
    """Set a question's state: ``{"state": "open"|"answered"|"hidden"}``."""
    room = request.match_info["room"]
    request.app[WEBINARS].get(room)
    qid = question_id(request.match_info["qid"])
    body = await read_object(request, {"state"})
    state = req_str(body, "state")
    return web.json_response(request.app[AUDIENCE].set_state(room, qid, state).as_json())


@routes.post("/api/host/webinars/{room}/questions/{qid}/ask")
async def host_asks(request: web.Request) -> web.Response:
    """Send a question to the avatar on stage; it says who asked, then answers."""
    room = request.match_info["room"]
    request.app[WEBINARS].get_live(room)
    qid = question_id(request.match_info["qid"])
    await read_object(request, set())
    return web.json_response((await request.app[AUDIENCE].ask_avatar(room, qid)).as_json())

