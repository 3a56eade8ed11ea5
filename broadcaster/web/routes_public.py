"""Public API: health, webinar info, join, audience count, questions.

Everything the audience sends comes through here, validated and limited: joins and
questions per source address (token buckets, ``client_address``), questions also per
identity; text cleaned of control and bidi characters (``text``).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable

from aiohttp import web

from broadcaster.roles import Role
from broadcaster.web.auth import is_host, participant
from broadcaster.web.body import opt_str, read_object, req_str
from broadcaster.web.client_address import client_key
from broadcaster.web.errors import forbidden, invalid, too_many
from broadcaster.web.keys import LIVEKIT, SETTINGS, STORE, WEBINARS
from broadcaster.web.livekit_admin import LiveKitError
from broadcaster.web.text import clean_text
from broadcaster.web.webinars import REMOVED

routes = web.RouteTableDef()
MAX_AFTER_DIGITS = 18
READY_TIMEOUT_SECS = 3.0


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """``GET /healthz`` (anyone): readiness; the demo webinar is set up before the port opens."""
    return web.json_response({"ok": True})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Ready to serve: LiveKit and the store both answer (k8s readiness probe).

    503 with ``failed`` naming the checks that did not pass (no secrets, no URLs).
    """
    checks = {
        "livekit": await _check(request.app[LIVEKIT].ping()),
        "store": await _check(asyncio.to_thread(request.app[STORE].ping)),
    }
    failed = sorted(name for name, result in checks.items() if result != "ok")
    body = {"ready": not failed, "checks": checks, "failed": failed}
    return web.json_response(body, status=503 if failed else 200)


async def _check(probe: Awaitable[None]) -> str:
    try:
        await asyncio.wait_for(probe, READY_TIMEOUT_SECS)
    except TimeoutError:
        return f"no answer within {READY_TIMEOUT_SECS:g} s"
    except (LiveKitError, sqlite3.Error, OSError) as exc:
        return f"failed: {type(exc).__name__}"
    return "ok"


@routes.get("/api/webinars/{room}")
async def webinar_info(request: web.Request) -> web.Response:
    """``GET /api/webinars/{room}`` (anyone with the link): title, speaker, state."""
    svc = request.app[WEBINARS]
    return web.json_response(svc.public(svc.get(request.match_info["room"])))


@routes.post("/api/webinars/{room}/join")
async def join(request: web.Request) -> web.Response:
    """``POST .../join`` (anyone; presenters with the code): a LiveKit token and a claim.

    Limited per source address (429 with Retry-After) before the body is even read.
    """
    svc = request.app[WEBINARS]
    room = request.match_info["room"]
    svc.get_live(room)  # unknown room / ended before judging the body
    settings = request.app[SETTINGS]
    wait = svc.join_limit.hit(client_key(request, settings.trusted_proxy_networks))
    if wait is not None:
        raise too_many(f"too many joins from your address: try again in "
                       f"{max(1, round(wait))} s", wait)
    body = await read_object(request, {"identity", "name", "role", "code", "claim",
                                       "lost"})
    answer = await svc.join(
        room,
        identity=req_str(body, "identity"),
        name=opt_str(body, "name"),
        role=opt_str(body, "role") or Role.VIEWER.value,
        code=opt_str(body, "code"),
        claim=opt_str(body, "claim"),
        lost=opt_str(body, "lost"),
    )
    return web.json_response(answer)


@routes.get("/api/webinars/{room}/audience")
async def audience(request: web.Request) -> web.Response:
    """``GET .../audience`` (anyone): viewer and participant counts, briefly cached."""
    return web.json_response(await request.app[WEBINARS].audience(request.match_info["room"]))


@routes.post("/api/webinars/{room}/questions")
async def ask(request: web.Request) -> web.Response:
    """``POST .../questions`` (a participant token of this room) ``{text}``: 201, the question.

    Text is cleaned first; limited per source address and per identity (429).
    """
    room = request.match_info["room"]
    svc = request.app[WEBINARS]
    svc.get_live(room)
    claims = participant(request, room)
    if svc.store.banned(room, claims.identity):
        raise forbidden(REMOVED)
    body = await read_object(request, {"text"})
    text = clean_text(req_str(body, "text"))
    settings = request.app[SETTINGS]
    limit = settings.max_question_chars
    if not 1 <= len(text) <= limit:
        raise invalid(f"field 'text' must be 1-{limit} characters (control and "
                      "direction-changing characters do not count)")
    address = client_key(request, settings.trusted_proxy_networks)
    wait = svc.question_address_limit.hit(address)
    if wait is not None:
        svc.questions_refused[room] += 1
        raise too_many(f"too many questions from your address: try again in "
                       f"{max(1, round(wait))} s", wait)
    wait = svc.question_limit.hit((room, claims.identity))
    if wait is not None:
        svc.questions_refused[room] += 1
        raise too_many(f"at most {settings.questions_per_minute} questions a minute: "
                       f"try again in {max(1, round(wait))} s", wait)
    question = request.app[STORE].add_question(
        room, claims.identity, clean_text(claims.name or "") or claims.identity, text
    )
    return web.json_response(question.as_json(), status=201)


@routes.get("/api/webinars/{room}/questions")
async def questions(request: web.Request) -> web.Response:
    """``GET .../questions?after=<id>`` (host, or the speaker): the questions, in order.

    The speaker is whoever holds the floor right now (their token's identity is the
    speaker's: the live floor, not a role).
    """
    room = request.match_info["room"]
    svc = request.app[WEBINARS]
    svc.get(room)
    if not is_host(request) and not svc.may_read_questions(room,
                                                           participant(request, room).identity):
        raise forbidden("only the host and whoever holds the floor can read questions")
    raw = request.query.get("after", "0")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > MAX_AFTER_DIGITS:
        raise invalid("query 'after' must be a non-negative integer")
    items = request.app[STORE].questions(room, after=int(raw))
    return web.json_response({"room": room, "questions": [q.as_json() for q in items]})
