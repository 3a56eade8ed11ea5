"""Captions: real frames in, LiveKit text streams out (real livekit-server), JSONL on disk."""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from livekit import api, rtc
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    InterimTranscriptionFrame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    VADUserStartedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from broadcaster.bot.captions import (
    SEGMENT_ATTR,
    CaptionProcessor,
    CaptionPublisher,
    captions_path,
)
from broadcaster.protocol import (
    AVATAR_CAPTION_SPEAKER,
    CAPTION_FINAL_ATTR,
    CAPTION_SEQ_ATTR,
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


def avatar_reply(*parts: tuple[str, float], ended: bool = True) -> list:
    """A reply's frames: each sentence after its audio; ``ended=False``: still talking."""
    frames: list = [LLMFullResponseStartFrame(), TTSStartedFrame()]
    for text, seconds in parts:
        frames += [tts_audio(seconds), sentence(text)]
    return frames + ([TTSStoppedFrame(), LLMFullResponseEndFrame()] if ended else [])


async def test_viewers_receive_captions_and_the_session_keeps_them(livekit):
    s = livekit
    async with api.LiveKitAPI(s.livekit_http_url, s.livekit_api_key, s.livekit_api_secret) as lk:
        await lk.room.create_room(api.CreateRoomRequest(name=ROOM))
    viewer, bot = rtc.Room(), rtc.Room()
    received: list[tuple[float, str, dict[str, str], str]] = []

    newest: dict[str, int] = {}

    async def read(reader: rtc.TextStreamReader, sender: str) -> None:
        # as the protocol says: per segment, a line older than one shown is not shown
        text = await reader.read_all()
        attrs = dict(reader.info.attributes)
        segment, seq = attrs[SEGMENT_ATTR], int(attrs[CAPTION_SEQ_ATTR])
        if seq > newest.get(segment, 0):
            newest[segment] = seq
            received.append((time.monotonic(), text, attrs, sender))

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
            await sink.wait_for(lambda: any(
                a[CAPTION_FINAL_ATTR] == "true"
                and a[CAPTION_SPEAKER_ATTR] == AVATAR_CAPTION_SPEAKER
                for _, _, a, _ in received), 15)

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
    # the interim line and its final were sent back to back: the interim may complete
    # after the final at this viewer, and is then not shown
    assert [(text, final) for _, text, final, _ in alice] in (
        [("what is on the", "false"), ("What is on the agenda today?", "true")],
        [("What is on the agenda today?", "true")],
    )
    full = "Today's agenda has five parts. First."
    # the avatar's line grows word by word, then its final replaces it
    texts = [text for _, text, _, _ in avatar]
    assert [final for *_, final, _ in avatar] == ["false"] * (len(avatar) - 1) + ["true"]
    assert texts[-1] == full and len(avatar) >= 4
    interims = texts[:-1]
    assert all(full.startswith(t) and len(t) < len(n)
               for t, n in zip(interims, interims[1:], strict=False))
    assert texts[0] == "Today's"
    assert {sender for *_, sender in received} == {s.bot_identity}
    # an interim line and its final share a segment id; a new utterance gets a new one
    assert alice[0][3] == alice[-1][3] != avatar[0][3]
    assert {seg for *_, seg in avatar} == {avatar[0][3]}
    # "First." shows when its audio starts, 0.6 s into the answer
    first = next(t for t, text, _, _ in avatar if text.endswith("First."))
    assert first - avatar[0][0] > 0.45

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
        for frame in avatar_reply(("One.", 5.0), ("Two.", 5.0), ended=False):
            await worker.queue_frame(frame)
        await asyncio.sleep(0.8)  # "One." is heard (~0.5 s in, no republisher); "Two." in 5 s
        await worker.queue_frame(InterruptionFrame())
        await asyncio.sleep(0.3)
        await captions.flush()

    start = time.monotonic()
    await run_pipeline([captions], script)
    assert time.monotonic() - start < 4  # the interruption cut the wait for "Two." short
    lines = [json.loads(x) for x in (tmp_path / "captions.jsonl").read_text().splitlines()]
    assert [x["text"] for x in lines] == ["One."]


async def test_a_stop_mid_reply_closes_the_line_as_far_as_it_was_shown(tmp_path):
    # SIGTERM cancels the bot's pipeline while the avatar talks: the line viewers see is
    # finalized as far as it was shown (not left hanging), and the transcript keeps it
    publisher = CaptionPublisher(None, tmp_path / "captions.jsonl")  # no room: file only
    captions = CaptionProcessor(publisher, "avatar")

    async def script(worker, sink):
        for frame in avatar_reply(("One.", 5.0), ("Two.", 5.0), ended=False):
            await worker.queue_frame(frame)
        await asyncio.sleep(0.8)  # "One." is shown; "Two." would be in 5 s
        await worker.cancel()

    await run_pipeline([captions], script)
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


# --- the avatar's words in step with its voice ----------------------------------------------

VOICED = 24_000  # samples per second of TTS audio


def voiced_audio(seconds: float, *, lead: float = 0.0) -> TTSAudioRawFrame:
    """A sentence's TTS audio: ``lead`` s of silence, then a tone (a voice, to the captions)."""
    n = int(seconds * TTS_RATE)
    t = np.arange(n) / TTS_RATE
    pcm = (8000 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)
    pcm[: int(lead * TTS_RATE)] = 0
    return TTSAudioRawFrame(audio=pcm.tobytes(), sample_rate=TTS_RATE, num_channels=1)


class Lines(CaptionPublisher):
    """Records what would be sent, with monotonic times (no room: the unit under test is the
    processor's timing; the live tests above cover the sending)."""

    def __init__(self) -> None:
        super().__init__(None)
        self.lines: list[tuple[float, str, bool, str]] = []

    async def publish(self, text: str, *, speaker: str, final: bool, segment: str,
                      source: str) -> None:
        self.lines.append((time.monotonic(), text, final, segment))


class Voice(FrameProcessor):
    """Stands in for the republisher's speaking signal (sent upstream when its audio plays)."""

    async def process_frame(self, frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)

    async def started(self) -> None:
        await self.push_frame(BotStartedSpeakingFrame(), FrameDirection.UPSTREAM)


async def test_words_wait_for_the_voice_and_follow_it():
    lines = Lines()
    captions, voice = CaptionProcessor(lines, "avatar"), Voice()
    t: dict[str, float] = {}

    async def script(worker, sink):
        for frame in [LLMFullResponseStartFrame(), TTSStartedFrame(), voiced_audio(1.0, lead=0.2),
                      sentence("One two three four."), voiced_audio(1.0),
                      sentence("Five six seven eight."), TTSStoppedFrame(),
                      LLMFullResponseEndFrame()]:
            await worker.queue_frame(frame)
        await asyncio.sleep(0.25)
        assert not lines.lines, "a word was shown before the avatar's voice started"
        t["voice"] = time.monotonic()
        await voice.started()  # the first voiced audio is published now
        await asyncio.sleep(2.3)

    await run_pipeline([captions, voice], script)
    texts = [text for _, text, _, _ in lines.lines]
    assert texts[-1] == "One two three four. Five six seven eight." and lines.lines[-1][2]
    assert not any(final for _, _, final, _ in lines.lines[:-1])

    def shown(word: str) -> float:
        return next(at for at, text, _, _ in lines.lines if text.split()[-1].startswith(word))

    # "One" is the first voiced sound (0.2 s of lead silence is not waited for twice);
    # "Five" starts the second sentence, 0.8 s of voice later; words in between in order
    assert 0.0 <= shown("One") - t["voice"] < 0.2
    assert 0.65 < shown("Five") - t["voice"] < 1.0
    assert shown("One") < shown("three") < shown("Five") < shown("seven")


async def test_a_reply_whose_voice_comes_later_than_the_last_one_waits_for_it():
    # bench/caption_sync.py saw a reply's first word shown 0.42 s before the viewer heard
    # it: the reply was timed on the previous reply's latency until its own voice started.
    # Once the republisher has spoken, a reply's words wait for its own signal.
    lines = Lines()
    captions, voice = CaptionProcessor(lines, "avatar"), Voice()
    t: dict[str, float] = {}

    async def script(worker, sink):
        for frame in [LLMFullResponseStartFrame(), voiced_audio(0.5), sentence("One two."),
                      LLMFullResponseEndFrame()]:
            await worker.queue_frame(frame)
        await asyncio.sleep(0.05)
        await voice.started()  # reply 1: voice 0.05 s after its TTS audio
        await asyncio.sleep(1.0)
        for frame in [LLMFullResponseStartFrame(), voiced_audio(0.5), sentence("Nine ten."),
                      LLMFullResponseEndFrame()]:
            await worker.queue_frame(frame)
        await asyncio.sleep(0.9)  # reply 2: its voice starts 0.9 s after its TTS audio
        t["voice"] = time.monotonic()
        await voice.started()
        await asyncio.sleep(1.0)

    await run_pipeline([captions, voice], script)
    nine = next(at for at, text, _, _ in lines.lines if text.startswith("Nine"))
    assert nine >= t["voice"], f"'Nine' shown {t['voice'] - nine:.2f} s before its voice"
    assert nine - t["voice"] < 0.3


async def test_a_barge_in_after_the_tts_finished_shows_no_unspoken_word():
    # TTS runs far ahead of the voice: the reply's text is all queued when the speaker
    # talks over it. Only the words already reached may be shown, and the line is final.
    lines = Lines()
    captions = CaptionProcessor(lines, "avatar", interrupt_on_speech_start=True)

    async def script(worker, sink):
        for frame in [LLMFullResponseStartFrame(), TTSStartedFrame(), voiced_audio(2.0),
                      sentence("Alpha bravo charlie delta."), voiced_audio(1.5),
                      sentence("Echo foxtrot golf hotel."), TTSStoppedFrame(),
                      LLMFullResponseEndFrame()]:
            await worker.queue_frame(frame)
        # no republisher: the fallback latency (0.45 s) + playout; "Alpha" is heard at
        # ~0.5 s, "bravo" ~0.95 s, "charlie" ~1.4 s
        await asyncio.sleep(1.15)
        await worker.queue_frame(VADUserStartedSpeakingFrame())
        await asyncio.sleep(2.0)

    await run_pipeline([captions], script)
    finals = [text for _, text, final, _ in lines.lines if final]
    assert len(finals) == 1 and finals[0] == lines.lines[-1][1]
    said = finals[0].split()
    assert said[:2] == ["Alpha", "bravo"] and "Echo" not in said and len(said) < 5


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(["reply", "reply", "stop", "interrupt", "voice", "wait"]),
                min_size=1, max_size=8))
