"""Raise hand and the moderated Q&A in Debian's Chromium, as a viewer, the presenter and
the host, on the real livekit-server (issue 16; issue 13 item 6).

One scene: a viewer page raises a hand, asks, votes; a Python viewer asks too; the
presenter page picks a question for the avatar (the bot's identity receives it as a
server-sent packet) and the viewer sees hers marked answered; the host hides one (it
vanishes for the viewer), asks the avatar another, and hands the floor to the raised
hand in one click: the viewer's page is told and switches to presenting."""

from __future__ import annotations

import asyncio
import json

import pytest
import pytest_asyncio
from livekit import api, rtc

from broadcaster.netutil import free_port
from broadcaster.protocol import ASK_TOPIC
from tests.fixtures_web import FakeBot, WebClient, connect, serving, wait_until
from tests.helpers.browser import (
    chromium,
    full_page_screenshot,
    join_page,
    needs_chromium,
    open_page,
    screenshot_dir,
)

pytestmark = [pytest.mark.browser, needs_chromium]
PRESENTER_READY = "#floor[data-floor='yes']"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser(tmp_path_factory: pytest.TempPathFactory):
    async with chromium(tmp_path_factory.mktemp("chromium-audience")) as ctx:
        yield ctx


def bad(problems: list[str]) -> list[str]:
    return [p for p in problems if "Content Security Policy" in p or "pageerror" in p]


