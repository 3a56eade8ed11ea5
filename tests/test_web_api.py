"""The web app's HTTP surface: host key on every host route, bad input everywhere gets a
4xx JSON reason and changes nothing, pages and vendored files are served."""

from __future__ import annotations

import asyncio
import json
import re

import aiohttp
import pytest
from aiohttp import web as aioweb
from aiohttp.test_utils import TestClient, TestServer
from livekit import api

from broadcaster.netutil import free_port, port_taken, wait_http_ok
from broadcaster.roles import Role, mint_token
from broadcaster.web import serve
from broadcaster.web.app import create_app
from broadcaster.web.keys import STORE
from tests.fixtures_web import WebClient, unique_room

BIG = b'{"title": "' + b"x" * (70 * 1024) + b'"}'


def is_error(reply, status: int, mentions: str | None = None) -> None:
    assert reply.status == status, (reply.status, reply.text)
    assert isinstance(reply.data, dict) and set(reply.data) == {"error"}, reply.text
    assert reply.data["error"], "empty reason"
    if mentions:
        assert mentions in reply.data["error"], reply.data["error"]


async def snapshot(c: WebClient, room: str | None = None) -> str:
    """Everything a bad request could have changed, as one comparable string."""
    state = {"webinars": (await c.host("GET", "/api/host/webinars")).data}
    if room:
        people = await c.host("GET", f"/api/host/webinars/{room}/participants")
        state["participants"] = people.data
        state["questions"] = (await c.host("GET", f"/api/webinars/{room}/questions")).data
        state["bot"] = (await c.host("GET", f"/api/host/webinars/{room}/bot")).data
    return json.dumps(state, sort_keys=True)


async def test_health_and_security_headers(web_client: WebClient):
    reply = await web_client.call("GET", "/healthz")
    assert reply.status == 200 and reply.data == {"ok": True}
    csp = reply.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert reply.headers["Referrer-Policy"] == "no-referrer"
    assert reply.headers["X-Content-Type-Options"] == "nosniff"


async def test_every_host_route_needs_the_host_key(web_client: WebClient, web_app):
    w = await web_client.new_webinar("Guarded")
    before = await snapshot(web_client, w["room"])
    routes = sorted({
        (r.method, r.resource.canonical) for r in web_app.router.routes()
        if r.resource is not None and r.resource.canonical.startswith("/api/host/")
        and r.method != "HEAD"
    })
    assert len(routes) >= 12
    wrong = [{}, {"Authorization": "Bearer not-the-key"}, {"Authorization": "Basic abc"},
             {"Authorization": f"Bearer {web_client.settings.livekit_api_secret}"},
             {"Authorization": "Bearer " + mint_token(web_client.settings, Role.PRESENTER,
                                                      w["room"], "sneaky")}]
    for method, path in routes:
        path = path.replace("{room}", w["room"]).replace("{identity}", "alice")
        for headers in wrong:
            reply = await web_client.call(method, path, {"title": "x"} if method == "POST" else ...,
                                          headers=headers)
            is_error(reply, 401, "host key")
    # questions are readable with the host key only (or a presenter token)
    is_error(await web_client.call("GET", f"/api/webinars/{w['room']}/questions"), 401)
    assert await snapshot(web_client, w["room"]) == before


