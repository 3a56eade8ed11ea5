"""Each role trying what it must not, on the real livekit-server and the web app's API.

An outsider holds a viewer token (anyone may join); a presenter holds one with the
microphone. Neither may rename itself or change its metadata or attributes in the room
(to pose as the host, the avatar or the bot: the floor guard trusts a ``role`` attribute
of ``bot`` or ``host``), call LiveKit's RoomService with its token, or pass a token whose
claims it edited. A viewer the host once handed the floor keeps a presenter's token
after the demotion; it does not make her the presenter (the rehearsal is the
presenter's).
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from datetime import timedelta
from typing import Any

import aiohttp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from livekit import api, rtc

from broadcaster.roles import Role, mint_token, verify_token
from broadcaster.room_connect import connect_room
from tests.fixtures_web import WebClient, connect, joined, server_view, wait_until

FUZZ = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))
#: what an audience token might try on LiveKit's server API (Twirp, the token as bearer)
ROOM_SERVICE_CALLS = [
    ("ListRooms", {}),
    ("ListParticipants", {"room": "{room}"}),
    ("UpdateParticipant", {"room": "{room}", "identity": "{me}",
                           "permission": {"can_publish": True, "can_publish_data": True,
                                          "can_subscribe": True}}),
    ("UpdateParticipant", {"room": "{room}", "identity": "{me}", "name": "Host",
                           "attributes": {"role": "bot"}}),
    ("RemoveParticipant", {"room": "{room}", "identity": "{other}"}),
    ("MutePublishedTrack", {"room": "{room}", "identity": "{other}", "track_sid": "TR_x",
                            "muted": True}),
    ("SendData", {"room": "{room}", "data": base64.b64encode(b"forged").decode(),
                  "kind": 0, "topic": "broadcaster.ask"}),
    ("UpdateRoomMetadata", {"room": "{room}", "metadata": '{"speaker": "{me}"}'}),
    ("DeleteRoom", {"room": "{room}"}),
    ("CreateRoom", {"name": "{room}-evil"}),
]


def _fill(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        for key, name in names.items():
            value = value.replace("{" + key + "}", name)
        return value
    if isinstance(value, dict):
        return {k: _fill(v, names) for k, v in value.items()}
    return value


async def test_audience_tokens_cannot_rename_themselves_or_call_the_server_api(
    web_client: WebClient, lkapi: api.LiveKitAPI,
) -> None:
    c = web_client
    w = await c.new_webinar("No self-promotion")
    room = w["room"]
    vic = await joined(c, room, "vic", name="Vic")
    pat = await joined(c, room, "pat", "presenter", name="Pat", code=w["presenter_code"])
    rooms = [await connect(vic["url"], vic["token"]), await connect(pat["url"], pat["token"])]
    try:
        for r in rooms:
            lp = r.local_participant
            for attempt in (lp.set_name("Host"), lp.set_metadata('{"role": "host"}'),
                            lp.set_attributes({"role": "bot"})):
                try:  # LiveKit drops the request (the SDK may wait for an answer forever)
                    await asyncio.wait_for(attempt, 2.0)
                except Exception:  # noqa: BLE001 - refused or never answered: both fine
                    pass
        await asyncio.sleep(1.0)  # time for an accepted update to reach the server
        for identity, name, role in (("vic", "Vic", "viewer"), ("pat", "Pat", "presenter")):
            info = await server_view(lkapi, room, identity)
            assert (info.name, info.metadata, dict(info.attributes)) == (
                name, "", {"role": role}), info
            assert not info.permission.can_update_metadata

        async with aiohttp.ClientSession() as http:
            for me, other, token in (("vic", "pat", vic["token"]), ("pat", "vic", pat["token"])):
                for method, body in ROOM_SERVICE_CALLS:
                    url = f"{c.settings.livekit_http_url}/twirp/livekit.RoomService/{method}"
                    async with http.post(url, json=_fill(body, {"room": room, "me": me,
                                                                "other": other}),
                                         headers={"Authorization": f"Bearer {token}"}) as r:
                        assert r.status in (401, 403), (me, method, r.status, await r.text())
        people = {p.identity for p in (await lkapi.room.list_participants(
            api.ListParticipantsRequest(room=room))).participants}
        assert {"vic", "pat"} <= people
        assert not (await server_view(lkapi, room, "vic")).permission.can_publish
    finally:
        await asyncio.gather(*(r.disconnect() for r in rooms))


def _segments(token: str) -> tuple[str, dict[str, Any], str]:
    head, body, sig = token.split(".")
    return head, json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))), sig


def _encode(claims: dict[str, Any]) -> str:
    raw = json.dumps(claims, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


#: edits an attacker makes to a viewer token's claims, keeping the original signature
EDITS = st.fixed_dictionaries({}, optional={
    "sub": st.sampled_from(["pat", "avatar-bot", "host-1", "vic2"]),
    "name": st.sampled_from(["Host", "Avatar", ""]),
    "exp": st.integers(0, 2**40),
    "attributes": st.just({"role": "host"}),
    "video": st.fixed_dictionaries({}, optional={
        "canPublish": st.booleans(), "canPublishData": st.booleans(),
        "roomAdmin": st.booleans(), "roomList": st.booleans(), "hidden": st.booleans(),
        "canUpdateOwnMetadata": st.booleans(), "room": st.just("other-room"),
    }),
})


@FUZZ
@given(edit=EDITS)
async def test_a_token_with_edited_claims_is_refused(web_client: WebClient,
                                                     edit: dict[str, Any]) -> None:
    """Any change to a token's claims without the secret: 401 at the web app."""
    c = web_client
    room = "edited-claims"
    if (await c.call("GET", f"/api/webinars/{room}")).status == 404:
        await c.new_webinar("Edited claims", room)
    token = mint_token(c.settings, Role.VIEWER, room, "vic")
    head, claims, sig = _segments(token)
    video = {**claims["video"], **edit.pop("video", {})}
    edited = {**claims, **edit, "video": video}
    if edited == claims:
        return
    forged = f"{head}.{_encode(edited)}.{sig}"
    for path, method, body in ((f"/api/webinars/{room}/questions", "POST", {"text": "hi"}),
                               (f"/api/webinars/{room}/qa", "GET", ...),
                               (f"/api/webinars/{room}/hand", "POST", {"raised": True})):
        r = await c.call(method, path, body, token=forged)
        assert r.status == 401 and r.data["error"], (path, edit, r.text)