async def test_raise_hand_qa_and_ask_the_avatar_in_the_pages(
        browser, web: str, web_client: WebClient, livekit, lkapi: api.LiveKitAPI) -> None:
    c = web_client
    w = await c.new_webinar("Audience Q&A")
    room = w["room"]
    problems: list[str] = []
    async with FakeBot(livekit, room) as bot:
        asked: asyncio.Queue[rtc.DataPacket] = asyncio.Queue()
        bot.room.on("data_received", asked.put_nowait)

        # the presenter takes the floor with her invite link
        pres = await join_page(browser, w["presenter_url"], "Pat Presenter", problems,
                               ready=PRESENTER_READY)

        # a viewer raises her hand and asks; another viewer (an SDK client) asks too
        page = await join_page(browser, f"{web}/w/{room}", "Ada Lovelace", problems)
        await page.click("#hand-toggle")
        await page.wait_for_selector("#hand-card[data-hand='up']")
        assert "1st in line" in await page.locator("#hand-status").text_content()
        await page.fill("#question-text", "Can the avatar take questions from the chat?")
        await page.click("#question-send")
        await page.wait_for_selector("#qa-list li .q-yours")
        priya = (await c.join(room, "priya", name="Priya")).data
        priya_room = await connect(priya["url"], priya["token"])
        for text in ("Will the slides be shared afterwards?", "Is there a discount code?"):
            r = await c.call("POST", f"/api/webinars/{room}/questions", {"text": text},
                             token=priya["token"])
            assert r.status == 201
        slides = [q for q in (await c.host("GET", f"/api/host/webinars/{room}/qa")).data[
            "questions"] if "slides" in q["text"]][0]
        await page.wait_for_selector(f"#qa-list li[data-id='{slides['id']}']", timeout=10000)
        # one vote: the most-voted view puts it first
        await page.click(f"#qa-list li[data-id='{slides['id']}'] .vote")
        await page.wait_for_selector(f"#qa-list li[data-id='{slides['id']}'] .vote.voted")
        assert await page.locator(
            f"#qa-list li[data-id='{slides['id']}'] .vote-count").text_content() == "1"
        assert await page.locator("#qa-list li").first.get_attribute("data-id") == \
            str(slides["id"])

        # the presenter picks Ada's question: the bot gets it, Ada sees hers answered
        mine = page.locator("#qa-list li:has(.q-yours)")
        ada_qid = await mine.get_attribute("data-id")
        await pres.wait_for_selector(f"#questions li[data-id='{ada_qid}']", timeout=10000)
        await pres.screenshot(path=str(screenshot_dir() / "presenter-questions.png"))
        await pres.click(f"#questions li[data-id='{ada_qid}'] button:has-text('Ask avatar')")
        packet = await asyncio.wait_for(asked.get(), 10)
        assert packet.participant is None and packet.topic == ASK_TOPIC
        assert json.loads(packet.data)["name"] == "Ada Lovelace"
        await page.wait_for_selector(f"#qa-list li[data-id='{ada_qid}'][data-state='answered']",
                                     timeout=10000)

        # the host: the hand in the queue, the questions with votes
        host = await open_page(browser, f"{web}/host#key={c.settings.host_key}", problems)
        await host.wait_for_selector("body[data-auth='yes']", timeout=10000)
        await host.click(f"#webinars .w-item[data-room='{room}']")
        ada = await page.evaluate(
            f"JSON.parse(sessionStorage.getItem('broadcaster:viewer:{room}')).identity")
        await host.wait_for_selector(f"#hands li[data-identity='{ada}']", timeout=10000)
        # a bot this console did not start is in the room: the bot card says so (it said
        # "Not running." beside the avatar in the participant list)
        await host.wait_for_selector("#bot-detail:has-text('in the room')", timeout=10000)
        # the participant list: counts per role, and a search finds one person
        await host.wait_for_selector("#role-counts [data-role='viewer'][data-count='2']",
                                     timeout=10000)
        await host.fill("#participant-search", "priy")
        await host.wait_for_function(
            "() => [...document.querySelectorAll('#participants tr')].map(r => "
            "r.dataset.identity).join() === 'priya'", timeout=10000)
        assert "1 matching" in await host.locator("#participants-range").text_content()
        await host.fill("#participant-search", "")
        await host.wait_for_selector(f"#participants tr[data-identity='{ada}']")
        discount = [q for q in (await c.host("GET", f"/api/host/webinars/{room}/qa")).data[
            "questions"] if "discount" in q["text"]][0]
        # hide one: it vanishes for the viewer
        await host.click(f"#host-questions li[data-id='{discount['id']}'] "
                         "button:has-text('Hide')")
        await host.wait_for_selector(f"#host-questions li[data-id='{discount['id']}']"
                                     "[data-state='hidden']")
        await page.wait_for_selector(f"#qa-list li[data-id='{discount['id']}']",
                                     state="detached", timeout=10000)
        # ask the avatar from the console
        await host.click(f"#host-questions li[data-id='{slides['id']}'] "
                         "button:has-text('Ask avatar')")
        packet = await asyncio.wait_for(asked.get(), 10)
        assert json.loads(packet.data) == {"id": slides["id"], "name": "Priya",
                                           "text": slides["text"]}
        await host.wait_for_selector(f"#host-questions li[data-id='{slides['id']}']"
                                     "[data-state='answered']")
        await page.mouse.move(0, 0)
        await page.screenshot(path=str(screenshot_dir() / "viewer-qa.png"))
        await host.wait_for_selector("#toast", state="hidden", timeout=10000)
        await full_page_screenshot(host, screenshot_dir() / "host-audience.png")

        # one click: the hand gets the floor; her page says so and turns to presenting
        await host.click(f"#hands li[data-identity='{ada}'] button:has-text('Give floor')")

        async def ada_speaks() -> bool:
            info = await lkapi.room.get_participant(
                api.RoomParticipantIdentity(room=room, identity=ada))
            return info.permission.can_publish

        assert await wait_until(ada_speaks)
        await page.wait_for_selector("body[data-floor='yes'] #floor-card", timeout=10000)
        await page.wait_for_selector("#notice:has-text('gave you the floor')")
        # the hand went down and its card gave way to the floor card
        await page.wait_for_selector("#hand-card[data-hand='down']", state="hidden")
        await host.wait_for_selector(f"#hands li[data-identity='{ada}']", state="detached")
        await pres.wait_for_selector("#floor[data-floor='no']", timeout=10000)
        await page.screenshot(path=str(screenshot_dir() / "viewer-floor.png"))
        await page.click("#floor-mic")

        async def ada_mic() -> bool:
            info = await lkapi.room.get_participant(
                api.RoomParticipantIdentity(room=room, identity=ada))
            return any(t.source == api.TrackSource.MICROPHONE for t in info.tracks)

        assert await wait_until(ada_mic, timeout=10)
        assert not bad(problems), problems
        for p in (page, pres, host):
            await p.close()
        await priya_room.disconnect()


