"""Captions: real frames in, LiveKit text streams out (real livekit-server), JSONL on disk."""

from __future__ import annotations

import asyncio
import json
import time

from livekit import api, rtc
from pipecat.frames.frames import (
    InterimTranscriptionFrame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)

from broadcaster.bot.captions import (
    SEGMENT_ATTR,
    CaptionProcessor,
    CaptionPublisher,
    captions_path,
)
from broadcaster.protocol import (
    AVATAR_CAPTION_SPEAKER,
    CAPTION_FINAL_ATTR,
    CAPTION_SPEAKER_ATTR,
    CAPTION_TOPIC,
)
from broadcaster.roles import Role, mint_token
from tests.helpers.speech import run_pipeline

ROOM = "captions-live"
TTS_RATE = 24_000


def tts_audio(seconds: float) -> TTSAudioRawFrame:
    return TTSAudioRawFrame(audio=bytes(int(seconds * TTS_RATE) * 2), sample_rate=TTS_RATE,
                            num_channels=1)


def sentence(text: str) -> TTSTextFrame:
    return TTSTextFrame(text, "sentence")


def avatar_reply(*parts: tuple[str, float]) -> list:
    frames: list = [LLMFullResponseStartFrame(), TTSStartedFrame()]
    for text, seconds in parts:
        frames += [tts_audio(seconds), sentence(text)]
    return frames + [TTSStoppedFrame(), LLMFullResponseEndFrame()]


async def test_viewers_receive_captions_and_the_session_keeps_them(livekit):
    s = livekit
    async with api.LiveKitAPI(s.livekit_http_url, s.livekit_api_key, s.livekit_api_secret) as lk:
        await lk.room.create_room(api.CreateRoomRequest(name=ROOM))
    viewer, bot = rtc.Room(), rtc.Room()
    received: list[tuple[float, str, dict[str, str], str]] = []

    async def read(reader: rtc.TextStreamReader, sender: str) -> None:
        text = await reader.read_all()
        received.append((time.monotonic(), text, dict(reader.info.attributes), sender))

    tasks: set[asyncio.Task] = set()

    def on_stream(reader: rtc.TextStreamReader, sender: str) -> None:
        task = asyncio.create_task(read(reader, sender))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    viewer.register_text_stream_handler(CAPTION_TOPIC, on_stream)
    url = s.effective_livekit_url
    await viewer.connect(url, mint_token(s, Role.VIEWER, ROOM, "viewer-1"))  # hidden viewer
    await bot.connect(url, mint_token(s, Role.BOT, ROOM, s.bot_identity))
    log = captions_path(s, ROOM)
    publisher = CaptionPublisher.for_session(s, ROOM, lambda: bot)
    speaker_captions = CaptionProcessor(publisher, "speaker")
    avatar_captions = CaptionProcessor(publisher, "avatar")
    try:

        async def script(worker, sink):
            await worker.queue_frame(
                InterimTranscriptionFrame("what is on the", "alice", "t0")
            )
            await worker.queue_frame(
                TranscriptionFrame("What is on the agenda today?", "alice", "t1", finalized=True)
            )
            for frame in avatar_reply(("Today's agenda has five parts.", 0.6), ("First.", 0.3)):
                await worker.queue_frame(frame)
            await sink.wait_for(lambda: len(received) >= 5, 15)

        await run_pipeline([speaker_captions, avatar_captions], script)
    finally:
        await viewer.disconnect()
        await bot.disconnect()

    # each speaker's lines arrive in order (the two sources are sent independently)
    def lines_of(who: str) -> list[tuple[float, str, str, str]]:
        return [
            (t, text, a[CAPTION_FINAL_ATTR], a[SEGMENT_ATTR])
            for t, text, a, _ in received
            if a[CAPTION_SPEAKER_ATTR] == who
        ]

    alice, avatar = lines_of("alice"), lines_of(AVATAR_CAPTION_SPEAKER)
    assert [(text, final) for _, text, final, _ in alice] == [
        ("what is on the", "false"),
        ("What is on the agenda today?", "true"),
    ]
    assert [(text, final) for _, text, final, _ in avatar] == [
        ("Today's agenda has five parts.", "false"),
        ("Today's agenda has five parts. First.", "false"),
        ("Today's agenda has five parts. First.", "true"),
    ]
    assert len(received) == 5
    assert {sender for *_, sender in received} == {s.bot_identity}
    # an interim line and its final share a segment id; a new utterance gets a new one
    assert alice[0][3] == alice[1][3] != avatar[0][3] == avatar[1][3] == avatar[2][3]
    # the second sentence shows when its audio starts, 0.6 s into the answer
    assert avatar[1][0] - avatar[0][0] > 0.45

    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted((x["speaker"], x["source"], x["text"]) for x in lines) == [
        ("alice", "speaker", "What is on the agenda today?"),
        (AVATAR_CAPTION_SPEAKER, "avatar", "Today's agenda has five parts. First."),
    ]
    assert all(x["time"].endswith("+00:00") for x in lines)


async def test_an_interruption_keeps_only_what_was_shown(tmp_path):
    publisher = CaptionPublisher(None, tmp_path / "captions.jsonl")  # no room: file only
    captions = CaptionProcessor(publisher, "avatar")

    async def script(worker, sink):
        for frame in [LLMFullResponseStartFrame(), TTSStartedFrame(), tts_audio(5.0),
                      sentence("One."), tts_audio(5.0), sentence("Two.")]:
            await worker.queue_frame(frame)
        await asyncio.sleep(0.3)  # "One." is shown; "Two." is due in 5 s
        await worker.queue_frame(InterruptionFrame())
        await asyncio.sleep(0.3)
        await captions.flush()

    start = time.monotonic()
    await run_pipeline([captions], script)
    assert time.monotonic() - start < 4  # the interruption cut the wait for "Two." short
    lines = [json.loads(x) for x in (tmp_path / "captions.jsonl").read_text().splitlines()]
    assert [x["text"] for x in lines] == ["One."]


async def test_word_level_tts_is_not_paced_twice(tmp_path):
    publisher = CaptionPublisher(None, tmp_path / "captions.jsonl")
    captions = CaptionProcessor(publisher, "avatar")

    async def script(worker, sink):
        frames = [LLMFullResponseStartFrame(), TTSStartedFrame()]
        for word in ("Hello", "there."):
            frames += [tts_audio(2.0), TTSTextFrame(word, "word")]
        for frame in frames + [TTSStoppedFrame(), LLMFullResponseEndFrame()]:
            await worker.queue_frame(frame)
        await asyncio.sleep(0.2)
        await captions.flush()

    start = time.monotonic()
    await run_pipeline([captions], script)
    assert time.monotonic() - start < 1.5
    lines = [json.loads(x) for x in (tmp_path / "captions.jsonl").read_text().splitlines()]
    assert [x["text"] for x in lines] == ["Hello there."]
