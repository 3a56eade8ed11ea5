"""Roles as the real livekit-server enforces them, driven through the web app's API with
real LiveKit Python clients: publish rights, the one-speaker floor, identities, audience,
questions."""

from __future__ import annotations

import asyncio

from livekit import api, rtc

from tests.fixtures_web import (
    WebClient,
    connect,
    joined,
    room_metadata,
    server_view,
    tracks_of,
    try_publish_mic,
    wait_until,
)


async def test_viewer_publish_is_refused_presenter_publish_succeeds(web_client: WebClient, lkapi):
    w = await web_client.new_webinar("Publish rights")
    room = w["room"]
    viewer = await joined(web_client, room, "vera")
    presenter = await joined(web_client, room, "pat", "presenter", code=w["presenter_code"])
    assert viewer["url"] == web_client.settings.effective_livekit_url
    v = await connect(viewer["url"], viewer["token"])
    p = await connect(presenter["url"], presenter["token"])
    try:
        assert not v.local_participant.permissions.can_publish
        assert await try_publish_mic(v, timeout=2.0) is None
        assert await tracks_of(lkapi, room, "vera") == []
        info = await server_view(lkapi, room, "vera")
        assert not info.permission.can_publish and info.permission.hidden

        pub = await try_publish_mic(p)
        assert pub is not None
        assert await wait_until(lambda: _has_mic(lkapi, room, "pat"))
        assert (await room_metadata(lkapi, room))["speaker"] == "pat"
    finally:
        await asyncio.gather(v.disconnect(), p.disconnect())


async def _has_mic(lkapi: api.LiveKitAPI, room: str, identity: str) -> bool:
    return any(t.source == api.TrackSource.MICROPHONE
               for t in await tracks_of(lkapi, room, identity))


async def test_promote_and_demote_while_connected(web_client: WebClient, lkapi):
    w = await web_client.new_webinar("Hand the floor")
    room = w["room"]
    pres = await joined(web_client, room, "paula", "presenter", code=w["presenter_code"])
    view = await joined(web_client, room, "victor")
    p = await connect(pres["url"], pres["token"])
    v = await connect(view["url"], view["token"])
    base = f"/api/host/webinars/{room}/participants"
    try:
        assert await try_publish_mic(p) is not None
        assert await wait_until(lambda: _has_mic(lkapi, room, "paula"))

        # promote victor: paula loses the floor first, live; victor gains it
        reply = await web_client.host("POST", f"{base}/victor/promote")
        assert reply.status == 200 and reply.data["speaker"] == "victor", reply.text
        paula = await server_view(lkapi, room, "paula")
        assert not paula.permission.can_publish
        assert await wait_until(lambda: _no_tracks(lkapi, room, "paula"))
        victor = await server_view(lkapi, room, "victor")
        assert victor.permission.can_publish and not victor.permission.hidden
        assert list(victor.permission.can_publish_sources) == [api.TrackSource.MICROPHONE]
        assert await wait_until(lambda: _local_can_publish(v, True))
        assert await try_publish_mic(v) is not None
        assert await wait_until(lambda: _has_mic(lkapi, room, "victor"))
        assert (await room_metadata(lkapi, room))["speaker"] == "victor"
        assert await try_publish_mic(p, timeout=1.5) is None  # paula really cannot publish
        assert await _no_tracks(lkapi, room, "paula")

        people = (await web_client.host("GET", f"/api/host/webinars/{room}/participants")).data
        speakers = [x["identity"] for x in people["participants"] if x["speaker"]]
        assert speakers == ["victor"] and people["speaker"] == "victor"

        # demote victor: nobody holds the floor; his track is gone
        reply = await web_client.host("POST", f"{base}/victor/demote")
        assert reply.status == 200 and reply.data["speaker"] is None
        victor = await server_view(lkapi, room, "victor")
        assert not victor.permission.can_publish and victor.permission.hidden
        assert await wait_until(lambda: _no_tracks(lkapi, room, "victor"))
        assert (await room_metadata(lkapi, room))["speaker"] is None

        # and the floor can go back to the presenter (not hidden: she is not a viewer)
        reply = await web_client.host("POST", f"{base}/paula/promote")
        assert reply.data["speaker"] == "paula"
        paula = await server_view(lkapi, room, "paula")
        assert paula.permission.can_publish and not paula.permission.hidden
        # the stack itself cannot be handed the floor
        reply = await web_client.host("POST", f"{base}/{web_client.settings.bot_identity}/promote")
        assert reply.status == 409  # part of the stack, connected or not; never a 200
    finally:
        await asyncio.gather(p.disconnect(), v.disconnect())


async def _no_tracks(lkapi: api.LiveKitAPI, room: str, identity: str) -> bool:
    return await tracks_of(lkapi, room, identity) == []


async def _local_can_publish(room: rtc.Room, value: bool) -> bool:
    return room.local_participant.permissions.can_publish == value


