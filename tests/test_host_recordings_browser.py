"""The host console's Recordings card in Chromium: the webinar's file and its captions,
downloaded with the host key (the session's real web app on the real livekit-server)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from broadcaster.recordings import recording_dir
from tests.fixtures_web import WebClient
from tests.helpers.browser import chromium, needs_chromium, open_page, screenshot_dir

pytestmark = [pytest.mark.browser, needs_chromium]
MP4 = "20261130T090000Z.mp4"
VTT = "20261130T090000Z.vtt"


async def test_the_host_downloads_the_recording_and_its_captions(
        web: str, web_client: WebClient, tmp_path: Path) -> None:
    w = await web_client.new_webinar("Recorded in the console")
    room = w["room"]
    folder = recording_dir(web_client.settings.recordings_dir, room)
    folder.mkdir(parents=True, exist_ok=True)
    video = os.urandom(300_000)
    (folder / MP4).write_bytes(video)
    (folder / VTT).write_text("WEBVTT\n\n00:00:01.000 --> 00:00:03.000\navatar: Welcome.\n")
    problems: list[str] = []
    async with chromium(tmp_path / "profile") as browser:
        page = await open_page(browser, f"{web}/host#key={web_client.settings.host_key}",
                               problems)
        await page.wait_for_selector("body[data-auth='yes']", timeout=10000)
        await page.click(f"#webinars .w-item[data-room='{room}']")
        item = page.locator(f"#recordings li[data-file='{MP4}']")
        await item.wait_for(timeout=10000)
        assert await page.locator("#recordings-empty").is_hidden()
        async with page.expect_download() as got:
            await item.locator(f"button[data-file='{MP4}']").click()
        download = await got.value
        saved = tmp_path / "video.mp4"
        await download.save_as(saved)
        assert saved.read_bytes() == video
        async with page.expect_download() as got:
            await item.locator(f"button[data-file='{VTT}']").click()
        captions = tmp_path / "captions.vtt"
        await (await got.value).save_as(captions)
        assert "avatar: Welcome." in captions.read_text()
        assert web_client.settings.host_key not in page.url
        await page.locator("#recordings-card").screenshot(
            path=str(screenshot_dir() / "host-recordings.png"))
    assert not problems, problems