async def test_livekit_refuses_forged_expired_and_unsigned_tokens(
    web_client: WebClient,
) -> None:
    c, s = web_client, web_client.settings
    w = await c.new_webinar("Forged joins")
    room = w["room"]
    good = mint_token(s, Role.VIEWER, room, "vic")
    head, claims, sig = _segments(good)
    claims["video"] |= {"canPublish": True, "canPublishData": True, "roomAdmin": True}
    grants = api.VideoGrants(room_join=True, room=room, can_publish=True,
                             can_publish_data=True)
    unsigned = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    forged = {
        "edited claims": f"{head}.{_encode(claims)}.{sig}",
        "another secret": api.AccessToken(s.livekit_api_key, "x" * 40).with_identity(
            "eve").with_grants(grants).to_jwt(),
        "expired": api.AccessToken(s.livekit_api_key, s.livekit_api_secret).with_identity(
            "eve").with_grants(grants).with_ttl(timedelta(seconds=-300)).to_jwt(),
        "alg none": f"{unsigned}.{_encode(claims)}.",
    }
    for why, token in forged.items():
        room_ = rtc.Room()
        try:
            await connect_room(room_, s.effective_livekit_url, token, seconds=5)
        except Exception:  # noqa: BLE001 - refused (any SDK error) or never let in
            pass
        else:
            await room_.disconnect()
            raise AssertionError(f"livekit-server let in a token with {why}")
        r = await c.call("POST", f"/api/webinars/{room}/questions", {"text": "hi"}, token=token)
        assert r.status == 401, (why, r.text)


async def test_a_viewer_once_given_the_floor_is_not_the_presenter(
    web_client: WebClient, lkapi: api.LiveKitAPI,
) -> None:
    """Promoted, she rejoins while speaking (her page does on a reload) and gets a
    presenter's token; neither then nor after the demotion may she start or stop the
    presenter's rehearsal (an avatar session and a speech pipeline on the host's CPU)."""
    c = web_client
    w = await c.new_webinar("Promoted is not presenter")
    room = w["room"]
    path = f"/api/webinars/{room}/rehearsal"
    first = await joined(c, room, "vee", name="Vee")
    vee = await connect(first["url"], first["token"])
    try:
        promoted = await c.host("POST", f"/api/host/webinars/{room}/participants/vee/promote")
        assert promoted.status == 200, promoted.text
        again = await joined(c, room, "vee", name="Vee", claim=first["claim"])
        claims = verify_token(c.settings, again["token"])
        assert (claims.attributes or {}).get("role") == Role.PRESENTER  # what she holds
        for token in (first["token"], again["token"]):
            for method in ("POST", "DELETE"):
                r = await c.call(method, path, {}, token=token)
                assert r.status == 403 and "presenter" in r.data["error"], (method, r.text)
        demoted = await c.host("POST", f"/api/host/webinars/{room}/participants/vee/demote")
        assert demoted.status == 200, demoted.text
        r = await c.call("POST", path, {}, token=again["token"])
        assert r.status == 403, r.text
        assert c.app is not None
        assert await wait_until(lambda: _no_rehearsal(c, room), timeout=2.0)
    finally:
        await vee.disconnect()