async def test_create_webinar_sets_room_metadata(web_client: WebClient, lkapi):
    room = unique_room("meta")
    body = {"title": "Launch day", "room": room}
    reply = await web_client.host("POST", "/api/host/webinars", body)
    assert reply.status == 201, reply.text
    w = reply.data
    assert w["room"] == room and w["state"] == "live" and w["speaker"] is None
    assert w["viewer_url"].endswith(f"/w/{room}")
    assert w["presenter_url"].endswith(f"/w/{room}/present?code={w['presenter_code']}")
    rooms = await lkapi.room.list_rooms(api.ListRoomsRequest(names=[room]))
    assert json.loads(rooms.rooms[0].metadata) == {"title": "Launch day", "speaker": None,
                                                   "state": "live"}
    listed = (await web_client.host("GET", "/api/host/webinars")).data["webinars"]
    assert room in [x["room"] for x in listed]
    # the public view of a webinar never carries the presenter code
    public = await web_client.call("GET", f"/api/webinars/{room}")
    assert public.data == {"room": room, "title": "Launch day", "speaker": None, "state": "live"}
    # a room name is derived from the title when none is given
    auto = await web_client.host("POST", "/api/host/webinars", {"title": "Q&A: Ünïcode!"})
    assert auto.status == 201 and re.fullmatch(r"q-a-n-code-[0-9a-f]{4}", auto.data["room"])


@pytest.mark.parametrize(("body", "status", "mentions"), [
    (b"{not json", 400, "JSON"),
    (b"\xff\xfe", 400, "JSON"),
    (b"[]", 422, "object"),
    (b"{}", 422, "title"),
    (b'{"title": 5}', 422, "title"),
    (b'{"title": null}', 422, "title"),
    (b'{"title": ""}', 422, "title"),
    (b'{"title": "   "}', 422, "title"),
    (b'{"title": "' + b"t" * 500 + b'"}', 422, "title"),
    (b'{"title": "ok", "room": "Bad Room!"}', 422, "room"),
    (b'{"title": "ok", "room": "' + b"r" * 500 + b'"}', 422, "room"),
    (b'{"title": "ok", "room": 7}', 422, "room"),
    (b'{"title": "ok", "speaker": "x"}', 422, "speaker"),
    (BIG, 413, "too large"),
])
async def test_create_webinar_rejects_bad_input(web_client: WebClient, body, status, mentions):
    before = await snapshot(web_client)
    reply = await web_client.host("POST", "/api/host/webinars", data=body)
    is_error(reply, status, mentions)
    assert await snapshot(web_client) == before


async def test_create_webinar_twice_is_a_conflict(web_client: WebClient):
    w = await web_client.new_webinar("Once")
    before = await snapshot(web_client, w["room"])
    body = {"title": "Twice", "room": w["room"]}
    reply = await web_client.host("POST", "/api/host/webinars", body)
    is_error(reply, 409, w["room"])
    assert await snapshot(web_client, w["room"]) == before


@pytest.fixture
async def webinar(web_client: WebClient) -> dict:
    return await web_client.new_webinar("Bad input target")


async def test_join_rejects_bad_input(web_client: WebClient, webinar: dict, web_app):
    room = webinar["room"]
    before = await snapshot(web_client, room)
    path = f"/api/webinars/{room}/join"
    cases = [
        (f"/api/webinars/{unique_room('nope')}/join", {"identity": "alice"}, 404, "no webinar"),
        ("/api/webinars/Bad_Room/join", {"identity": "alice"}, 422, "room"),
        (f"/api/webinars/{'r' * 500}/join", {"identity": "alice"}, 422, "room"),
        (path, {"identity": "al ice"}, 422, "identity"),
        (path, {"identity": "<script>"}, 422, "identity"),
        (path, {"identity": "a" * 500}, 422, "identity"),
        (path, {"identity": "ünï"}, 422, "identity"),
        (path, {"identity": "heygen"}, 422, "reserved"),
        (path, {"identity": web_client.settings.bot_identity}, 422, "reserved"),
        (path, {}, 422, "identity"),
        (path, {"identity": 42}, 422, "identity"),
        (path, {"identity": ["alice"]}, 422, "identity"),
        (path, {"identity": "alice", "name": 3}, 422, "name"),
        (path, {"identity": "alice", "name": "n" * 500}, 422, "name"),
        (path, {"identity": "alice", "role": "host"}, 422, "role"),
        (path, {"identity": "alice", "role": "bot"}, 422, "role"),
        (path, {"identity": "alice", "role": 1}, 422, "role"),
        (path, {"identity": "alice", "role": "presenter"}, 403, "presenter code"),
        (path, {"identity": "alice", "role": "presenter", "code": "guess"}, 403, "presenter code"),
        (path, {"identity": "alice", "claim": 5}, 422, "claim"),
        (path, {"identity": "alice", "admin": True}, 422, "admin"),
    ]
    for url, body, status, mentions in cases:
        is_error(await web_client.call("POST", url, body), status, mentions)
    for raw, status in [(b"{oops", 400), (b'"alice"', 422), (BIG, 413)]:
        is_error(await web_client.call("POST", path, data=raw), status)
    assert await snapshot(web_client, room) == before
    assert web_app[STORE].claims(room) == {}


