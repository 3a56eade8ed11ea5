"""Speech factories, and the keyless round trip: voice → Whisper → responder → Piper."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from pipecat.frames.frames import (
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    UserAudioRawFrame,
    UserStartedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.services.piper.tts import PiperTTSService

from broadcaster.bot.responder import make_responder
from broadcaster.bot.speaker_gate import SpeakerGate
from broadcaster.config import ConfigError, Settings
from broadcaster.speech import SpeakerVADProcessor, make_stt, make_tts, make_vad
from broadcaster.speech.segmented import SpeakerAwareWhisperSTTService
from broadcaster.speech.tts_cache import CachedPiperTTSService, PhraseCache
from broadcaster.speech.tts_cache import sentences as tts_sentences
from tests.helpers.openai_stub import OpenAIStub
from tests.helpers.people import words
from tests.helpers.speech import (
    FRAME_MS,
    RATE,
    chunks,
    flite_pcm,
    needs_flite,
    run_pipeline,
    silence,
)


def config(**env: str) -> Settings:
    return Settings.load(env={f"BROADCASTER_{k.upper()}": v for k, v in env.items()},
                         generate_secrets=False)


def test_defaults_need_no_key(monkeypatch):
    for var in ("OPENAI_API_KEY", "DEEPGRAM_API_KEY", "CARTESIA_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    settings = config()
    assert isinstance(make_stt(settings), SpeakerAwareWhisperSTTService)
    assert isinstance(make_tts(settings), PiperTTSService)
    assert make_vad(settings).params.stop_secs == settings.vad_stop_secs


def test_cloud_replacements_are_chosen_by_configuration(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="BROADCASTER_TTS_API_KEY or OPENAI_API_KEY"):
        make_tts(config(tts_provider="openai"))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")  # the provider's own variable works too
    assert type(make_tts(config(tts_provider="openai"))).__name__ == "OpenAITTSService"
    stt = make_stt(config(stt_provider="openai", stt_base_url="http://127.0.0.1:9/v1"))
    assert type(stt).__name__ == "SpeakerAwareOpenAISTTService"  # keeps the speaker rules
    with pytest.raises(ConfigError, match="tts_voice|BROADCASTER_TTS_VOICE"):
        make_tts(config(tts_provider="cartesia", tts_api_key="k"))


def test_a_missing_extra_names_the_setting():
    try:
        import deepgram  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("the deepgram extra is installed here")
    with pytest.raises(ConfigError, match=r"stt_provider=deepgram.*pipecat-ai\[deepgram\]"):
        make_stt(config(stt_provider="deepgram", stt_api_key="k"))


def test_unknown_providers_are_rejected_when_loading():
    with pytest.raises(ConfigError, match="stt_provider"):
        config(stt_provider="nope")
    with pytest.raises(ConfigError, match="tts_provider"):
        config(tts_provider="nope")


@needs_flite
async def test_round_trip_voice_to_answer_audio(settings):
    """flite asks → gate → VAD → Whisper → responder → Piper, the bot's keyless path."""
    question = flite_pcm("what is on the agenda today")
    chain = make_responder(settings)  # user-turn processor + responder
    processors = [
        SpeakerGate("presenter"),
        SpeakerVADProcessor(vad_analyzer=make_vad(settings)),
        make_stt(settings),
        *chain.processors,
        make_tts(settings),
    ]
    marks: dict[str, float] = {}

    async def script(worker, sink):
        # in real time, as a microphone would deliver it
        lead, tail = chunks(silence(0.3)), chunks(silence(1.2))
        speech = chunks(question)
        for i, chunk in enumerate(lead + speech + tail):
            await worker.queue_frame(
                UserAudioRawFrame(audio=chunk, sample_rate=RATE, num_channels=1,
                                  user_id="presenter")
            )
            if i == len(lead) + len(speech) - 1:
                marks["speech_end"] = time.monotonic()
            await asyncio.sleep(FRAME_MS / 1000)
        await sink.wait_for(lambda: bool(sink.of(LLMFullResponseEndFrame)), 30)

    sink = await run_pipeline(processors, script, timeout=80)

    (t_text, transcript), *_ = sink.timed(TranscriptionFrame)
    words = transcript.text.lower()
    assert "agenda" in words and "today" in words, transcript.text
    assert transcript.user_id == "presenter"
    answer = chain.responder.answers[-1]
    assert answer.source == "Agenda"
    spoken = " ".join(f.text for f in sink.of(TTSTextFrame))
    assert spoken == answer.text and spoken.startswith("Today's agenda has five parts.")
    answer = answer.text
    audio = sink.timed(TTSAudioRawFrame)
    seconds = sum(len(f.audio) / (2 * f.sample_rate * f.num_channels) for _, f in audio)
    assert len(answer) / 25 < seconds < len(answer) / 8, (seconds, len(answer))
    # turn frames for barge-in: the speaker's onset interrupts the avatar
    assert sink.of(UserStartedSpeakingFrame) and sink.of(InterruptionFrame)

    stt_latency = t_text - marks["speech_end"]
    vad_stop = max(t for t, _ in sink.timed(VADUserStoppedSpeakingFrame) if t <= t_text)
    tts_latency = audio[0][0] - t_text
    print(
        f"\nround trip: end of speech → transcript {stt_latency * 1000:.0f} ms "
        f"(VAD stop → transcript {(t_text - vad_stop) * 1000:.0f} ms); "
        f"transcript → first TTS audio {tts_latency * 1000:.0f} ms; "
        f"answer {len(answer)} chars → {seconds:.1f} s of speech; heard {transcript.text!r}"
    )


