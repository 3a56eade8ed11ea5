"""The speaker gate with real frames through real pipecat pipelines (no LiveKit)."""

from __future__ import annotations

import asyncio
import time

import numpy as np
from pipecat.frames.frames import (
    InputAudioRawFrame,
    TranscriptionFrame,
    UserAudioRawFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)

from broadcaster.bot.speaker_gate import SpeakerGate, speaker_from_metadata
from broadcaster.frames import (
    SpeakerChangedFrame,
    SpeechOnsetCancelledFrame,
    SpeechOnsetFrame,
    SpeechPausedFrame,
    SpeechResumedFrame,
)
from broadcaster.speech import SpeakerVADProcessor, make_stt, make_vad
from tests.helpers.speech import (
    FRAME_MS,
    RATE,
    chunks,
    flite_pcm,
    needs_flite,
    run_pipeline,
    silence,
)


def audio(user: str | None, pcm: bytes = bytes(640)) -> InputAudioRawFrame:
    if user is None:
        return InputAudioRawFrame(audio=pcm, sample_rate=RATE, num_channels=1)
    return UserAudioRawFrame(audio=pcm, sample_rate=RATE, num_channels=1, user_id=user)


def test_speaker_from_metadata():
    assert speaker_from_metadata('{"title": "t", "speaker": "alice", "state": "live"}') == "alice"
    assert speaker_from_metadata('{"speaker": null}') is None
    assert speaker_from_metadata('{"speaker": ""}') is None
    assert speaker_from_metadata("") is None
    assert speaker_from_metadata("not json") is None
    assert speaker_from_metadata('["speaker"]') is None


async def test_only_the_speaker_passes_and_a_change_applies_live():
    gate = SpeakerGate("alice")

    async def script(worker, sink):
        for who in ("alice", "bob", "heygen", None, "alice"):
            await worker.queue_frame(audio(who))
        await sink.wait_for(lambda: len(sink.of(UserAudioRawFrame)) == 2, 5)
        gate.set_speaker("bob")  # as the room-metadata callback does: sync
        assert gate.requested_speaker == "bob"
        await sink.wait_for(lambda: bool(sink.of(SpeakerChangedFrame)), 5)
        for who in ("alice", "bob", "bob"):
            await worker.queue_frame(audio(who))
        await sink.wait_for(lambda: len(sink.of(UserAudioRawFrame)) == 4, 5)
        gate.set_speaker(None)  # nobody has the floor
        await sink.wait_for(lambda: len(sink.of(SpeakerChangedFrame)) == 2, 5)
        for who in ("alice", "bob"):
            await worker.queue_frame(audio(who))
        await asyncio.sleep(0.2)

    sink = await run_pipeline([gate], script)
    passed = [f.user_id for f in sink.of(UserAudioRawFrame)]
    assert passed == ["alice", "alice", "bob", "bob"]
    changes = sink.of(SpeakerChangedFrame)
    assert [(c.previous, c.speaker) for c in changes] == [("alice", "bob"), ("bob", None)]
    assert gate.speaker is None
    assert gate.dropped_frames == 3 + 1 + 2  # bob, heygen, unattributed; alice; both at the end


async def test_set_speaker_to_the_same_identity_is_a_no_op():
    gate = SpeakerGate("alice")

    async def script(worker, sink):
        gate.set_speaker("alice")
        await worker.queue_frame(audio("alice"))
        await sink.wait_for(lambda: bool(sink.of(UserAudioRawFrame)), 5)

    sink = await run_pipeline([gate], script)
    assert sink.of(SpeakerChangedFrame) == []