async def test_errors_from_aiohttp_are_json(web_client: WebClient):
    is_error(await web_client.call("GET", "/no/such/page"), 404)
    is_error(await web_client.call("GET", "/static/no-such-file.js"), 404)
    is_error(await web_client.call("GET", "/static/../broadcaster/config/__init__.py"), 404)
    reply = await web_client.call("DELETE", "/healthz")
    is_error(reply, 405, "DELETE")
    assert "GET" in reply.headers["Allow"]
    is_error(await web_client.call("PUT", "/api/webinars/x/join", {}), 405)
    is_error(await web_client.call("GET", "/w/Bad_Room"), 422, "room")
    is_error(await web_client.call("GET", f"/w/{unique_room()}"), 404)
    is_error(await web_client.call("GET", f"/w/{unique_room()}/present"), 404)
    is_error(await web_client.call("GET", f"/api/webinars/{unique_room()}/audience"), 404)
    is_error(await web_client.call("GET", "/api/webinars/UPPER/audience"), 422, "room")
    is_error(await web_client.call("GET", f"/api/webinars/{unique_room()}"), 404)
    is_error(await web_client.host("GET", f"/api/host/webinars/{unique_room()}"), 404)
    is_error(await web_client.host("GET", f"/api/host/webinars/{unique_room()}/participants"), 404)
    is_error(await web_client.host("POST", f"/api/host/webinars/{unique_room()}/end"), 404)
    is_error(await web_client.host("POST", f"/api/host/webinars/{unique_room()}/bot/start"), 404)
    is_error(await web_client.host("GET", "/api/host/nothing-here"), 404)


async def test_host_participant_actions_reject_bad_input(web_client: WebClient, webinar: dict):
    room = webinar["room"]
    before = await snapshot(web_client, room)
    base = f"/api/host/webinars/{room}/participants"
    for action in ("promote", "demote", "remove"):
        is_error(await web_client.host("POST", f"{base}/nobody/{action}"), 404, "not connected")
        is_error(await web_client.host("POST", f"{base}/bad%20id/{action}"), 422, "identity")
        is_error(await web_client.host("POST", f"{base}/{'a' * 500}/{action}"), 422, "identity")
        is_error(await web_client.host("POST", f"{base}/alice/{action}", data=b"{x"), 400)
        is_error(await web_client.host("POST", f"{base}/alice/{action}", {"x": 1}), 422, "'x'")
        is_error(await web_client.host("POST", f"{base}/alice/{action}", data=BIG), 413)
    for path in ("end", "token", "bot/start", "bot/stop"):
        is_error(await web_client.host("POST", f"/api/host/webinars/{room}/{path}", data=b"]"),
                 400)
        is_error(await web_client.host("POST", f"/api/host/webinars/{room}/{path}", [1]), 422)
    assert await snapshot(web_client, room) == before