async def test_presenter_picks_a_microphone_pushes_to_talk_and_sees_mute(
        browser, web: str, web_client: WebClient, lkapi: api.LiveKitAPI) -> None:
    w = await web_client.new_webinar("Presenter controls")
    room = w["room"]
    problems: list[str] = []
    page = await open_page(browser, w["presenter_url"], problems)
    await page.evaluate("localStorage.removeItem('broadcaster:push-to-talk')")
    await page.fill("#join-name", "Pat Presenter")
    await page.click("#join-button")
    await page.wait_for_selector("#mic-banner[data-state='live']", timeout=15000)
    identity = await page.evaluate(
        f"JSON.parse(sessionStorage.getItem('broadcaster:presenter:{room}')).identity")
    # the picker lists Chromium's (fake) microphones by name once the mic is on
    await page.wait_for_function(
        "() => [...document.querySelectorAll('#mic-device option')].some(o => o.value && "
        "o.textContent.trim())", timeout=10000)

    async def server_muted() -> bool | None:
        info = await lkapi.room.get_participant(
            api.RoomParticipantIdentity(room=room, identity=identity))
        mics = [t for t in info.tracks if t.source == api.TrackSource.MICROPHONE]
        return mics[0].muted if mics else None

    async def muted_is(want: bool) -> bool:
        return await server_muted() is want

    assert await wait_until(lambda: muted_is(False), timeout=10)
    # push to talk: muted for everyone (LiveKit's view) until Space is held
    await page.check("#opt-ptt")
    await page.wait_for_selector("#mic-banner[data-state='ptt']")
    assert await wait_until(lambda: muted_is(True))
    assert await page.locator("#mute-badge").is_visible()
    await page.click("#stage")  # focus out of the checkbox: Space is for talking
    await page.keyboard.down("Space")
    await page.wait_for_selector("#mic-banner[data-state='live']")
    assert await wait_until(lambda: muted_is(False))
    await page.keyboard.up("Space")
    await page.wait_for_selector("#mic-banner[data-state='ptt']")
    assert await wait_until(lambda: muted_is(True))
    # the on-screen button does the same while the pointer holds it
    hold = page.locator("#ptt-hold")
    assert await hold.is_visible() and await hold.is_enabled()
    await hold.hover()
    await page.mouse.down()
    await page.wait_for_selector("#mic-banner[data-state='live']")
    assert not await page.locator("#mute-badge").is_visible()
    assert await wait_until(lambda: muted_is(False))
    await page.mouse.up()
    await page.wait_for_selector("#mic-banner[data-state='ptt']")
    assert await page.locator("#mute-badge").is_visible()
    assert await wait_until(lambda: muted_is(True))
    await page.mouse.move(0, 0)
    await page.screenshot(path=str(screenshot_dir() / "presenter-controls.png"))
    # the choice is remembered
    assert await page.evaluate("localStorage.getItem('broadcaster:push-to-talk')") == "1"
    await page.uncheck("#opt-ptt")
    await page.wait_for_selector("#mic-banner[data-state='live']")
    assert await wait_until(lambda: muted_is(False))
    # another microphone: the published track now captures from it (a new capture
    # track), LiveKit keeps one unmuted microphone, and the choice is remembered
    devices = await page.eval_on_selector_all(
        "#mic-device option", "os => os.map(o => [o.value, o.textContent.trim()])")
    print("\nCHROMIUM FAKE MICROPHONES", devices)
    before = await page.eval_on_selector("#mic-device", "s => [s.dataset.live, s.dataset.track]")
    other = next(v for v, _ in devices if v and v != before[0])
    await page.select_option("#mic-device", other)
    await page.wait_for_function(
        f"() => document.querySelector('#mic-device').dataset.live === {json.dumps(other)}",
        timeout=10000)
    after = await page.eval_on_selector("#mic-device", "s => [s.dataset.live, s.dataset.track]")
    assert after[1] and after[1] != before[1], (before, after)
    assert await page.evaluate("localStorage.getItem('broadcaster:microphone')") == other
    assert await wait_until(lambda: muted_is(False))
    info = await lkapi.room.get_participant(
        api.RoomParticipantIdentity(room=room, identity=identity))
    assert sum(t.source == api.TrackSource.MICROPHONE for t in info.tracks) == 1
    # the plain mute button: the banner and the stage say so
    await page.click("#mic-toggle")
    await page.wait_for_selector("#mic-banner[data-state='muted'], "
                                 "#mic-banner[data-state='off']")
    assert await page.locator("#mute-badge").is_visible()
    assert "nobody hears you" in (await page.locator("#mic-banner").text_content() or "") or \
        await page.locator("#mic-banner[data-state='off']").count() == 1
    assert not bad(problems), problems
    await page.close()