@needs_flite
async def test_a_change_mid_utterance_does_not_leak_the_old_speakers_words(settings):
    """alice is cut off mid-sentence; only bob's question is transcribed, as bob's."""
    gate = SpeakerGate("alice")
    vad = SpeakerVADProcessor(vad_analyzer=make_vad(settings))
    stt = make_stt(settings)
    alice = flite_pcm("please tell me everything about the weather in paris this weekend")
    bob = flite_pcm("what is on the agenda today")

    async def script(worker, sink):
        for chunk in chunks(silence(0.3) + alice[: len(alice) // 2]):
            await worker.queue_frame(audio("alice", chunk))
        await sink.wait_for(lambda: bool(sink.of(VADUserStartedSpeakingFrame)), 10)
        await asyncio.sleep(0.2)
        gate.set_speaker("bob")
        await sink.wait_for(lambda: bool(sink.of(SpeakerChangedFrame)), 5)
        for chunk in chunks(silence(0.2) + bob + silence(0.8)):
            await worker.queue_frame(audio("bob", chunk))
            await worker.queue_frame(audio("alice", chunk))  # alice keeps talking: dropped
        await sink.wait_for(lambda: bool(sink.of(TranscriptionFrame)), 30)

    sink = await run_pipeline([gate, vad, stt], script)
    transcripts = sink.of(TranscriptionFrame)
    assert len(transcripts) == 1, [t.text for t in transcripts]
    text = transcripts[0].text.lower()
    assert "agenda" in text and "weather" not in text and "paris" not in text
    assert transcripts[0].user_id == "bob"
    # alice's speech was ended (turn logic downstream must not hang), then bob's began
    kinds = [
        type(f).__name__
        for f in sink.of(VADUserStartedSpeakingFrame, VADUserStoppedSpeakingFrame,
                         SpeakerChangedFrame)
    ]
    assert kinds[:3] == [
        "VADUserStartedSpeakingFrame", "SpeakerChangedFrame", "VADUserStoppedSpeakingFrame"
    ]
    assert "VADUserStartedSpeakingFrame" in kinds[3:]


@needs_flite
async def test_the_vad_reports_an_onset_first_and_cancels_it_for_a_noise(settings):
    """A question: SpeechOnsetFrame, then (a window later) VADUserStartedSpeakingFrame.
    A 60 ms scrap of speech (a cough's worth): an onset, then its cancel, and no start.
    No onset comes before the sound."""
    question = flite_pcm("what is on the agenda today")
    ms = RATE // 1000 * 2  # bytes per ms
    scrap = question[400 * ms : 460 * ms]  # a window Silero finds speech-like, alone

    async def heard(pcm: bytes) -> list[str]:
        marks: list[float] = []

        async def script(worker, sink):
            for chunk in chunks(silence(0.5)):
                await worker.queue_frame(audio(None, chunk))
            await asyncio.sleep(0.1)
            marks.append(time.monotonic())
            for chunk in chunks(pcm + silence(0.6)):
                await worker.queue_frame(audio(None, chunk))
            await asyncio.sleep(0.3)

        sink = await run_pipeline([SpeakerVADProcessor(vad_analyzer=make_vad(settings))],
                                  script)
        frames = sink.timed(SpeechOnsetFrame, SpeechOnsetCancelledFrame,
                            VADUserStartedSpeakingFrame, VADUserStoppedSpeakingFrame)
        assert all(t >= marks[0] for t, _ in frames)
        return [type(f).__name__ for _, f in frames]

    said = await heard(question)
    # a breathy "wh" may flap first (onset, cancel); the last onset becomes the start
    *flaps, onset, start, stop = said
    assert (onset, start, stop) == ("SpeechOnsetFrame", "VADUserStartedSpeakingFrame",
                                    "VADUserStoppedSpeakingFrame"), said
    assert flaps == ["SpeechOnsetFrame", "SpeechOnsetCancelledFrame"] * (len(flaps) // 2)
    assert await heard(scrap) == ["SpeechOnsetFrame", "SpeechOnsetCancelledFrame"]


@needs_flite
async def test_whisper_starts_at_the_pause_and_drops_it_when_the_speaker_goes_on(settings):
    """Real Silero and Whisper. A question with a pause in the middle (Silero hears one
    after "agenda" even with 40 ms of silence), then 0.8 s of silence: a speculative
    run starts at the mid pause and is dropped when she goes on; the one started at
    the final pause is the transcript, and it has every word."""
    vad = SpeakerVADProcessor(vad_analyzer=make_vad(settings))
    stt = make_stt(settings)
    first, second = (trimmed(flite_pcm(t)) for t in ("what is on the agenda",
                                                      "for today please"))

    async def script(worker, sink):
        for chunk in chunks(silence(0.3) + first + silence(0.04) + second + silence(0.8)):
            await worker.queue_frame(audio("ann", chunk))
            await asyncio.sleep(FRAME_MS / 1000)  # in real time: runs overlap as they would
        await sink.wait_for(lambda: bool(sink.of(TranscriptionFrame)), 30)

    sink = await run_pipeline([SpeakerGate("ann"), vad, stt], script)
    kinds = [type(f).__name__ for f in sink.of(SpeechPausedFrame, SpeechResumedFrame,
                                               VADUserStoppedSpeakingFrame)]
    assert kinds == ["SpeechPausedFrame", "SpeechResumedFrame", "SpeechPausedFrame",
                     "VADUserStoppedSpeakingFrame"], kinds
    assert stt.speculations == {"started": 2, "used": 1, "discarded": 1}
    (transcript,) = sink.of(TranscriptionFrame)
    text = transcript.text.lower()
    assert all(w in text for w in ("agenda", "today", "please")), transcript.text
    assert transcript.user_id == "ann"


def trimmed(pcm: bytes, floor: int = 300) -> bytes:
    """``pcm`` without the silence flite puts before and after the words."""
    x = np.frombuffer(pcm, np.int16)
    loud = np.flatnonzero(np.abs(x) > floor)
    return x[loud[0] : loud[-1] + 1].tobytes()