async def test_questions_reject_bad_input(web_client: WebClient, webinar: dict):
    room = webinar["room"]
    s = web_client.settings
    other = await web_client.new_webinar("Other room")
    before = await snapshot(web_client, room)
    viewer = mint_token(s, Role.VIEWER, room, "quentin")
    elsewhere = mint_token(s, Role.VIEWER, other["room"], "quentin")
    path = f"/api/webinars/{room}/questions"
    limit = s.max_question_chars
    is_error(await web_client.call("POST", path, {"text": "hi"}), 401, "token")
    is_error(await web_client.call("POST", path, {"text": "hi"}, token="garbage"), 401)
    is_error(await web_client.call("POST", path, {"text": "hi"}, token=elsewhere), 403, "room")
    is_error(await web_client.call("POST", f"/api/webinars/{unique_room()}/questions",
                                   {"text": "hi"}, token=viewer), 404)
    for body, mentions in [({}, "text"), ({"text": ""}, "text"), ({"text": "   "}, "text"),
                           ({"text": 12}, "text"), ({"text": "x" * (limit + 1)}, "text"),
                           ({"text": "hi", "to": "all"}, "'to'")]:
        is_error(await web_client.call("POST", path, body, token=viewer), 422, mentions)
    is_error(await web_client.call("POST", path, data=b"{", token=viewer), 400)
    is_error(await web_client.call("POST", path, data=BIG, token=viewer), 413)
    # reading: the host key or a presenter token only, and a sane ?after=
    is_error(await web_client.call("GET", path, token=viewer), 403)
    is_error(await web_client.call("GET", path, token="nope"), 401)
    for after in ("-1", "abc", "1.5", "9" * 40):
        is_error(await web_client.host("GET", f"{path}?after={after}"), 422, "after")
    assert await snapshot(web_client, room) == before


async def test_pages_and_vendored_client(web_client: WebClient, webinar: dict):
    room = webinar["room"]
    for path, marker in [("/", "host console"), ("/host", 'id="host-key"'),
                         (f"/w/{room}", 'id="audience-count"'),
                         (f"/w/{room}/present", 'id="mic-level"')]:
        reply = await web_client.call("GET", path)
        assert reply.status == 200 and reply.headers["Content-Type"].startswith("text/html")
        assert marker in reply.text
    js = await web_client.call("GET", "/static/vendor/livekit-client.esm.mjs")
    assert js.status == 200 and js.headers["Content-Type"].startswith("text/javascript")
    assert "registerTextStreamHandler" in js.text
    proto = await web_client.call("GET", "/static/js/protocol.js")
    assert proto.headers["Content-Type"].startswith("text/javascript")
    assert 'export const CAPTION_TOPIC = "lk.transcription";' in proto.text
    for asset in ("/static/js/viewer.js", "/static/js/stage.js", "/static/css/app.css"):
        assert (await web_client.call("GET", asset)).status == 200


async def test_missing_livekit_client_is_a_clear_503(livekit, tmp_path):
    app: aioweb.Application = create_app(livekit.replace(state_dir=str(tmp_path)),
                                         vendor_js=tmp_path / "missing.mjs")
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/static/vendor/livekit-client.esm.mjs")
        assert resp.status == 503
        assert "install" in (await resp.json())["error"]


async def test_end_webinar_then_everything_is_gone(web_client: WebClient, lkapi):
    w = await web_client.new_webinar("Short one")
    room = w["room"]
    viewer = mint_token(web_client.settings, Role.VIEWER, room, "late")
    reply = await web_client.host("POST", f"/api/host/webinars/{room}/end")
    assert reply.status == 200 and reply.data["state"] == "ended" and reply.data["ended_at"]
    rooms = await lkapi.room.list_rooms(api.ListRoomsRequest(names=[room]))
    assert not rooms.rooms
    is_error(await web_client.join(room, "latecomer"), 410, "ended")
    is_error(await web_client.call("POST", f"/api/webinars/{room}/questions", {"text": "hi"},
                                   token=viewer), 410)
    is_error(await web_client.host("POST", f"/api/host/webinars/{room}/participants/x/promote"),
             410)
    is_error(await web_client.host("POST", f"/api/host/webinars/{room}/bot/start"), 410)
    is_error(await web_client.host("POST", f"/api/host/webinars/{room}/token"), 410)
    assert (await web_client.call("GET", f"/api/webinars/{room}")).data["state"] == "ended"
    again = await web_client.host("POST", f"/api/host/webinars/{room}/end")
    assert again.status == 200 and again.data["state"] == "ended"