def test_nothing_follows_a_final_line_of_its_segment(steps):
    # issue 13 item 7: a final avatar line was followed at a viewer by an interim one
    # with the same text and segment id
    lines = Lines()

    async def run() -> None:
        captions, voice = CaptionProcessor(lines, "avatar", interrupt_on_speech_start=True), Voice()

        async def script(worker, sink):
            for step in steps:
                if step == "reply":
                    for frame in [LLMFullResponseStartFrame(), TTSStartedFrame(),
                                  voiced_audio(0.2), sentence("Yes it is."), voiced_audio(0.1),
                                  sentence("Quite.")]:
                        await worker.queue_frame(frame)
                elif step == "stop":
                    await worker.queue_frame(TTSStoppedFrame())
                    await worker.queue_frame(LLMFullResponseEndFrame())
                elif step == "interrupt":
                    await worker.queue_frame(InterruptionFrame())
                elif step == "voice":
                    await voice.started()
                else:
                    await asyncio.sleep(0.3)
            await asyncio.sleep(0.05)

        await run_pipeline([captions, voice], script)

    asyncio.run(run())
    closed: set[str] = set()
    for _, text, final, segment in lines.lines:
        assert segment not in closed, f"{text!r} sent after its segment's final line"
        if final:
            closed.add(segment)
    assert len({seg for *_, seg in lines.lines}) == len(closed), "a line was never finalized"


async def test_the_runner_closes_the_line_in_flight_before_it_stops_the_pipeline():
    # the bot's runner calls close_shown() before cancelling (the room is gone once the
    # cancel reaches the captions): the final line is sent while viewers can still get it
    lines = Lines()
    captions = CaptionProcessor(lines, "avatar")
    sent: dict[str, list] = {}

    async def script(worker, sink):
        for frame in avatar_reply(("One.", 5.0), ("Two.", 5.0), ended=False):
            await worker.queue_frame(frame)
        await asyncio.sleep(0.8)
        await captions.close_shown()
        sent["before_cancel"] = list(lines.lines)
        await worker.cancel()

    await run_pipeline([captions], script)
    before = sent["before_cancel"]
    assert before and before[-1][1:3] == ("One.", True), before
    assert not any("Two." in text for _, text, _, _ in lines.lines)