async def _no_rehearsal(c: WebClient, room: str) -> bool:
    from broadcaster.web.keys import REHEARSALS

    assert c.app is not None
    return c.app[REHEARSALS].status(room)["state"] != "running"


def _host_paths(app: Any, room: str) -> list[tuple[str, str]]:
    """(method, path) of every host-only route, its parameters filled in."""
    found = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        template = info.get("formatter") or info.get("path") or ""
        if template.startswith("/api/host/") and route.method != "HEAD":
            path = (template.replace("{room}", room).replace("{identity}", "vic")
                    .replace("{qid}", "1").replace("{name}", "x.mp4"))
            found.append((route.method, path))
    return found


def _disguise(path: str, data: st.DataObject) -> str:
    """``path`` the way a client may spell it: one kind of disguise per example."""
    kind = data.draw(st.sampled_from(["encode", "encode", "dots", "slashes", "suffix"]))
    cut = data.draw(st.integers(1, path.count("/") - 1))
    head = "/".join(path.split("/")[:cut + 1])
    tail = path[len(head) + 1:]
    if kind == "encode":  # a few letters percent-encoded, anywhere
        chars = list(path)
        for i in data.draw(st.lists(st.integers(1, len(path) - 1), min_size=1, max_size=3)):
            if len(chars[i]) == 1 and chars[i] != "/":  # (not one encoded already)
                chars[i] = f"%{ord(chars[i]):02x}"
        return "".join(chars)
    if kind == "dots":
        dots = data.draw(st.sampled_from([".", "%2e", "x/..", "x/%2e%2e"]))
        return f"{head}/{dots}/{tail}"
    if kind == "slashes":
        return f"{head}//{tail}"
    return path + data.draw(st.sampled_from(["/", ";x", "%00", "?k=1", "#f", "%2f"]))


async def _raw(port: int, method: str, path: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n"
                     "Connection: close\r\n\r\n{}".encode())
        await writer.drain()
        status = (await reader.readline()).split()
        return int(status[1])
    finally:
        writer.close()


@FUZZ
@given(data=st.data())
async def test_no_spelling_of_a_host_path_gets_past_the_host_key(web_client: WebClient,
                                                                 data: st.DataObject) -> None:
    """Dot segments, percent-encoding, doubled slashes, suffixes: every host route still
    answers 401 (or a 4xx for a path that no longer names one) without the key."""
    c = web_client
    assert c.app is not None
    room = "spelled-paths"
    if (await c.call("GET", f"/api/webinars/{room}")).status == 404:
        await c.new_webinar("Spelled paths", room)
    method, path = data.draw(st.sampled_from(_host_paths(c.app, room)))
    spelled = _disguise(path, data)
    status = await _raw(c.settings.web_port, method, spelled)
    assert 400 <= status < 500 and status != 409, (method, spelled, status)
    assert (await c.call("GET", f"/api/webinars/{room}")).data["state"] == "live"


STAFF_NAMES = ["Host", "Avatar", "Presenter", "Moderator", "Admin", "The host", "avatar-bot"]


def _respell(name: str, data: st.DataObject) -> str:
    """``name`` in another case, spacing or Unicode form that reads the same."""
    out = "".join(c.upper() if data.draw(st.booleans()) else c.lower() for c in name)
    if data.draw(st.booleans()):  # fullwidth letters (NFKC folds them back)
        out = "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalpha() else c for c in out)
    pad = data.draw(st.sampled_from(["", " ", "_", ".", "-", " * "]))
    return f"{pad}{out}{pad[::-1]}".strip() or out


@FUZZ
@given(data=st.data())
async def test_nobody_in_the_audience_takes_a_staff_name(web_client: WebClient,
                                                         data: st.DataObject) -> None:
    """A viewer named "Host" or "Avatar" would post questions the audience reads as the
    staff's (there is no pre-moderation); the names read as the same are refused too."""
    c = web_client
    room = "staff-names"
    if (await c.call("GET", f"/api/webinars/{room}")).status == 404:
        await c.new_webinar("Staff names", room)
    name = _respell(data.draw(st.sampled_from(STAFF_NAMES)), data)
    identity = f"fan-{uuid.uuid4().hex[:12]}"
    r = await c.join(room, identity, name=name)
    assert r.status == 422 and "reserved" in r.data["error"], (name, r.text)
    assert c.store().claim(room, identity) is None  # nothing kept


async def test_names_that_only_contain_a_staff_word_are_fine(web_client: WebClient) -> None:
    c = web_client
    w = await c.new_webinar("Ordinary names")
    for i, name in enumerate(["Hosta Gardener", "Avatar Fan", "Pat Presenter", "Adminah", "Thea"]):
        assert (await c.join(w["room"], f"ok-{i}", name=name)).status == 200, name
    r = await c.join(w["room"], "pres", "presenter", name="Presenter", code=w["presenter_code"])
    assert r.status == 200, r.text  # the presenter (she has the code) may call herself that
