"""The rehearsal room (pipecat's HeyGenTransport, issue 16): the presenter talks 1:1 with
the avatar in a room the avatar service owns, before going live, with no key.

Real parts: livekit-server, the local avatar service, a web app of its own starting the
real rehearsal process (Whisper, the notes' responder, Piper, the unmodified
``HeyGenTransport``), and an SDK client as the presenter, who asks with flite's voice and
listens. Nobody else may start it; nothing of it reaches the stage: in Chromium (fake
microphone), a viewer on the stage hears the presenter before and after the rehearsal and
nothing from her while it runs.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from livekit import api

from broadcaster.config import Settings
from broadcaster.netutil import free_port
from broadcaster.protocol import AVATAR_IDENTITY
from broadcaster.rehearsal_room import rehearsal_file
from broadcaster.web.keys import REHEARSALS
from tests.fixtures_web import serving
from tests.helpers.browser import (
    chromium,
    full_page_screenshot,
    needs_chromium,
    open_page,
    screenshot_dir,
)
from tests.helpers.people import ONSET_RMS, Mic, Viewer

pytestmark = pytest.mark.timeout(240)


async def test_the_presenter_rehearses_with_the_avatar(avatar_service: str,
                                                       avatar_settings: Settings) -> None:
    s = avatar_settings.replace(web_port=free_port())
    async with serving(s) as c:
        w = await c.new_webinar("Rehearsed")
        room = w["room"]
        presenter = (await c.join(room, "pat", "presenter", code=w["presenter_code"])).data
        viewer = (await c.join(room, "vic")).data
        path = f"/api/webinars/{room}/rehearsal"
        assert (await c.call("POST", path, {})).status == 401
        refused = await c.call("POST", path, {}, headers={
            "Authorization": f"Bearer {viewer['token']}"})
        assert refused.status == 403 and refused.data["error"]
        started = time.monotonic()
        r = await c.call("POST", path, {}, headers={
            "Authorization": f"Bearer {presenter['token']}"})
        assert r.status == 200, r.text
        print(f"\nREHEARSAL ready in {time.monotonic() - started:.1f} s")
        assert r.data["token"] != presenter["token"]

        listener = Viewer("pat-rehearsing", AVATAR_IDENTITY)
        await listener.join(r.data["url"], r.data["token"])
        mic = await Mic("pat").speak_in(listener.room)
        try:
            rehearsal_room = listener.room.name
            assert rehearsal_room != room  # the avatar's own room, not the stage
            deadline = time.monotonic() + 30
            while not listener.blocks(0) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)  # the avatar's tracks (its silence) arrive
            await asyncio.sleep(1.0)
            said = await mic.say("What is on the agenda today?")
            deadline = time.monotonic() + 20
            while listener.first_loud(said.voice_off) is None and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            answered = listener.first_loud(said.voice_off)
            assert answered is not None, "the avatar never answered in the rehearsal room"
            print(f"REHEARSAL answer audible {answered - said.voice_off:.2f} s after the question")
            await asyncio.sleep(1.5)
            assert listener.loud_between(answered, answered + 1.5), "no sustained answer"
            async with api.LiveKitAPI(s.livekit_http_url, s.livekit_api_key,
                                      s.livekit_api_secret) as lk:
                stage = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
            assert AVATAR_IDENTITY not in {p.identity for p in stage.participants}
        finally:
            await mic.leave()
        # the presenter left: the rehearsal ends by itself
        launcher = c.app[REHEARSALS]
        deadline = time.monotonic() + 20
        while launcher.status(room)["state"] == "running" and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert launcher.status(room)["state"] == "exited"
        assert not rehearsal_file(s, room).exists()


@pytest.mark.browser
@needs_chromium
async def test_the_presenter_page_rehearses_in_chromium(avatar_service: str,
                                                        avatar_settings: Settings,
                                                        tmp_path: Path) -> None:
    s = avatar_settings.replace(web_port=free_port())
    async with serving(s) as c:
        w = await c.new_webinar("Rehearsed in the browser")
        room = w["room"]
        problems: list[str] = []
        async with chromium(tmp_path / "profile") as browser:
            page = await open_page(browser, w["presenter_url"].replace(
                s.effective_public_url, c.base), problems)
            # Chromium's fake microphone beeps; voice processing would take beeps out
            await page.evaluate("for (const id of ['opt-echo', 'opt-noise', 'opt-agc']) "
                                "document.getElementById(id).checked = false")
            await page.fill("#join-name", "Pat Presenter")
            await page.click("#join-button")
            await page.wait_for_selector("#mic-banner[data-state='live']", timeout=15000)
            me = await page.evaluate(
                f"JSON.parse(sessionStorage.getItem('broadcaster:presenter:{room}')).identity")
            vic = (await c.join(room, "vic")).data
            ear = Viewer("vic", me)  # a viewer on the stage, listening to the presenter
            await ear.join(vic["url"], vic["token"])

            async def hears(after: float) -> float | None:
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    if (t := ear.first_loud(after)) is not None:
                        return t
                    await asyncio.sleep(0.1)
                return None

            try:
                assert await hears(time.monotonic()) is not None, "the stage never heard her"
                await page.click("#rehearse")
                await page.wait_for_selector("#mic-banner[data-state='rehearsal']")
                assert "does not hear you" in await page.locator("#mic-banner").inner_text()
                await page.wait_for_selector("#rehearsal-card[data-state='on']", timeout=60000)
                quiet_from = time.monotonic()
                # the avatar's picture plays in the card
                await page.wait_for_function(
                    "() => document.querySelector('#rehearsal-video').videoWidth >= 640",
                    timeout=20000)
                await page.locator("#rehearsal-card").screenshot(
                    path=str(screenshot_dir() / "presenter-rehearsal.png"))
                await page.mouse.move(0, 0)
                await full_page_screenshot(page, screenshot_dir() / "presenter-rehearsing.png")
                await asyncio.sleep(max(0.0, quiet_from + 3.0 - time.monotonic()))
                heard = ear.loud_between(quiet_from, time.monotonic(), rms=ONSET_RMS)
                assert not heard, f"the stage heard the rehearsal: {len(heard)} loud blocks"
                # LiveKit has her stage microphone muted for everyone meanwhile
                async with api.LiveKitAPI(s.livekit_http_url, s.livekit_api_key,
                                          s.livekit_api_secret) as lk:
                    info = await lk.room.get_participant(
                        api.RoomParticipantIdentity(room=room, identity=me))
                assert [t.muted for t in info.tracks
                        if t.source == api.TrackSource.MICROPHONE] == [True]
                await page.click("#rehearse-end")
                await page.wait_for_selector("#rehearsal-card[data-state='off']", timeout=10000)
                # and back on air: the stage hears her again
                await page.wait_for_selector("#mic-banner[data-state='live']", timeout=10000)
                assert await hears(time.monotonic()) is not None, "the mic never came back"
                # the presenter's page counts one watching: the viewer, not herself
                await page.wait_for_function(
                    "() => document.querySelector('#audience-count').textContent.trim() === '1'",
                    timeout=15000)
            finally:
                await ear.leave()
        launcher = c.app[REHEARSALS]
        deadline = time.monotonic() + 20
        while launcher.status(w["room"])["state"] == "running" and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert launcher.status(w["room"])["state"] != "running"
    assert not problems, problems
