"""Raise hand and the moderated Q&A through the web app's API (issue 16, issue 13 item 6),
on the real livekit-server: the hand queue in order, the floor handed over in one click
(LiveKit's own view of permissions and metadata), votes one per identity, hidden
questions gone for viewers, "ask the avatar" reaching the bot's identity only as a
server-sent packet; and every new endpoint fuzzed by hypothesis (never a 5xx)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from livekit import api, rtc
from yarl import URL

from broadcaster.protocol import ASK_TOPIC
from broadcaster.roles import Role, mint_token
from tests.fixtures_web import FakeBot, WebClient, connect, joined, room_metadata, server_view
from tests.helpers.fuzz import SEGMENTS, bodies

FUZZ = settings(max_examples=30, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


def hand_path(room: str) -> str:
    return f"/api/webinars/{room}/hand"


async def test_hands_queue_in_order_and_the_host_hands_the_floor_in_one_click(
        web_client: WebClient, lkapi: api.LiveKitAPI) -> None:
    c = web_client
    w = await c.new_webinar("Hands")
    room = w["room"]
    people = {i: await joined(c, room, i, name=i.title()) for i in ("ann", "bob", "cy")}
    rooms = [await connect(p["url"], p["token"]) for p in people.values()]
    try:
        # nobody's hand is up; raising puts each at the back of the queue
        assert (await c.call("GET", hand_path(room), token=people["ann"]["token"])).data == \
            {"raised": False, "position": None, "speaker": False}
        for n, who in enumerate(("bob", "ann", "cy"), 1):
            r = await c.call("POST", hand_path(room), {"raised": True},
                             token=people[who]["token"])
            assert r.status == 200 and r.data == {"raised": True, "position": n,
                                                  "speaker": False}, r.text
        # raising again keeps the place
        again = await c.call("POST", hand_path(room), {"raised": True},
                             token=people["bob"]["token"])
        assert again.data["position"] == 1
        queue = (await c.host("GET", f"/api/host/webinars/{room}/hands")).data["hands"]
        assert [(h["identity"], h["name"]) for h in queue] == [("bob", "Bob"), ("ann", "Ann"),
                                                              ("cy", "Cy")]
        # ann lowers hers: cy moves up
        r = await c.call("POST", hand_path(room), {"raised": False},
                         token=people["ann"]["token"])
        assert r.data["raised"] is False
        assert (await c.call("GET", hand_path(room), token=people["cy"]["token"])
                ).data["position"] == 2

        # one click: bob gets the floor (LiveKit's view), his hand goes down
        r = await c.host("POST", f"/api/host/webinars/{room}/hands/bob/floor")
        assert r.status == 200 and r.data["speaker"] == "bob", r.text
        assert (await server_view(lkapi, room, "bob")).permission.can_publish
        assert (await room_metadata(lkapi, room))["speaker"] == "bob"
        assert (await c.call("GET", hand_path(room), token=people["bob"]["token"])).data == \
            {"raised": False, "position": None, "speaker": True}
        assert [h["identity"] for h in (await c.host(
            "GET", f"/api/host/webinars/{room}/hands")).data["hands"]] == ["cy"]
        # the speaker cannot queue; a hand nobody raised cannot be given the floor
        assert (await c.call("POST", hand_path(room), {"raised": True},
                             token=people["bob"]["token"])).status == 409
        assert (await c.host("POST", f"/api/host/webinars/{room}/hands/ann/floor")).status == 404
        # the host dismisses cy's hand without the floor
        r = await c.host("DELETE", f"/api/host/webinars/{room}/hands/cy")
        assert r.data["lowered"] is True
        assert not (await c.host("GET", f"/api/host/webinars/{room}/hands")).data["hands"]
        assert not (await server_view(lkapi, room, "cy")).permission.can_publish

        # removed: the old token raises nothing
        await c.call("POST", hand_path(room), {"raised": True}, token=people["cy"]["token"])
        await c.host("POST", f"/api/host/webinars/{room}/participants/cy/remove")
        r = await c.call("POST", hand_path(room), {"raised": True}, token=people["cy"]["token"])
        assert r.status == 403 and "removed" in r.data["error"]
        assert not (await c.host("GET", f"/api/host/webinars/{room}/hands")).data["hands"]
        # a hand of someone who left: the click says so and the hand goes down
        await c.call("POST", hand_path(room), {"raised": True}, token=people["ann"]["token"])
        await rooms[0].disconnect()
        await asyncio.sleep(0.5)
        r = await c.host("POST", f"/api/host/webinars/{room}/hands/ann/floor")
        assert r.status == 404 and "not connected" in r.data["error"], r.text
        assert not (await c.host("GET", f"/api/host/webinars/{room}/hands")).data["hands"]
    finally:
        await asyncio.gather(*(r.disconnect() for r in rooms))


async def test_hand_and_vote_actions_are_rate_limited(web_client: WebClient) -> None:
    c = web_client
    room = (await c.new_webinar("Limits"))["room"]
    token = (await joined(c, room, "flapper"))["token"]
    limit = c.settings.audience_actions_per_minute
    codes = [(await c.call("POST", hand_path(room), {"raised": n % 2 == 0}, token=token)).status
             for n in range(limit + 3)]
    assert codes[:limit] == [200] * limit and set(codes[limit:]) == {429}, codes
    r = await c.call("POST", hand_path(room), {"raised": True}, token=token)
    assert r.status == 429 and int(r.headers["Retry-After"]) >= 1 and "error" in r.data


async def ask(c: WebClient, room: str, token: str, text: str) -> dict[str, Any]:
    r = await c.call("POST", f"/api/webinars/{room}/questions", {"text": text}, token=token)
    assert r.status == 201, r.text
    return r.data


async def test_questions_votes_states_and_asking_the_avatar(
        web_client: WebClient, livekit: Any) -> None:
    c = web_client
    w = await c.new_webinar("Q and A")
    room = w["room"]
    priya = (await joined(c, room, "priya", name="Priya"))["token"]
    omar = (await joined(c, room, "omar", name="Omar"))["token"]
    first = await ask(c, room, priya, "Will the slides be shared afterwards?")
    second = await ask(c, room, omar, "Is the session recorded")

    def board(token: str, sort: str = "top") -> Any:
        return c.call("GET", f"/api/webinars/{room}/qa?sort={sort}", token=token)

    # one vote per identity (twice is still one), taken back with up=false
    for token in (priya, omar, omar):
        r = await c.call("POST", f"/api/webinars/{room}/questions/{second['id']}/vote",
                         {"up": True}, token=token)
        assert r.status == 200, r.text
    assert r.data == {"id": second["id"], "votes": 2, "voted": True}
    await c.call("POST", f"/api/webinars/{room}/questions/{second['id']}/vote", {"up": False},
                 token=priya)
    top = (await board(priya)).data["questions"]
    assert [(q["id"], q["votes"]) for q in top] == [(second["id"], 1), (first["id"], 0)]
    assert [(q["mine"], q["voted"]) for q in top] == [(False, False), (True, False)]
    assert "identity" not in top[0]  # viewers see names, not identities
    new = (await board(omar, "new")).data["questions"]
    assert [q["id"] for q in new] == [second["id"], first["id"]]
    assert new[0]["voted"] is True

    # hidden: gone for viewers (and not votable), still listed for the host
    r = await c.host("POST", f"/api/host/webinars/{room}/questions/{second['id']}",
                     {"state": "hidden"})
    assert r.status == 200 and r.data["state"] == "hidden"
    assert [q["id"] for q in (await board(omar)).data["questions"]] == [first["id"]]
    assert (await c.call("POST", f"/api/webinars/{room}/questions/{second['id']}/vote",
                         {"up": True}, token=omar)).status == 404
    host_view = (await c.host("GET", f"/api/host/webinars/{room}/qa?sort=new")).data
    assert [q["state"] for q in host_view["questions"]] == ["hidden", "open"]

    # ask the avatar: refused with no bot on stage (nothing marked), a viewer may not
    path = f"/api/host/webinars/{room}/questions/{first['id']}/ask"
    r = await c.host("POST", path)
    assert r.status == 409 and "not on stage" in r.data["error"]
    assert (await board(priya)).data["questions"][0]["state"] == "open"
    r = await c.call("POST", f"/api/webinars/{room}/questions/{first['id']}/ask", token=omar)
    assert r.status == 403

    async with FakeBot(livekit, room) as bot:
        got: asyncio.Queue[rtc.DataPacket] = asyncio.Queue()
        bot.room.on("data_received", got.put_nowait)
        # a viewer's own receiver gets nothing: the packet goes to the bot only
        seen = await connect(livekit.effective_livekit_url,
                             mint_token(livekit, Role.VIEWER, room, "watcher"))
        leaked: list[rtc.DataPacket] = []
        seen.on("data_received", leaked.append)
        try:
            r = await c.host("POST", path)
            assert r.status == 200 and r.data["state"] == "answered", r.text
            packet = await asyncio.wait_for(got.get(), 5)
            assert packet.topic == ASK_TOPIC and packet.participant is None
            assert json.loads(packet.data) == {"id": first["id"], "name": "Priya",
                                               "text": first["text"]}
            # the speaker may pick one too (the live floor), the hidden one is refused
            pres = await joined(c, room, "pres", "presenter", code=w["presenter_code"])
            r = await c.call("POST", f"/api/webinars/{room}/questions/{second['id']}/ask",
                             token=pres["token"])
            assert r.status == 409 and "hidden" in r.data["error"]
            await asyncio.sleep(0.5)
            assert not leaked
        finally:
            await seen.disconnect()
    mine = (await board(priya)).data["questions"]
    assert mine[0]["id"] == first["id"] and mine[0]["state"] == "answered"


# --- fuzzing -------------------------------------------------------------------------
@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def fuzz_room(web_client: WebClient) -> dict[str, Any]:
    w = await web_client.new_webinar("Fuzzed audience")
    room = w["room"]
    viewer = (await joined(web_client, room, "fz-viewer"))["token"]
    q = await ask(web_client, room, viewer, "A question to vote on")
    return {"room": room, "viewer": viewer, "qid": q["id"]}


async def never_5xx(c: WebClient, method: str, path: str, raw: bytes | None,
                    headers: dict[str, str]) -> int:
    url = URL(c.base + path, encoded=True)
    async with c.http.request(method, url, data=raw, headers={
            "Content-Type": "application/json", **headers}) as resp:
        text = await resp.text(errors="replace")
        assert resp.status < 500, (method, path, raw, resp.status, text)
        if resp.status >= 400:
            assert resp.content_type == "application/json" and json.loads(text)["error"]
        return resp.status


@FUZZ
@given(raw=bodies(["raised", "up", "state"]),
       who=st.sampled_from(["viewer", "host", "none", "junk"]),
       where=st.sampled_from(["hand", "vote", "moderate", "ask", "floor", "speaker-ask"]))
async def test_fuzz_audience_bodies(fuzz_room: dict[str, Any], web_client: WebClient,
                                    raw: bytes, who: str, where: str) -> None:
    room, qid = fuzz_room["room"], fuzz_room["qid"]
    token = {"viewer": fuzz_room["viewer"], "host": web_client.settings.host_key,
             "none": None, "junk": "x.y.z"}[who]
    path = {"hand": f"/api/webinars/{room}/hand",
            "vote": f"/api/webinars/{room}/questions/{qid}/vote",
            "moderate": f"/api/host/webinars/{room}/questions/{qid}",
            "ask": f"/api/host/webinars/{room}/questions/{qid}/ask",
            "floor": f"/api/host/webinars/{room}/hands/fz-viewer/floor",
            "speaker-ask": f"/api/webinars/{room}/questions/{qid}/ask"}[where]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    await never_5xx(web_client, "POST", path, raw, headers)


@FUZZ
@given(segment=SEGMENTS, query=st.text(max_size=12),
       where=st.sampled_from(["qid", "identity", "room"]))
async def test_fuzz_audience_paths(fuzz_room: dict[str, Any], web_client: WebClient,
                                   segment: str, query: str, where: str) -> None:
    from urllib.parse import quote

    room = fuzz_room["room"]
    seg = quote(segment.encode("utf-8", "surrogatepass"), safe="")
    host = {"Authorization": f"Bearer {web_client.settings.host_key}"}
    viewer = {"Authorization": f"Bearer {fuzz_room['viewer']}"}
    q = quote(query.encode("utf-8", "surrogatepass"), safe="")
    if where == "qid":
        await never_5xx(web_client, "POST", f"/api/webinars/{room}/questions/{seg}/vote",
                        b'{"up": true}', viewer)
        await never_5xx(web_client, "POST", f"/api/host/webinars/{room}/questions/{seg}",
                        b'{"state": "open"}', host)
    elif where == "identity":
        await never_5xx(web_client, "POST", f"/api/host/webinars/{room}/hands/{seg}/floor",
                        None, host)
        await never_5xx(web_client, "DELETE", f"/api/host/webinars/{room}/hands/{seg}",
                        None, host)
    else:
        await never_5xx(web_client, "GET", f"/api/webinars/{seg}/qa?sort={q}", None, viewer)
        await never_5xx(web_client, "GET", f"/api/host/webinars/{room}/qa?sort={q}", None, host)
        await never_5xx(web_client, "GET", f"/api/webinars/{seg}/hand", None, viewer)
        for name in ("q", "offset", "limit"):
            await never_5xx(web_client, "GET",
                            f"/api/host/webinars/{room}/participants?{name}={q}", None, host)


async def test_the_participant_list_pages_searches_and_counts_roles(
        web_client: WebClient, livekit: Any) -> None:
    c = web_client
    w = await c.new_webinar("Crowd")
    room = w["room"]
    names = ["zoe", "yan", "xia", "wes", "val"]
    people = [await joined(c, room, n, name=n.title()) for n in names]
    rooms = [await connect(p["url"], p["token"]) for p in people]
    try:
        async with FakeBot(livekit, room):
            path = f"/api/host/webinars/{room}/participants"
            first = (await c.host("GET", f"{path}?limit=2")).data
            assert first["total"] == 6 and first["matching"] == 6
            assert first["counts"] == {"viewer": 5, "bot": 1}
            assert len(first["participants"]) == 2
            rest = (await c.host("GET", f"{path}?limit=2&offset=2")).data["participants"]
            last = (await c.host("GET", f"{path}?limit=2&offset=4")).data["participants"]
            seen = [p["identity"] for p in first["participants"] + rest + last]
            assert sorted(seen) == sorted([*names, c.settings.bot_identity])
            found = (await c.host("GET", f"{path}?q=XI")).data
            assert [p["identity"] for p in found["participants"]] == ["xia"]
            assert found["matching"] == 1 and found["counts"]["viewer"] == 5
            for bad_query in ("limit=0", "limit=201", "offset=-1", "offset=x", "limit=1e3",
                              "q=" + "a" * 65, "q=%00"):
                r = await c.host("GET", f"{path}?{bad_query}")
                assert r.status == 422 and "query" in r.data["error"], (bad_query, r.text)
    finally:
        await asyncio.gather(*(r.disconnect() for r in rooms))


async def test_a_hand_whose_owner_left_goes_down_by_itself_a_reconnect_keeps_it(
        web_client: WebClient, monkeypatch: Any) -> None:
    """The floor guard's rounds lower the hand of someone gone longer than the grace, so
    the host's queue never offers the floor to an empty seat; a page that reconnects
    within the grace keeps its place."""
    import broadcaster.web.audience as audience_module
    from broadcaster.web.keys import FLOOR

    monkeypatch.setattr(audience_module, "HAND_ABSENT_SECONDS", 0.5)
    c = web_client
    assert c.app is not None
    guard = c.app[FLOOR]
    room = (await c.new_webinar("Stale hands"))["room"]
    people = {i: await joined(c, room, i, name=i.title()) for i in ("dee", "eve")}
    rooms = {i: await connect(p["url"], p["token"]) for i, p in people.items()}
    try:
        for who in ("dee", "eve"):
            await c.call("POST", hand_path(room), {"raised": True}, token=people[who]["token"])
        await rooms["dee"].disconnect()
        await rooms["eve"].disconnect()
        await asyncio.sleep(0.5)  # LiveKit notices both leaving
        await guard.reconcile_once()  # gone, but not for long yet: both still queued
        queue = (await c.host("GET", f"/api/host/webinars/{room}/hands")).data["hands"]
        assert [h["identity"] for h in queue] == ["dee", "eve"]
        rooms["eve"] = await connect(people["eve"]["url"], people["eve"]["token"])  # back
        await asyncio.sleep(0.6)
        await guard.reconcile_once()
        queue = (await c.host("GET", f"/api/host/webinars/{room}/hands")).data["hands"]
        assert [h["identity"] for h in queue] == ["eve"], "dee left; eve came back in time"
        assert (await c.call("GET", hand_path(room), token=people["eve"]["token"])
                ).data["position"] == 1
    finally:
        await asyncio.gather(*(r.disconnect() for r in rooms.values()))