async def test_livekit_down_is_a_502_and_changes_nothing(livekit, tmp_path):
    dead = livekit.replace(state_dir=str(tmp_path), livekit_url=f"ws://127.0.0.1:{free_port()}")
    auth = {"Authorization": f"Bearer {dead.host_key}"}
    async with TestClient(TestServer(create_app(dead))) as client:
        resp = await client.post("/api/host/webinars", json={"title": "No server", "room": "x1"},
                                 headers=auth)
        assert resp.status == 502 and "livekit" in (await resp.json())["error"]
        listed = await (await client.get("/api/host/webinars", headers=auth)).json()
        assert listed == {"webinars": []}
        dead_app = client.server.app
        dead_app[STORE].create_webinar("x2", "Stored only", "code")
        resp = await client.post("/api/webinars/x2/join", json={"identity": "alice"})
        assert resp.status == 502
        assert dead_app[STORE].claims("x2") == {}
        text = await resp.text()
        assert dead.livekit_api_secret not in text


async def test_serve_runs_until_cancelled_and_creates_the_demo(livekit, tmp_path):
    s = livekit.replace(state_dir=str(tmp_path), web_port=free_port(),
                        demo_room=unique_room("demo"))
    task = asyncio.create_task(serve(s))
    base = f"http://127.0.0.1:{s.web_port}"
    try:
        await wait_http_ok(base + "/healthz", timeout=10)
        async with aiohttp.ClientSession() as http:
            for _ in range(50):
                async with http.get(f"{base}/api/webinars/{s.demo_room}") as resp:
                    if resp.status == 200:
                        assert (await resp.json())["title"] == "Demo webinar"
                        break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("demo webinar not created")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not port_taken(s.web_port)


async def test_pages_get_the_public_livekit_url_behind_a_proxy(livekit, tmp_path):
    """LiveKit reached internally by the app, publicly by browsers: joins hand out the
    public URL and the page's CSP allows it; the server API still uses the internal one."""
    public = "wss://live.example.com"
    s = livekit.replace(state_dir=str(tmp_path), livekit_public_url=public)
    auth = {"Authorization": f"Bearer {s.host_key}"}
    async with TestClient(TestServer(create_app(s))) as client:
        resp = await client.post("/api/host/webinars", json={"title": "Proxied", "room": "px"},
                                 headers=auth)
        assert resp.status == 201, await resp.text()  # created through the internal URL
        joined = await (await client.post("/api/webinars/px/join",
                                          json={"identity": "alice"})).json()
        assert joined["url"] == public
        page = await client.get("/w/px")
        assert page.status == 200
        csp = page.headers["Content-Security-Policy"]
        assert f"{public} https://live.example.com" in csp
        assert s.effective_livekit_url not in csp


def test_the_question_limit_slides() -> None:
    """3 a minute: the 4th waits for the 1st to be a minute old, not for a fixed window."""
    from broadcaster.web.rate_limit import SlidingWindowLimit

    limit = SlidingWindowLimit(3, 60.0)
    key = ("room", "ann")
    assert [limit.hit(key, now=t) for t in (0.0, 10.0, 20.0)] == [None, None, None]
    assert limit.hit(key, now=30.0) == 30.0  # the first one leaves the window at 60 s
    assert limit.hit(("room", "bob"), now=30.0) is None  # per person
    assert limit.hit(key, now=60.0) is None
    assert limit.hit(key, now=61.0) == 9.0  # 10 s's question leaves at 70 s
