"""Honest stage states in Chromium (issue 15): what viewers and the presenter see when the
avatar is not on the stage, on the real pages against the real livekit-server.

A stand-in bot (FakeBot: LiveKit SDK, drawn video) plays the avatar; the real bot's
``avatar`` participant attribute is set by hand as the bot sets it while it reopens a
session. The viewer sees "Starting soon" with the webinar's title before any avatar,
the live picture once it plays, "Back in a moment" within 2 s of the avatar leaving
or restarting; the presenter is told the avatar cannot answer meanwhile.
"""

from __future__ import annotations

import time

import pytest

from broadcaster.bot.main import AVATAR_ATTRIBUTE
from tests.fixtures_web import FakeBot, WebClient
from tests.helpers.browser import chromium, needs_chromium, open_page, screenshot_dir

pytestmark = [pytest.mark.browser, needs_chromium, pytest.mark.timeout(120)]

TITLE = "Recovery rehearsal"


async def test_stage_slates_tell_viewers_and_the_presenter_the_truth(
        tmp_path_factory: pytest.TempPathFactory, web: str, web_client: WebClient,
        livekit) -> None:
    webinar = await web_client.new_webinar(TITLE)
    room = webinar["room"]
    problems: list[str] = []
    async with chromium(tmp_path_factory.mktemp("chromium-states")) as browser:
        viewer = await open_page(browser, f"{web}/w/{room}", problems)
        await viewer.fill("#join-name", "Ada Lovelace")
        await viewer.click("#join-button")
        await viewer.wait_for_selector("body[data-state='live']", timeout=15000)
        # no avatar yet: a slate with the title, not a black box
        await viewer.wait_for_selector("#stage[data-avatar='waiting']", timeout=5000)
        assert await viewer.locator(".stage-placeholder").is_visible()
        assert await viewer.locator(".slate-title").text_content() == TITLE
        assert await viewer.locator("#stage-message").text_content() == "Starting soon"
        await viewer.screenshot(path=str(screenshot_dir() / "stage-starting-soon.png"))
        assert await viewer.locator(".quality-dot").count() == 1

        presenter = await open_page(browser, webinar["presenter_url"], problems)
        await presenter.fill("#join-name", "Pat Presenter")
        await presenter.click("#join-button")
        await presenter.wait_for_selector("#floor[data-floor='yes']", timeout=15000)
        line = presenter.locator("#speaker-line")
        assert "not on stage yet" in (await line.text_content() or "")

        async with FakeBot(livekit, room) as bot:
            await viewer.wait_for_selector("#stage[data-avatar='live']", timeout=15000)
            assert not await viewer.locator(".stage-placeholder").is_visible()
            await presenter.wait_for_selector("#speaker-line:has-text('Speak naturally')",
                                              timeout=10000)
            # the bot reopens its avatar session: it says so; pages show the slate at once
            t0 = time.monotonic()
            await bot.room.local_participant.set_attributes({AVATAR_ATTRIBUTE: "restarting"})
            await viewer.wait_for_selector("#stage[data-avatar='away']", timeout=2000)
            assert time.monotonic() - t0 < 2.0
            assert await viewer.locator("#stage-message").text_content() == "Back in a moment"
            await presenter.wait_for_selector("#speaker-line:has-text('reconnecting')",
                                              timeout=2000)
            await viewer.screenshot(path=str(screenshot_dir() / "stage-back-in-a-moment.png"))
            await bot.room.local_participant.set_attributes({AVATAR_ATTRIBUTE: "live"})
            await viewer.wait_for_selector("#stage[data-avatar='live']", timeout=5000)
        # the bot is gone (its picture stops): the slate within 2 s
        t0 = time.monotonic()
        await viewer.wait_for_selector("#stage[data-avatar='away']", timeout=2500)
        assert time.monotonic() - t0 < 2.5
        await viewer.wait_for_function(
            "() => document.querySelector('.quality-dot').dataset.quality !== 'unknown'",
            timeout=15000)
    assert not [p for p in problems if "pageerror" in p or "Content Security Policy" in p], \
        problems


async def test_a_frozen_live_avatar_makes_the_viewer_page_rejoin_naming_its_room(
        tmp_path_factory: pytest.TempPathFactory, web: str, web_client: WebClient,
        livekit) -> None:
    """Issue 14: when a LiveKit node dies its events stop too, so the page sees the
    bot still 'live' while the picture stands still. After 2.5 s frozen it joins again
    through the join API naming the room it lost (which routes it elsewhere), and a
    freeze that rejoining does not cure is retried ever more slowly (no API storm)."""
    room = (await web_client.new_webinar(TITLE))["room"]
    problems: list[str] = []
    joins: list[tuple[float, dict]] = []
    async with chromium(tmp_path_factory.mktemp("chromium-frozen")) as browser:
        viewer = await open_page(browser, f"{web}/w/{room}", problems)
        viewer.on("request", lambda r: joins.append((time.monotonic(), r.post_data_json))
                  if r.url.endswith(f"/api/webinars/{room}/join") else None)
        await viewer.fill("#join-name", "Grace Hopper")
        await viewer.click("#join-button")
        async with FakeBot(livekit, room) as bot:
            await viewer.wait_for_selector("#stage[data-avatar='live']", timeout=15000)
            assert [j for _, j in joins if j.get("lost")] == []
            bot._tasks[0].cancel()  # the picture stops; the bot stays, still "live"
            frozen = time.monotonic()
            deadline = frozen + 8
            while time.monotonic() < deadline and not any(j.get("lost") for _, j in joins):
                await viewer.wait_for_timeout(100)
            lost = [(t - frozen, j) for t, j in joins if j.get("lost")]
            assert lost, f"the page never rejoined: {joins}"
            assert 2.0 <= lost[0][0] <= 5.0, lost[0][0]  # frozen 2.5 s, checked each 0.25 s
            assert lost[0][1]["lost"] == room  # shards off: the webinar's room itself
            await viewer.wait_for_selector("body[data-state='live']", timeout=10000)
            await viewer.wait_for_timeout(8000)  # still frozen: retries slow down
            retries = [t - frozen for t, j in joins if j.get("lost")]
            assert len(retries) <= 4, f"rejoined at {retries} s: no back-off"
            # after the rejoins the hand card is one card: a click raises the hand with one
            # request (each rejoin used to start another card on the same button)
            posts: list[str] = []
            viewer.on("request", lambda r: posts.append(r.url) if r.method == "POST"
                      and r.url.endswith(f"/api/webinars/{room}/hand") else None)
            await viewer.click("#hand-toggle")
            await viewer.wait_for_selector("#hand-card[data-hand='up']")
            await viewer.wait_for_timeout(500)
            assert len(posts) == 1, f"one click sent {len(posts)} hand requests"
    assert not [p for p in problems if "pageerror" in p], problems
