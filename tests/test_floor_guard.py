"""The floor guard: livekit-server's webhooks make the web app re-apply the floor.

A token is checked once, at join: a presenter demoted by the host still holds a
token that grants publishing. This module runs its own livekit-server whose
livekit.yaml (rendered by broadcaster) posts webhooks to its own web app, as
``broadcaster up`` does; the session's server has no webhooks so other tests can
still make a non-speaker publish on purpose.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web as aioweb
from livekit import api

from broadcaster import livekit_server
from broadcaster.config import WEBHOOK_PATH, Settings
from broadcaster.netutil import free_port, wait_http_ok
from broadcaster.roles import Role, mint_token
from broadcaster.web.app import create_app
from broadcaster.web.bot_control import BotLauncher
from tests.fixtures_web import (
    WebClient,
    connect,
    fake_bot_command,
    joined,
    server_view,
    tracks_of,
    try_publish_mic,
    wait_until,
)


@dataclasses.dataclass
class Guarded:
    client: WebClient
    lkapi: api.LiveKitAPI
    log: Path


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def guarded(settings: Settings,
                  tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Guarded]:
    s = settings.replace(
        floor_guard=True, state_dir=str(tmp_path_factory.mktemp("guarded")),
        livekit_port=free_port(), livekit_rtc_tcp_port=free_port(),
        livekit_rtc_udp_port=free_port(), web_port=free_port(),
    )
    log = Path(s.state_dir) / "livekit-server.log"
    async with livekit_server.running(s, log, log_level="info"):
        app = create_app(s, bots=BotLauncher(s, command=fake_bot_command, stop_timeout=2.0))
        runner = aioweb.AppRunner(app)
        await runner.setup()
        await aioweb.TCPSite(runner, "127.0.0.1", s.web_port).start()
        url = f"http://127.0.0.1:{s.web_port}"
        await wait_http_ok(url + "/healthz", timeout=10)
        lk = api.LiveKitAPI(s.livekit_http_url, s.livekit_api_key, s.livekit_api_secret)
        try:
            async with aiohttp.ClientSession() as http:
                yield Guarded(WebClient(url, http, s), lk, log)
        finally:
            await lk.aclose()
            await runner.cleanup()


async def test_a_demoted_presenter_rejoining_with_her_old_token_cannot_publish(
    guarded: Guarded,
) -> None:
    c, lk = guarded.client, guarded.lkapi
    w = await c.new_webinar("Guarded floor")
    room = w["room"]
    pres = await joined(c, room, "petra", "presenter", code=w["presenter_code"])
    old_token = pres["token"]  # minted while she had the floor: grants publishing
    view = await joined(c, room, "viktor")
    p = await connect(pres["url"], old_token)
    v = await connect(view["url"], view["token"])
    try:
        assert await try_publish_mic(p) is not None  # the speaker publishes: untouched
        await asyncio.sleep(1.0)  # her join and publish webhooks have come and gone
        assert (await server_view(lk, room, "petra")).permission.can_publish

        reply = await c.host("POST", f"/api/host/webinars/{room}/participants/viktor/promote")
        assert reply.status == 200 and reply.data["speaker"] == "viktor", reply.text
        await p.disconnect()

        # she comes back with the token minted before the demotion, and publishes
        p = await connect(pres["url"], old_token)
        await try_publish_mic(p, timeout=2.0)
        assert await wait_until(
            lambda: _cannot_publish_and_has_no_tracks(lk, room, "petra"), timeout=5)
        await asyncio.sleep(1.0)  # and it stays that way
        assert await _cannot_publish_and_has_no_tracks(lk, room, "petra")
        # the speaker keeps the floor
        assert (await server_view(lk, room, "viktor")).permission.can_publish
        assert await try_publish_mic(v) is not None
        # and operators see it
        metrics = await c.call("GET", "/metrics")
        line = f'broadcaster_floor_guard_actions_total{{action="demoted",room="{room}"}}'
        assert any(x.startswith(line) and float(x.split()[-1]) >= 1
                   for x in metrics.text.splitlines()), metrics.text[-2000:]
    finally:
        await asyncio.gather(p.disconnect(), v.disconnect())


async def test_after_the_end_an_old_token_gets_nobody_back_in(guarded: Guarded) -> None:
    c, lk = guarded.client, guarded.lkapi
    w = await c.new_webinar("Over")
    room = w["room"]
    view = await joined(c, room, "olga")
    reply = await c.host("POST", f"/api/host/webinars/{room}/end")
    assert reply.status == 200, reply.text
    o = await connect(view["url"], view["token"])  # LiveKit re-creates the room on join
    try:
        async def gone() -> bool:
            people = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
            return all(x.identity != "olga" for x in people.participants)
        assert await wait_until(gone, timeout=5)
    finally:
        await o.disconnect()


async def test_webhooks_without_livekits_signature_are_refused(guarded: Guarded) -> None:
    c, lk = guarded.client, guarded.lkapi
    s = c.settings
    w = await c.new_webinar("Forged")
    room = w["room"]
    pres = await joined(c, room, "sam", "presenter", code=w["presenter_code"])
    p = await connect(pres["url"], pres["token"])
    try:
        event = json.dumps({"event": "participant_joined", "room": {"name": room},
                            "participant": {"identity": "sam",
                                            "permission": {"canPublish": True}}})
        digest = base64.b64encode(hashlib.sha256(event.encode()).digest()).decode()
        forged = api.AccessToken(s.livekit_api_key, "not-the-secret" * 3).with_sha256(
            digest).to_jwt()
        signed_for_other_body = api.AccessToken(s.livekit_api_key, s.livekit_api_secret)\
            .with_sha256(base64.b64encode(hashlib.sha256(b"{}").digest()).decode()).to_jwt()
        for headers in ({}, {"Authorization": forged},
                        {"Authorization": signed_for_other_body}):
            reply = await c.call("POST", WEBHOOK_PATH, data=event, headers=headers)
            assert reply.status == 401 and "error" in reply.data, reply.text
        # a viewer token is no webhook either
        viewer = mint_token(s, Role.VIEWER, room, "eve")
        reply = await c.call("POST", WEBHOOK_PATH, data=event,
                             headers={"Authorization": viewer})
        assert reply.status == 401
        assert (await server_view(lk, room, "sam")).permission.can_publish  # nothing changed
    finally:
        await p.disconnect()


async def _cannot_publish_and_has_no_tracks(lk: api.LiveKitAPI, room: str,
                                            identity: str) -> bool:
    info = await server_view(lk, room, identity)
    return not info.permission.can_publish and await tracks_of(lk, room, identity) == []


def _signed(s: Settings, event: dict) -> tuple[str, dict[str, str]]:
    body = json.dumps(event)
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    token = api.AccessToken(s.livekit_api_key, s.livekit_api_secret).with_sha256(digest).to_jwt()
    return body, {"Authorization": token}


async def test_a_replayed_webhook_is_not_acted_on_twice(guarded: Guarded) -> None:
    """LiveKit signs each webhook once; a copy replayed within its JWT's life must not act."""
    c, lk = guarded.client, guarded.lkapi
    s = c.settings
    w = await c.new_webinar("Replay")
    room = w["room"]
    rex = await joined(c, room, "rex")
    r = await connect(rex["url"], rex["token"])
    grant = api.ParticipantPermission(can_subscribe=True, can_publish=True,
                                      can_publish_sources=[api.TrackSource.MICROPHONE])
    try:
        event = {"event": "participant_joined", "id": "EV_replayed_once",
                 "room": {"name": room},
                 "participant": {"identity": "rex", "permission": {"canPublish": True}}}
        body, headers = _signed(s, event)
        await lk.room.update_participant(api.UpdateParticipantRequest(
            room=room, identity="rex", permission=grant))
        first = await c.call("POST", WEBHOOK_PATH, data=body, headers=headers)
        assert first.status == 200 and first.data["action"] in ("demoted", None), first.text
        assert not (await server_view(lk, room, "rex")).permission.can_publish
        await lk.room.update_participant(api.UpdateParticipantRequest(
            room=room, identity="rex", permission=grant))
        again = await c.call("POST", WEBHOOK_PATH, data=body, headers=headers)
        assert again.status == 200, again.text
        assert again.data["action"] is None and again.data.get("duplicate") is True, again.text
    finally:
        await r.disconnect()
