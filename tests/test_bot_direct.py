"""Direct mode end to end: the bot asks the avatar service to join the stage room itself.

A second real bot (``avatar_mode=direct``) in its own webinar: the local avatar
service publishes into the stage room as ``bot_identity`` (LiveAvatar's
``livekit_config``, a token the bot minted), the bot listens as
``<bot_identity>-listener`` and publishes no media. Viewers, joined through the web
app, see and hear the avatar with no relay hop; the presenter's question is answered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from livekit import api

from broadcaster.bot.pipeline import listener_identity
from broadcaster.bot.responder import Responder
from broadcaster.config import Settings
from broadcaster.protocol import AVATAR_CAPTION_SPEAKER
from tests.fixtures_bot import LIVE, BotStage, join_presenter, join_viewer, running_bot
from tests.fixtures_web import WebClient
from tests.helpers.people import LOUD_RMS, QUESTION, until
from tests.helpers.speech import needs_flite

pytestmark = [pytest.mark.timeout(240), needs_flite]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def direct_bot(web_client: WebClient, avatar_service: str,
                     avatar_settings: Settings) -> AsyncIterator[BotStage]:
    webinar = await web_client.new_webinar("Direct mode")
    async with running_bot(avatar_settings.replace(avatar_mode="direct"), webinar) as bot:
        yield bot


async def test_the_avatar_publishes_into_the_stage_room_and_answers(
    direct_bot: BotStage, web_client: WebClient, lkapi: api.LiveKitAPI
) -> None:
    bot, s = direct_bot, direct_bot.settings
    room = bot.room
    viewer = await join_viewer(bot, web_client, "ada")
    presenter = await join_presenter(bot, web_client)
    try:
        await until(lambda: len(viewer.frames) > 10 and viewer.audio, 20,
                    "the avatar's tracks at the viewer", bot)
        t0 = time.monotonic()
        await asyncio.sleep(3.0)
        # The avatar service stamps no frame metadata, and idle frames can be alike in
        # the sampled pixels: count decoded frames, not distinct ones.
        got = [f for f in viewer.frames if t0 <= f[0] < t0 + 3.0]
        fps = len(got) / 3.0
        assert {f[3] for f in got} == {(s.video_width, s.video_height)}
        assert fps >= 0.9 * s.video_fps, f"{fps:.2f} fps at the viewer"

        # Who publishes what: the avatar (as the bot identity) camera + mic; the bot's
        # listener nothing at all.
        people = {p.identity: p for p in (await lkapi.room.list_participants(
            api.ListParticipantsRequest(room=room))).participants}
        avatar, listener = people[s.bot_identity], people[listener_identity(s)]
        assert {t.source for t in avatar.tracks} == {api.TrackSource.CAMERA,
                                                     api.TrackSource.MICROPHONE}
        assert not listener.tracks, listener.tracks

        said = await presenter.say(QUESTION)
        await until(lambda: viewer.first_loud(said.voice_off, LOUD_RMS), 15,
                    "the avatar's answer at the viewer", bot)
        latency = viewer.first_loud(said.voice_off, LOUD_RMS) - said.voice_off
        answer = Responder.from_file(s.faq_path).answer(QUESTION).text
        await until(lambda: any(answer[:30].lower() in c.text.lower()
                                for c in viewer.captions_after(said.voice_on,
                                                               AVATAR_CAPTION_SPEAKER)),
                    10, "the answer's caption", bot)
        print(f"\nDIRECT MODE speaker stops -> avatar audio at viewer: {latency * 1e3:.0f} ms")
        metrics = await bot.metrics()
        assert LIVE.search(metrics), "the bot does not report the avatar live"
        assert "broadcaster_republisher_frames_in" not in metrics  # no relay in this mode
    finally:
        await presenter.leave()
        await viewer.leave()