async def test_duplicate_identity_is_refused_and_the_claim_reclaims(web_client: WebClient, lkapi):
    w = await web_client.new_webinar("One Alice")
    room = w["room"]
    first = await joined(web_client, room, "alice", name="Alice")
    assert first["claim"] and first["name"] == "Alice"
    # reserved even before Alice has connected (within identity_claim_seconds)
    reply = await web_client.join(room, "alice")
    assert reply.status == 409 and "alice" in reply.data["error"]
    a1 = await connect(first["url"], first["token"])
    disconnected = asyncio.Event()
    a1.on("disconnected", lambda *_: disconnected.set())
    try:
        last = first["claim"][-1]
        forged = first["claim"][:-1] + ("y" if last == "x" else "x")  # one character off
        for claim in (None, "wrong-claim", forged):
            extra = {"claim": claim} if claim else {}
            reply = await web_client.join(room, "alice", **extra)
            assert reply.status == 409, reply.text
        presenter_try = await web_client.join(room, "alice", "presenter",
                                              code=w["presenter_code"])
        assert presenter_try.status == 409
        assert [p.identity for p in (await lkapi.room.list_participants(
            api.ListParticipantsRequest(room=room))).participants] == ["alice"]

        # the same person reloading presents the claim: old session out, new token in
        again = await joined(web_client, room, "alice", name="Alice", claim=first["claim"])
        assert again["claim"] == first["claim"]
        await asyncio.wait_for(disconnected.wait(), 10)
        a2 = await connect(again["url"], again["token"])
        try:
            people = (await lkapi.room.list_participants(
                api.ListParticipantsRequest(room=room))).participants
            assert [p.identity for p in people] == ["alice"]
        finally:
            await a2.disconnect()
    finally:
        await a1.disconnect()


async def test_audience_count_comes_from_the_server(web_client: WebClient, lkapi):
    w = await web_client.new_webinar("Counting")
    room = w["room"]
    path = f"/api/webinars/{room}/audience"
    assert (await web_client.call("GET", path)).data == {"viewers": 0, "participants": 0}
    rooms = []
    try:
        for name in ("v1", "v2", "v3"):
            j = await joined(web_client, room, name)
            rooms.append(await connect(j["url"], j["token"]))
        pres = await joined(web_client, room, "speaker1", "presenter", code=w["presenter_code"])
        rooms.append(await connect(pres["url"], pres["token"]))

        async def counted() -> bool:
            data = (await web_client.call("GET", path)).data
            return data == {"viewers": 3, "participants": 4}

        assert await wait_until(counted, timeout=web_client.settings.audience_cache_seconds + 4)
        # viewers are hidden from each other, yet the server API counts them
        assert len(rooms[0].remote_participants) <= 1
    finally:
        await asyncio.gather(*(r.disconnect() for r in rooms))


async def test_questions_are_stored_and_read_in_order(web_client: WebClient):
    w = await web_client.new_webinar("Q and A")
    room = w["room"]
    viewer = await joined(web_client, room, "quinn", name="Quinn")
    pres = await joined(web_client, room, "presto", "presenter", code=w["presenter_code"])
    path = f"/api/webinars/{room}/questions"
    texts = ["What is the avatar built on?", "  Can I  ask twice?  ", "Third <b>one</b> & more"]
    ids = []
    for text in texts:
        reply = await web_client.call("POST", path, {"text": text}, token=viewer["token"])
        assert reply.status == 201, reply.text
        assert reply.data["identity"] == "quinn" and reply.data["name"] == "Quinn"
        ids.append(reply.data["id"])
    assert ids == sorted(ids)
    host_view = (await web_client.host("GET", path)).data["questions"]
    assert [q["text"] for q in host_view] == [t.strip() for t in texts]
    pres_view = (await web_client.call("GET", path, token=pres["token"])).data["questions"]
    assert pres_view == host_view
    later = (await web_client.host("GET", f"{path}?after={ids[0]}")).data["questions"]
    assert [q["id"] for q in later] == ids[1:]
    # a fourth in the same minute is too many (3 a minute); nothing is stored
    limit = web_client.settings.questions_per_minute
    assert limit == len(texts)
    reply = await web_client.call("POST", path, {"text": "And again?"}, token=viewer["token"])
    assert reply.status == 429 and "a minute" in reply.data["error"], reply.text
    assert 1 <= int(reply.headers["Retry-After"]) <= 60
    assert (await web_client.host("GET", path)).data["questions"] == host_view
    metrics = (await web_client.call("GET", "/metrics")).text
    assert f'broadcaster_questions_refused_total{{room="{room}"}} 1.0' in metrics
    # the presenter can ask too (her own limit); viewers cannot read the list
    assert (await web_client.call("POST", path, {"text": "Me too"}, token=pres["token"])).status \
        == 201
    assert (await web_client.call("GET", path, token=viewer["token"])).status == 403