async def test_known_answers_are_spoken_from_the_cache_with_the_same_audio(settings):
    """The TTS synthesizes the notes' answers ahead; an answer then costs no synthesis.

    Cache keys must be the sentences pipecat's TTS cuts the answer into: every one
    of them is a hit, and the audio is as long and loud as Piper makes it now."""
    from broadcaster.bot.responder import Responder

    responder = Responder.from_file(settings.faq_path)
    answers = responder.known_answers()
    assert len(answers) > 3 and responder.answerer.notes.fallback in answers
    assert "Yes, I can hear you clearly." in answers  # conversational replies too
    answer = responder.answer("will the slides be shared").text
    assert answer in answers

    async def speak(tts, prewarmed: bool):
        async def script(worker, sink):
            if prewarmed:
                await asyncio.wait_for(tts.prewarmed.wait(), 60)
            await worker.queue_frames([LLMFullResponseStartFrame(), LLMTextFrame(answer),
                                       LLMFullResponseEndFrame()])
            await sink.wait_for(lambda: bool(sink.of(TTSStoppedFrame)), 30)
            await asyncio.sleep(0.3)

        sink = await run_pipeline([tts], script, timeout=90)
        return b"".join(f.audio for f in sink.of(TTSAudioRawFrame))

    cached = make_tts(settings, answers)
    assert isinstance(cached, CachedPiperTTSService)
    heard = await speak(cached, prewarmed=True)
    sentences = await tts_sentences(answer)
    assert len(sentences) >= 2, sentences
    assert cached.cache.hits == len(sentences) and cached.cache.misses == 0
    assert len(cached.cache) >= len(answers)  # every answer has at least one sentence

    fresh = make_tts(settings)  # nothing ahead: synthesized now, then kept
    said = await speak(fresh, prewarmed=False)
    # Piper samples its noise afresh each time: same words, same length within ~10%
    assert 0.9 < len(heard) / len(said) < 1.1, (len(heard), len(said))
    assert rms(heard) > 0.5 * rms(said) > 0
    assert fresh.cache.misses == len(sentences) and len(fresh.cache) == len(sentences)


def rms(pcm: bytes) -> float:
    x = np.frombuffer(pcm, np.int16).astype(np.float64)
    return float(np.sqrt((x**2).mean()))


def test_the_phrase_cache_is_bounded_and_forgets_the_oldest():
    cache = PhraseCache(max_bytes=10)
    cache.put("one.", [b"1234"])
    cache.put("two.", [b"12", b"34"])
    assert cache.get(" one. ") == (b"1234",)  # whitespace-normalized; now the newest
    cache.put("three.", [b"123"])
    assert "two." not in cache and "one." in cache and cache.bytes == 7
    cache.put("huge.", [b"x" * 11])  # bigger than the bound: not kept, nothing dropped
    assert "huge." not in cache and len(cache) == 2


async def test_an_openai_compatible_llm_answers_instead_of_the_notes(settings):
    """``llm_base_url`` set: a question the notes cover goes to that endpoint with the best
    topics next to it, and its streamed reply is what the TTS speaks. The endpoint is
    tests/helpers/openai_stub.py, a mock of the wire protocol; tests/test_llm_local.py
    runs the same path against a real model."""
    reply = "The live demo starts at about twenty past four. Scaling out follows it."
    stub = OpenAIStub(reply)
    async with stub.serve() as url:
        s = settings.replace(llm_base_url=url, llm_api_key="local-key", llm_model="stub-model")
        chain = make_responder(s)
        processors = [*chain.processors, make_tts(s)]

        async def script(worker, sink):
            await worker.queue_frames([
                VADUserStartedSpeakingFrame(start_secs=s.vad_start_secs),
                TranscriptionFrame("When does the live demo start?", "sam", "2026-11-25T10:00"),
                VADUserStoppedSpeakingFrame(stop_secs=s.vad_stop_secs),
            ])
            await sink.wait_for(lambda: bool(sink.of(TTSStoppedFrame)), 30)
            await asyncio.sleep(0.3)

        sink = await run_pipeline(processors, script, timeout=60)

    (request,) = stub.requests
    assert request["model"] == "stub-model" and request["stream"] is True
    assert stub.keys == ["Bearer local-key"]
    system, user = request["messages"]
    assert system["role"] == "system" and "notes" in system["content"]
    assert user["role"] == "user" and "When does the live demo start?" in user["content"]
    assert "The live demo begins at about 4:20" in user["content"]  # grounded: best topic
    assert "Type your question in the questions box" not in user["content"]  # not all notes
    spoken = " ".join(f.text.strip() for f in sink.of(TTSTextFrame))
    assert words(spoken) == words(reply), spoken
    seconds = sum(len(f.audio) / (2 * f.sample_rate) for f in sink.of(TTSAudioRawFrame))
    assert len(reply) / 25 < seconds < len(reply) / 8, seconds
    assert chain.responder.answers[-1].source == "llm"


async def test_an_unreachable_llm_leaves_the_notes_to_answer(settings):
    """The LLM endpoint is down: the avatar still answers, from the notes."""
    from broadcaster.netutil import free_port

    s = settings.replace(llm_base_url=f"http://127.0.0.1:{free_port()}/v1")
    chain = make_responder(s, turns=False)

    async def script(worker, sink):
        await worker.queue_frame(TranscriptionFrame("will the slides be shared", "sam", "t"))
        await sink.wait_for(lambda: bool(sink.of(LLMFullResponseEndFrame)), 30)

    sink = await run_pipeline(chain.processors, script, timeout=60)
    (text,) = [f.text for f in sink.of(LLMTextFrame)]
    assert text.startswith("Yes. The slides go out")
