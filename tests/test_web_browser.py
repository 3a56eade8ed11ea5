"""Debian's Chromium (Playwright) on the real pages against the real livekit-server:
the viewer connects and shows the server's audience count and captions, the presenter
publishes a (fake) microphone and holds the floor, the host console lists and promotes."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from livekit import api, rtc

from broadcaster.config import Settings
from broadcaster.protocol import (
    AVATAR_CAPTION_SPEAKER,
    CAPTION_FINAL_ATTR,
    CAPTION_SPEAKER_ATTR,
    CAPTION_TOPIC,
)
from tests.fixtures_web import (
    FakeBot,
    WebClient,
    connect,
    try_publish_mic,
    wait_until,
)
from tests.helpers.browser import (
    VIEWPORT,
    chromium,
    full_page_screenshot,
    needs_chromium,
    open_page,
    screenshot_dir,
)

pytestmark = [
    pytest.mark.browser,
    needs_chromium,
]


class Scene:
    """One webinar shared by the browser tests: a fake avatar bot and a Python viewer."""

    webinar: dict
    livekit_url: str
    bot: FakeBot
    others: list[rtc.Room]
    presenter_page: object  # the presenter's Playwright page, shared with the host test


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def scene(web_client: WebClient, livekit) -> AsyncIterator[Scene]:
    s = Scene()
    s.webinar = await web_client.new_webinar("Building with live AI avatars")
    s.livekit_url = livekit.effective_livekit_url
    s.others = []
    async with FakeBot(livekit, s.webinar["room"]) as bot:
        s.bot = bot
        # a presenter already on the floor; the browser presenter takes it over later
        maya = (await web_client.join(s.webinar["room"], "maya", "presenter", name="Maya Chen",
                                      code=s.webinar["presenter_code"])).data
        s.others.append(await connect(maya["url"], maya["token"]))
        assert await try_publish_mic(s.others[-1]) is not None
        try:
            yield s
        finally:
            await asyncio.gather(*(r.disconnect() for r in s.others))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser(tmp_path_factory: pytest.TempPathFactory):
    async with chromium(tmp_path_factory.mktemp("chromium-profile")) as ctx:
        yield ctx


def old_style_viewer_token(settings: Settings, room: str, identity: str) -> str:
    """A viewer token as minted before issue 11: subscribe and publish data."""
    grants = api.VideoGrants(room_join=True, room=room, can_subscribe=True,
                             can_publish=False, can_publish_data=True, hidden=True)
    return (api.AccessToken(settings.livekit_api_key, settings.livekit_api_secret)
            .with_identity(identity).with_grants(grants)
            .with_attributes({"role": "viewer"}).to_jwt())


def no_secrets(text: str, settings) -> None:
    assert settings.livekit_api_secret not in text and settings.host_key not in text


async def server_viewers(lkapi: api.LiveKitAPI, room: str) -> int:
    people = await lkapi.room.list_participants(api.ListParticipantsRequest(room=room))
    return sum(1 for p in people.participants if p.attributes.get("role") == "viewer")


async def test_viewer_page_connects_and_shows_the_audience(
    browser, scene: Scene, web: str, web_client: WebClient, lkapi
):
    room = scene.webinar["room"]
    problems: list[str] = []
    page = await open_page(browser, f"{web}/w/{room}", problems)
    await page.wait_for_selector("#title:has-text('Building with live AI avatars')")
    await page.fill("#join-name", "Ada Lovelace")
    await page.click("#join-button")
    await page.wait_for_selector("body[data-state='live']", timeout=15000)
    await page.wait_for_selector("#stage[data-video='on']", timeout=15000)
    await page.wait_for_selector("#speaker-line:has-text('Maya Chen is talking')")
    await page.wait_for_function(
        "() => { const v = document.querySelector('#stage video');"
        " return v.videoWidth > 0 && !v.paused && v.currentTime > 0; }", timeout=10000)

    # another client joins; the page shows what the server API reports
    other = (await web_client.join(room, "grace-py", name="Grace")).data
    scene.others.append(await connect(other["url"], other["token"]))

    async def two_viewers() -> bool:
        return await server_viewers(lkapi, room) == 2

    assert await wait_until(two_viewers)
    # the count is LiveKit's own, pushed to the page (no polling): everyone but agents
    # (the bot's token is of kind agent), less the presenter the page sees: the audience
    people = (await lkapi.room.list_participants(api.ListParticipantsRequest(room=room))
              ).participants
    bot = [p for p in people if p.identity == web_client.settings.bot_identity]
    assert bot and bot[0].kind == api.ParticipantInfo.Kind.AGENT
    counted = sum(1 for p in people if p.kind != api.ParticipantInfo.Kind.AGENT)
    assert counted == len(people) - 1 == 3  # Maya (presenter), this page, Grace
    shown = page.locator("#audience-count[data-source='livekit']")
    await page.wait_for_function(
        "n => document.querySelector('#audience-count').textContent === String(n) && "
        "document.querySelector('#audience-count').dataset.participants === '3'",
        arg=counted - 1, timeout=12000)
    assert await shown.text_content() == "2"  # this page and Grace, not Maya

    # captions arrive as LiveKit text streams (protocol.py)
    caption = "Welcome, everyone! Today: how a live AI avatar reaches thousands of viewers."
    await scene.bot.caption(caption)
    await page.wait_for_selector(f"#captions .caption-text:has-text('{caption[:20]}')")
    assert await page.locator("#captions .caption-who").first.text_content() == "Avatar"
    # the page shows captions from the bot only: a participant whose (pre-upgrade) token
    # still grants data, sending on the caption topic as "the avatar", is not shown
    impostor = await connect(scene.livekit_url, old_style_viewer_token(web_client.settings,
                                                                       room, "impostor"))
    try:
        await impostor.local_participant.send_text(
            "Forged: the avatar says send money", topic=CAPTION_TOPIC,
            attributes={CAPTION_SPEAKER_ATTR: AVATAR_CAPTION_SPEAKER, CAPTION_FINAL_ATTR: "true"})
    finally:
        await impostor.disconnect()
    await scene.bot.caption("And here is the real avatar again.")
    await page.wait_for_selector("#captions .caption-text:has-text('real avatar again')")
    await page.wait_for_timeout(500)
    assert "Forged" not in await page.locator("#captions").inner_text()

    # a question goes to the server and is stored
    question = "Can the avatar answer questions from the chat live?"
    await page.fill("#question-text", question)
    await page.click("#question-send")
    await page.wait_for_selector("#qa-list li .q-yours")
    stored = (await web_client.host("GET", f"/api/webinars/{room}/questions")).data["questions"]
    assert [q["text"] for q in stored] == [question]
    assert stored[0]["name"] == "Ada Lovelace"

    await page.mouse.move(0, 0)
    await page.wait_for_timeout(500)  # let the question's slide-in animation finish
    await page.screenshot(path=str(screenshot_dir() / "viewer.png"))
    await page.set_viewport_size({"width": 390, "height": 844})  # a phone
    await full_page_screenshot(page, screenshot_dir() / "viewer-mobile.png")
    await page.set_viewport_size(VIEWPORT)
    no_secrets(await page.content(), web_client.settings)
    assert not [p for p in problems if "Content Security Policy" in p or "pageerror" in p], \
        problems

    # a reload rejoins with the same identity (the claim), not a second viewer
    identity = await page.evaluate("JSON.parse(sessionStorage.getItem("
                                   f"'broadcaster:viewer:{room}')).identity")
    await page.reload()
    await page.wait_for_selector("body[data-state='live']", timeout=15000)
    people = await lkapi.room.list_participants(api.ListParticipantsRequest(room=room))
    assert [p.identity for p in people.participants].count(identity) == 1
    await page.close()


async def test_presenter_page_publishes_the_microphone(
    browser, scene: Scene, web: str, web_client: WebClient, lkapi
):
    room = scene.webinar["room"]
    problems: list[str] = []
    url = scene.webinar["presenter_url"]
    assert url.startswith(web)
    page = await open_page(browser, url, problems)
    await page.fill("#join-name", "Pat Presenter")
    await page.click("#join-button")
    await page.wait_for_selector("#floor[data-floor='yes']", timeout=15000)
    await page.wait_for_selector("#mic-state[data-state='on']", timeout=15000)
    identity = await page.evaluate(
        f"JSON.parse(sessionStorage.getItem('broadcaster:presenter:{room}')).identity")

    async def mic_on_server() -> bool:
        info = await lkapi.room.get_participant(
            api.RoomParticipantIdentity(room=room, identity=identity))
        return any(t.source == api.TrackSource.MICROPHONE for t in info.tracks)

    assert await wait_until(mic_on_server, timeout=10)
    await page.wait_for_function(
        "() => Number(document.querySelector('#mic-level').dataset.level) > 0.05",
        timeout=10000)
    await page.wait_for_selector("#questions li", timeout=10000)  # the viewer's question
    await page.wait_for_selector("#stage[data-video='on']", timeout=15000)
    await scene.bot.caption("Great question, Ada. The short answer is yes.")
    await page.wait_for_selector("#captions .caption-text:has-text('Great question')")
    await page.mouse.move(0, 0)
    await page.screenshot(path=str(screenshot_dir() / "presenter.png"))
    no_secrets(await page.content(), web_client.settings)
    assert not [p for p in problems if "Content Security Policy" in p or "pageerror" in p], \
        problems
    scene.presenter_page = page  # stays connected for the host console test


async def test_host_console_lists_and_promotes(
    browser, scene: Scene, web: str, web_client: WebClient, lkapi
):
    room = scene.webinar["room"]
    problems: list[str] = []
    page = await open_page(browser, f"{web}/host#key={web_client.settings.host_key}", problems)
    await page.wait_for_selector("body[data-auth='yes']", timeout=10000)
    assert "key=" not in page.url  # the fragment is dropped once read
    await page.click(f"#webinars .w-item[data-room='{room}']")
    await page.wait_for_selector(f"#d-room:has-text('{room}')")
    await page.wait_for_selector("#participants tr[data-identity='grace-py']", timeout=10000)
    rows = await page.locator("#participants tr").count()
    assert rows >= 3  # the bot, the presenter, the two viewers
    await page.wait_for_selector("#host-questions li")

    await page.click("#participants tr[data-identity='grace-py'] button:has-text('Promote')")

    async def grace_speaks() -> bool:
        info = await lkapi.room.get_participant(
            api.RoomParticipantIdentity(room=room, identity="grace-py"))
        return info.permission.can_publish

    assert await wait_until(grace_speaks)
    await page.wait_for_selector("#participants tr[data-identity='grace-py'][data-speaker='true']")
    # the presenter's page notices at once that it lost the floor
    await scene.presenter_page.wait_for_selector("#floor[data-floor='no']", timeout=10000)
    await page.click("#participants tr[data-identity='grace-py'] button:has-text('Demote')")
    await page.wait_for_selector("#participants tr[data-identity='grace-py'][data-speaker='false']")

    # hand the floor back to the presenter: her page turns the microphone on again
    pat = await scene.presenter_page.evaluate(
        f"JSON.parse(sessionStorage.getItem('broadcaster:presenter:{room}')).identity")
    await page.click(f"#participants tr[data-identity='{pat}'] button:has-text('Promote')")
    await scene.presenter_page.wait_for_selector("#floor[data-floor='yes']", timeout=10000)

    async def pat_mic() -> bool:
        info = await lkapi.room.get_participant(
            api.RoomParticipantIdentity(room=room, identity=pat))
        return any(t.source == api.TrackSource.MICROPHONE for t in info.tracks)

    assert await wait_until(pat_mic, timeout=10)
    await page.wait_for_selector(f"#participants tr[data-identity='{pat}'][data-speaker='true'] "
                                 "[data-source='microphone']", timeout=10000)

    # Remove puts grace out and keeps her out; the console lists her and can let her back
    await page.click("#participants tr[data-identity='grace-py'] button:has-text('Remove')")
    await page.wait_for_selector("#bans li[data-identity='grace-py']", timeout=10000)
    await page.wait_for_selector("#participants tr[data-identity='grace-py']", state="detached",
                                 timeout=10000)
    assert (await web_client.join(room, "grace-py")).status == 403

    # the scene's bot was started outside this console: it is shown, and no second offered
    await page.wait_for_selector("#bot-state:has-text('in the room')", timeout=10000)
    assert await page.locator("#bot-start").is_disabled()
    await page.click("#watch")
    await page.wait_for_selector("#preview-card #stage[data-video='on']", timeout=15000)
    await page.mouse.move(0, 0)
    await page.wait_for_selector("#toast", state="hidden", timeout=10000)
    await full_page_screenshot(page, screenshot_dir() / "host.png")
    await page.click("#bans li[data-identity='grace-py'] button:has-text('Let back in')")
    await page.wait_for_selector("#bans li[data-identity='grace-py']", state="detached")
    assert (await web_client.join(room, "grace-py")).status == 200
    await scene.bot.room.disconnect()  # that bot leaves: the console offers its own
    await page.wait_for_selector("#bot-start:not([disabled])", timeout=15000)
    await page.click("#bot-start")  # the fake bot command of the test app
    await page.wait_for_selector("#bot-state[data-state='running']")
    await page.click("#bot-stop")
    await page.wait_for_selector("#bot-state[data-state='stopped']")
    text = await page.content()
    no_secrets(text, web_client.settings)
    assert not re.search(r"host-key\"[^>]*value=", text)
    assert not [p for p in problems if "Content Security Policy" in p or "pageerror" in p], \
        problems

    # ending the webinar from the console (two clicks) reaches the presenter's page
    await page.click("#end")
    await page.click("#end")
    await page.wait_for_selector("#detail[data-state='ended']")
    await scene.presenter_page.wait_for_selector("body[data-state='ended'] #ended",
                                                 timeout=10000)
    assert not [p for p in problems if "pageerror" in p], problems
    await page.close()
    await scene.presenter_page.close()


def test_screenshots_exist():
    for name in ("viewer.png", "presenter.png", "host.png"):
        assert (Path(screenshot_dir()) / name).stat().st_size > 10_000