async def test_viewer_captions_toggle_size_and_fullscreen(
        browser, web: str, web_client: WebClient, livekit) -> None:
    w = await web_client.new_webinar("Viewer controls")
    room = w["room"]
    problems: list[str] = []
    async with FakeBot(livekit, room) as bot:
        page = await open_page(browser, f"{web}/w/{room}", problems)
        await page.evaluate("localStorage.removeItem('broadcaster:captions');"
                            "localStorage.removeItem('broadcaster:caption-size')")
        await page.fill("#join-name", "Lin")
        await page.click("#join-button")
        await page.wait_for_selector("#stage[data-video='on']", timeout=15000)
        await bot.caption("Captions are on by default.")
        first = page.locator("#captions .caption-text:has-text('on by default')")
        await first.wait_for()
        medium = await first.evaluate("e => parseFloat(getComputedStyle(e.parentElement).fontSize)")
        await page.click("#cc-bigger")
        await page.click("#cc-bigger")
        await page.wait_for_selector("#stage[data-caption-size='huge']")
        huge = await first.evaluate("e => parseFloat(getComputedStyle(e.parentElement).fontSize)")
        assert huge > medium * 1.3, (medium, huge)
        await page.screenshot(path=str(screenshot_dir() / "viewer-controls.png"))
        # off: a caption sent now is not shown; the choice survives a reload
        await page.click("#cc-toggle")
        await page.wait_for_selector("#stage[data-captions='off']")
        await bot.caption("This one stays hidden.")
        await page.wait_for_timeout(500)
        assert not await page.locator("#captions").is_visible()
        await page.reload()
        await page.wait_for_selector("body[data-state='live']", timeout=15000)
        assert await page.get_attribute("#stage", "data-captions") == "off"
        assert await page.get_attribute("#stage", "data-caption-size") == "huge"
        await page.click("#cc-toggle")
        await bot.caption("Back on, and still huge.")
        await page.wait_for_selector("#captions .caption-text:has-text('still huge')")
        # fullscreen: the stage (video and captions) fills the screen
        await page.click("#fullscreen")
        await page.wait_for_function("() => document.fullscreenElement?.id === 'stage'")
        await page.wait_for_selector("#stage[data-fullscreen='on']")
        await page.click("#fullscreen")
        await page.wait_for_function("() => !document.fullscreenElement")
        assert not bad(problems), problems
        await page.close()


