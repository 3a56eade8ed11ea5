"""The LLM path against a real model: llama.cpp's OpenAI-compatible server with
SmolLM2-135M-Instruct (deploy/llm.sh installs both; built once, cached).

Through the bot's own construction path (make_responder on Settings with
``llm_base_url``): the answer streams from the model into Piper sentence by
sentence, and the speaker talking over it cancels the generation, so the next
question is answered without waiting for the abandoned one.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from pipecat.frames.frames import (
    LLMFullResponseEndFrame,
    LLMTextFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)

from broadcaster.answers import local_llm
from broadcaster.bot.responder import make_responder
from broadcaster.netutil import free_port
from broadcaster.speech import make_tts
from tests.helpers.people import words
from tests.helpers.speech import Collector, run_pipeline

pytestmark = pytest.mark.skipif(not local_llm.available(),
                                reason="no local LLM: run bash deploy/llm.sh")

LONG = "Could you walk us through what we are covering today?"


@pytest.fixture(scope="module")
async def llm_url(tmp_path_factory):
    log = tmp_path_factory.mktemp("llm") / "llama-server.log"
    async with local_llm.running(free_port(), log) as url:
        yield url


def said(text: str) -> TranscriptionFrame:
    return TranscriptionFrame(text, "sam", "2026-11-25T10:00:00Z", finalized=True)


async def test_the_model_answers_and_the_tts_speaks_each_sentence_as_it_completes(
        settings, llm_url):
    s = settings.replace(llm_base_url=llm_url, llm_model="smollm2-135m", llm_max_tokens=300)
    chain = make_responder(s, turns=False)
    tap = Collector()  # what the responder hands the TTS (the TTS consumes LLMTextFrames)
    processors = [*chain.processors, tap, make_tts(s)]

    async def script(worker, sink):
        await worker.queue_frame(said(LONG))
        await sink.wait_for(lambda: bool(sink.of(LLMFullResponseEndFrame)), 90)
        await sink.wait_for(lambda: bool(sink.of(TTSStoppedFrame)), 60)
        await asyncio.sleep(0.3)

    sink = await run_pipeline(processors, script, timeout=180)
    deltas = tap.timed(LLMTextFrame)
    text = "".join(f.text for _, f in deltas)
    assert len(deltas) > 5 and len(words(text)) > 8, text  # streamed, token by token
    reply = chain.responder.answers[-1]
    assert reply.source == "llm" and reply.topic is not None and reply.topic.title == "Agenda"
    audio = sink.timed(TTSAudioRawFrame)
    spoken = " ".join(f.text for f in sink.of(TTSTextFrame))
    assert audio and words(spoken) == words(text), (spoken, text)
    # the first sentence was being spoken while the model was still writing the rest
    assert audio[0][0] < deltas[-1][0], "TTS waited for the whole answer"
    start = tap.timed(TranscriptionFrame)[0][0]
    print(f"\nreal LLM: first text {deltas[0][0] - start:.2f} s, first audio "
          f"{audio[0][0] - start:.2f} s after the transcript; said {text!r}")


async def test_barge_in_cancels_the_generation(settings, llm_url):
    s = settings.replace(llm_base_url=llm_url, llm_model="smollm2-135m", llm_max_tokens=400)
    chain = make_responder(s, turns=False)
    marks: dict[str, float] = {}

    async def script(worker, sink):
        await worker.queue_frame(said(LONG))
        await sink.wait_for(lambda: len(sink.of(LLMTextFrame)) >= 3, 90)
        marks["barge_in"] = time.monotonic()
        await worker.queue_frame(VADUserStartedSpeakingFrame())
        await asyncio.sleep(1.0)
        await worker.queue_frame(VADUserStoppedSpeakingFrame())
        await asyncio.sleep(0.5)
        marks["second"] = time.monotonic()
        await worker.queue_frame(said("Is this being recorded?"))
        await sink.wait_for(lambda: bool(sink.of(LLMFullResponseEndFrame)), 60)

    sink = await run_pipeline(chain.processors, script, timeout=180)
    first = [t for t, _ in sink.timed(LLMTextFrame) if marks["barge_in"] < t < marks["second"]]
    assert len(first) <= 1, f"{len(first)} tokens of the cancelled answer after the barge-in"
    # the server stopped generating: the next answer's first token does not wait for the
    # ~400 tokens of the abandoned one (about 10 s on 2 cores)
    second = [t for t, _ in sink.timed(LLMTextFrame) if t > marks["second"]]
    assert second and second[0] - marks["second"] < 4.0, second[:1]
    assert len(sink.of(LLMFullResponseEndFrame)) == 1  # only the second answer ended
