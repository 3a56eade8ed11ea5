"""The real bot with real pages in Debian's Chromium: the presenter page's microphone is
a WAV file (``--use-file-for-fake-audio-capture``: flite asking about the agenda), the
bot answers, and a viewer page plays the avatar and shows the captions.

Runs the module's own real bot and stage room (``bot_stage``, see tests/fixtures_bot.py).
"""

from __future__ import annotations

import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio

from tests.fixtures_bot import BotStage
from tests.fixtures_web import WebClient
from tests.helpers.browser import chromium, needs_chromium, open_page, screenshot_dir
from tests.helpers.speech import flite_pcm, needs_flite

RATE = 48_000
QUESTION = "What is on the agenda today?"
LEAD_SECS = 3.0    # the page joins and publishes before the question starts
TAIL_SECS = 40.0   # Chromium loops the file: the question comes back only after this

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(180),
    needs_flite,
    needs_chromium,
]


def question_wav(path: Path) -> Path:
    """The question as 48 kHz mono 16-bit PCM, padded with silence on both sides."""
    speech = np.frombuffer(flite_pcm(QUESTION, RATE), np.int16)
    pcm = np.concatenate([np.zeros(int(LEAD_SECS * RATE), np.int16), speech,
                          np.zeros(int(TAIL_SECS * RATE), np.int16)])
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())
    return path


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[object]:
    tmp = tmp_path_factory.mktemp("bot-browser")
    wav = question_wav(tmp / "question.wav")
    async with chromium(tmp / "profile", f"--use-file-for-fake-audio-capture={wav}") as ctx:
        yield ctx


async def video_state(page) -> dict:
    return await page.evaluate(
        "() => { const v = document.querySelector('#stage video');"
        " return {w: v.videoWidth, h: v.videoHeight, t: v.currentTime, paused: v.paused}; }")


async def test_presenter_page_asks_and_the_viewer_page_shows_the_answer(
    browser, bot_stage: BotStage, web: str, web_client: WebClient
):
    room, settings = bot_stage.room, bot_stage.settings
    problems: list[str] = []

    viewer = await open_page(browser, f"{web}/w/{room}", problems, console_errors=False)
    await viewer.fill("#join-name", "Ada Lovelace")
    await viewer.click("#join-button")
    await viewer.wait_for_selector("body[data-state='live']", timeout=15000)
    await viewer.wait_for_function(
        "() => { const v = document.querySelector('#stage video');"
        " return v && v.videoWidth > 0 && !v.paused && v.currentTime > 0; }", timeout=15000)

    presenter = await open_page(browser, bot_stage.webinar["presenter_url"], problems,
                                console_errors=False)
    await presenter.click("details.mic-options summary")
    for box in ("#opt-echo", "#opt-noise", "#opt-agc"):  # a WAV, not a room: no processing
        await presenter.uncheck(box)
    await presenter.fill("#join-name", "Pat Presenter")
    await presenter.click("#join-button")
    await presenter.wait_for_selector("#floor[data-floor='yes']", timeout=15000)
    await presenter.wait_for_selector("#mic-state[data-state='on']", timeout=15000)
    asked = time.monotonic()
    pat = await presenter.evaluate(
        f"JSON.parse(sessionStorage.getItem('broadcaster:presenter:{room}')).identity")

    # the bot hears the page's microphone: the speaker's words, then the avatar's answer
    try:
        await viewer.wait_for_selector(
            f"#captions .caption[data-speaker='{pat}'] .caption-text:text-matches('agenda', 'i')",
            timeout=20000)
        await viewer.wait_for_selector(
            "#captions .caption[data-speaker='avatar'] .caption-text:text-matches('agenda', 'i')",
            timeout=15000)
    except Exception as exc:
        raise AssertionError(f"no caption; bot log:\n{bot_stage.tail(40)}") from exc
    answered = time.monotonic() - asked
    assert await viewer.locator(
        "#captions .caption[data-speaker='avatar'] .caption-who").first.text_content() == "Avatar"

    # the avatar is mid-answer: its video plays at full size, time advancing
    first = await video_state(viewer)
    await viewer.wait_for_timeout(1500)
    second = await video_state(viewer)
    assert (second["w"], second["h"]) == (settings.video_width, settings.video_height), second
    assert not second["paused"] and second["t"] - first["t"] > 1.0, (first, second)
    await viewer.wait_for_selector(  # the answer's second sentence: the avatar is talking
        "#captions .caption[data-speaker='avatar'] .caption-text:text-matches('First', 'i')",
        timeout=10000)
    await viewer.mouse.move(0, 0)
    await viewer.screenshot(path=str(screenshot_dir() / "viewer-live.png"))
    print(f"\nBROWSER question asked -> avatar caption at the viewer page: {answered:.1f} s")

    assert not [p for p in problems if "pageerror" in p], problems
    await presenter.close()
    await viewer.close()