async def test_the_audience_count_leaves_out_the_presenter_and_host_consoles(
        browser, web: str, web_client: WebClient, livekit) -> None:
    """LiveKit pushes numParticipants (everyone but agents): with two viewers, the
    presenter and a host console watching, the pages say 2 watching, not 4."""
    c = web_client
    w = await c.new_webinar("Who is watching")
    room = w["room"]
    problems: list[str] = []
    async with FakeBot(livekit, room):  # kind agent: not in LiveKit's count at all
        pres = await join_page(browser, w["presenter_url"], "Pat Presenter", problems,
                               ready=PRESENTER_READY)
        page = await join_page(browser, f"{web}/w/{room}", "Vera Viewer", problems)
        sam = (await c.join(room, "sam", name="Sam")).data
        sam_room = await connect(sam["url"], sam["token"])
        host = await open_page(browser, f"{web}/host#key={c.settings.host_key}", problems)
        await host.wait_for_selector("body[data-auth='yes']", timeout=10000)
        await host.click(f"#webinars .w-item[data-room='{room}']")
        await host.click("#watch")
        await host.wait_for_selector("#preview-card:not([hidden])")

        async def counts(p) -> tuple[str, str]:
            """(shown, LiveKit's numParticipants) on page ``p``."""
            return tuple(await p.eval_on_selector(
                "#audience-count", "e => [e.textContent.trim(), e.dataset.participants]"))

        async def settles(want: tuple[str, str]) -> None:
            seen: list[tuple[str, str]] = []

            async def ok() -> bool:
                seen[:] = [await counts(p) for p in (page, pres)]
                return all(c == want for c in seen)

            assert await wait_until(ok, timeout=15), f"pages show {seen}, want {want}"

        try:
            await settles(("2", "4"))  # LiveKit's own count holds 4; the audience is 2
            # the console leaves: still 2 watching, out of 3 LiveKit counts
            await host.click("#watch")
            await settles(("2", "3"))
            assert not bad(problems), problems
        finally:
            for p in (page, pres, host):
                await p.close()
            await sam_room.disconnect()


async def test_the_host_console_shows_each_shards_count(
        browser, web_client: WebClient, livekit) -> None:
    """With audience shards (rooms on the one node here), the console's audience line
    gives the total and each shard's viewers, as LiveKit counts them."""
    s = web_client.settings.replace(web_port=free_port(), audience_shards=2,
                                    avatar_mode="relay", audience_cache_seconds=0.5)
    async with serving(s) as c:
        room = (await c.new_webinar("Sharded audience"))["room"]
        viewers = []
        per_shard: dict[str, int] = {}
        for who in ("ann", "bob", "cid"):
            data = (await c.join(room, who)).data
            per_shard[data["livekit_room"]] = per_shard.get(data["livekit_room"], 0) + 1
            viewers.append(await connect(data["url"], data["token"]))
        assert set(per_shard) == {f"{room}--a1", f"{room}--a2"}, per_shard
        want = " (" + ", ".join(f"{name.split('--')[-1]}: {n}"
                                for name, n in sorted(per_shard.items())) + ")"
        problems: list[str] = []
        host = await open_page(browser, f"{c.base}/host#key={s.host_key}", problems)
        try:
            await host.wait_for_selector("body[data-auth='yes']", timeout=10000)
            await host.click(f"#webinars .w-item[data-room='{room}']")
            await host.wait_for_function(
                "want => { const e = document.querySelector('#d-shards'); "
                "return !e.hidden && e.textContent === want && "
                "document.querySelector('#d-viewers').textContent === '3'; }",
                arg=want, timeout=15000)
            # one leaves: the console follows LiveKit's count of that shard
            gone = next(i for i, v in enumerate(viewers) if v.name == f"{room}--a1")
            await viewers.pop(gone).disconnect()
            per_shard[f"{room}--a1"] -= 1
            want = " (" + ", ".join(f"{name.split('--')[-1]}: {n}"
                                    for name, n in sorted(per_shard.items())) + ")"
            await host.wait_for_function(
                "want => document.querySelector('#d-shards').textContent === want && "
                "document.querySelector('#d-viewers').textContent === '2'",
                arg=want, timeout=20000)
            await host.locator(".card:has(#d-viewers)").screenshot(
                path=str(screenshot_dir() / "host-shards.png"))
            assert not bad(problems), problems
        finally:
            await host.close()
            for v in viewers:
                await v.disconnect()
