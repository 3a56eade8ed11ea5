"""Questions and webinars live in SQLite: a restarted app (same DB) loses none."""

from __future__ import annotations

import aiohttp
from aiohttp import web as aioweb

from broadcaster.config import Settings
from broadcaster.netutil import free_port
from broadcaster.web.app import create_app
from tests.fixtures_web import WebClient, unique_room


async def _start(settings: Settings) -> tuple[aioweb.AppRunner, str]:
    runner = aioweb.AppRunner(create_app(settings))
    await runner.setup()
    await aioweb.TCPSite(runner, "127.0.0.1", settings.web_port).start()
    return runner, f"http://127.0.0.1:{settings.web_port}"


async def test_questions_survive_an_app_restart(livekit: Settings, tmp_path):
    # five questions from one person in a few ms: above the default rate limit
    settings = livekit.replace(state_dir=str(tmp_path), web_port=free_port(),
                               questions_per_minute=10)
    room = unique_room("persist")
    texts = [f"question number {i}" for i in range(1, 6)]
    async with aiohttp.ClientSession() as http:
        runner, base = await _start(settings)
        try:
            c = WebClient(base, http, settings)
            w = await c.new_webinar("Persistent", room)
            viewer = (await c.join(room, "asker")).data
            for text in texts:
                assert (await c.call("POST", f"/api/webinars/{room}/questions", {"text": text},
                                     token=viewer["token"])).status == 201
            before = (await c.host("GET", f"/api/webinars/{room}/questions")).data
        finally:
            await runner.cleanup()

        runner, base = await _start(settings)  # a new app instance on the same database
        try:
            c = WebClient(base, http, settings)
            after = (await c.host("GET", f"/api/webinars/{room}/questions")).data
            assert after == before
            assert [q["text"] for q in after["questions"]] == texts
            ids = [q["id"] for q in after["questions"]]
            assert ids == sorted(ids)
            listed = (await c.host("GET", "/api/host/webinars")).data["webinars"]
            assert [x["presenter_code"] for x in listed if x["room"] == room] == \
                [w["presenter_code"]]
            # the identity claim survived too: "asker" is still reserved for its holder
            again = await c.join(room, "asker", claim=viewer["claim"])
            assert again.status == 200
            assert (await c.join(room, "asker")).status == 409
        finally:
            await runner.cleanup()
