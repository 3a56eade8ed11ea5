"""The responder in the pipeline: answers from the host's notes, conversational turns."""

from __future__ import annotations

import asyncio
import re

import pytest
from pipecat.frames.frames import (
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.tests.utils import SleepFrame, run_test

from broadcaster.answers.notes import parse_notes, speakable
from broadcaster.answers.text import terms
from broadcaster.bot.responder import Responder, make_responder
from broadcaster.config import DATA_DIR, ConfigError, Settings
from broadcaster.frames import SpeakerChangedFrame

SAMPLE = DATA_DIR / "sample-agenda.md"


@pytest.fixture(scope="module")
def responder() -> Responder:
    return Responder.from_file(SAMPLE)


def said(text: str) -> TranscriptionFrame:
    return TranscriptionFrame(text, "alice", "2026-01-01T00:00:00Z", finalized=True)


def test_the_agenda_question_gets_the_agenda(responder):
    answer = responder.answer("What is on the agenda today?")
    assert answer.topic is not None and answer.source == "Agenda"
    assert answer.text.startswith("Today's agenda has five parts.")
    assert "#" not in answer.text and "*" not in answer.text


@pytest.mark.parametrize(
    ("question", "topic"),
    [
        ("what's the agenda", "Agenda"),
        ("will there be a recording", "Will the recording be available afterwards?"),
        ("how can I ask a question", "How do I ask a question?"),
        ("who are the speakers", "Speakers"),
        ("what time does it end", "Schedule and timing"),
        ("are you a real person", "Is the avatar a real person?"),
        ("will you share the slides", "Will the slides be shared?"),
        ("my microphone doesn't work", "Why can't I turn on my microphone?"),
    ],
)
def test_questions_find_their_topic(responder, question, topic):
    answer = responder.answer(question)
    assert answer.source == topic, answer


@pytest.mark.parametrize(
    "question", ["what is the capital of France", "tell me a joke", "what's the weather like"]
)
def test_unrelated_questions_get_the_fallback(responder, question):
    answer = responder.answer(question)
    assert answer.source == "fallback" and answer.topic is None
    assert answer.text == responder.answerer.notes.fallback
    assert "isn't covered in today's notes" in answer.text  # the file's own Fallback section


def test_answers_are_deterministic():
    a, b = Responder.from_file(SAMPLE), Responder.from_file(SAMPLE)
    for q in ("What is on the agenda today?", "recording?", "nonsense words here", ""):
        assert a.answer(q) == b.answer(q) == a.answer(q)


def test_parsing_markdown_and_defaults():
    notes = parse_notes(
        "# Title\n<!-- hidden note -->\n## Plan\n- **Intro** at 10\n- [Demo](http://x) at 11\n"
        "## Empty\n### Q?\nA *real* answer.\n"
    )
    assert [(t.title, t.answer) for t in notes.topics] == [
        ("Plan", "Intro at 10. Demo at 11."),
        ("Q?", "A real answer."),
    ]
    assert notes.fallback.startswith("That's a good question")  # no Fallback section: default
    assert speakable("1. one\n2) two!\n> quoted") == "one. two! quoted"
    assert terms("Recordings were recorded") == terms("recording record")


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="nope.md"):
        Responder.from_file(tmp_path / "nope.md")


async def test_a_transcript_becomes_llm_shaped_frames(responder):
    down, _ = await run_test(
        Responder(responder.answerer),
        frames_to_send=[said("What is on the agenda today?")],
        expected_down_frames=[
            TranscriptionFrame,  # passed on, for captions / transcripts downstream
            LLMFullResponseStartFrame,
            LLMTextFrame,
            LLMFullResponseEndFrame,
        ],
    )
    assert down[2].text.startswith("Today's agenda has five parts.")


async def test_noise_is_not_answered(responder):
    down, _ = await run_test(
        Responder(responder.answerer),
        frames_to_send=[said("you"), said("Thanks for watching!"), said("  ")],
        expected_down_frames=[TranscriptionFrame] * 3,
    )


async def test_a_question_split_by_a_pause_gets_one_answer(responder):
    r = Responder(responder.answerer, hold_secs=0.3)
    down, _ = await run_test(
        r,
        frames_to_send=[
            VADUserStoppedSpeakingFrame(),
            VADUserStartedSpeakingFrame(),  # speaking again before the first transcript
            SleepFrame(0.05),
            said("will the slides"),
            SleepFrame(0.05),
            VADUserStoppedSpeakingFrame(),
            SleepFrame(0.05),
            said("be shared afterwards"),
            SleepFrame(0.1),
        ],
    )
    texts = [f.text for f in down if isinstance(f, LLMTextFrame)]
    assert len(texts) == 1 and texts[0].startswith("Yes. The slides go out")


async def test_a_held_transcript_is_answered_after_the_hold(responder):
    r = Responder(responder.answerer, hold_secs=0.2)
    down, _ = await run_test(
        r,
        frames_to_send=[
            VADUserStartedSpeakingFrame(),
            SleepFrame(0.05),
            said("will the slides be shared"),
            SleepFrame(0.05),
            VADUserStoppedSpeakingFrame(),  # no second transcript comes
            SleepFrame(0.5),
        ],
    )
    assert len([f for f in down if isinstance(f, LLMTextFrame)]) == 1


async def test_a_speaker_change_drops_unanswered_words(responder):
    r = Responder(responder.answerer, hold_secs=0.2)
    down, _ = await run_test(
        r,
        frames_to_send=[
            VADUserStartedSpeakingFrame(),
            SleepFrame(0.05),
            said("will the slides be shared"),
            SleepFrame(0.05),
            SpeakerChangedFrame(speaker="bob", previous="alice"),
            VADUserStoppedSpeakingFrame(),
            SleepFrame(0.4),
        ],
    )
    assert not [f for f in down if isinstance(f, LLMTextFrame)]


def test_make_responder_default_and_llm(tmp_path):
    from pipecat.turns.user_turn_processor import UserTurnProcessor

    settings = Settings.load(env={}, generate_secrets=False)
    chain = make_responder(settings)
    assert isinstance(chain.processors[0], UserTurnProcessor)
    assert chain.processors[-1] is chain.responder and chain.after_output == []
    assert chain.responder.llm is None
    bare = make_responder(settings, turns=False)
    assert bare.processors == [bare.responder]

    llm_settings = settings.replace(llm_base_url="http://127.0.0.1:9/v1", llm_model="local")
    chain = make_responder(llm_settings)
    assert chain.responder.llm is not None and chain.responder.llm.model == "local"
    assert chain.responder.llm.base_url == "http://127.0.0.1:9/v1"


async def test_responses_are_quick(responder):
    loop = asyncio.get_running_loop()
    start = loop.time()
    for _ in range(200):
        responder.answer("What is on the agenda today?")
    assert (loop.time() - start) / 200 < 0.005


async def test_conversational_turns_get_short_replies_not_the_fallback(responder):
    down, _ = await run_test(
        Responder(responder.answerer),
        frames_to_send=[said("Hello, can you hear me?"), said("Thanks, that was helpful"),
                        said("hi, quick question: will the slides be shared?")],
    )
    texts = [f.text for f in down if isinstance(f, LLMTextFrame)]
    assert texts[0] == "Yes, I can hear you clearly."
    assert texts[1] == "You're welcome!"
    assert texts[2].startswith("Yes. The slides go out")
    assert not any("isn't covered" in t for t in texts)


async def test_go_on_resumes_an_interrupted_answer(responder):
    from pipecat.frames.frames import BotStartedSpeakingFrame

    r = Responder(responder.answerer, hold_secs=0.05)
    down, _ = await run_test(
        r,
        frames_to_send=[
            said("What is on the agenda today?"),
            BotStartedSpeakingFrame(),
            SleepFrame(2.6),  # ~36 characters: the first sentence said, the second cut
            VADUserStartedSpeakingFrame(),
            said("hold on"),
            VADUserStoppedSpeakingFrame(),
            SleepFrame(0.2),
            said("okay go on"),
            SleepFrame(0.2),
        ],
    )
    texts = [f.text for f in down if isinstance(f, LLMTextFrame)]
    assert texts[1] == "Sure, take your time."
    assert texts[2].startswith("Right, as I was saying. First, a welcome"), texts[2]
    assert "Today's agenda has five parts" not in texts[2]


async def test_replies_are_counted_by_where_they_came_from(responder):
    """A host watching /metrics sees how often the notes fell short (the fallback)."""
    from broadcaster.metrics import BotMetrics, render

    r = Responder(responder.answerer)
    metrics = BotMetrics("count-room")
    metrics.watch_responder(r)
    await run_test(r, frames_to_send=[
        said("Hello, can you hear me?"), said("will the slides be shared?"),
        said("who won the football last night?"), said("is this being recorded?")])
    text = render(metrics.registry)[0].decode()

    def count(source: str) -> float:
        series = f'broadcaster_bot_replies_total{{room="count-room",source="{source}"}}'
        m = re.search("^" + re.escape(series) + r" (\S+)$", text, re.M)
        assert m, f"no {source} series in\n{text}"
        return float(m.group(1))

    assert [count(s) for s in ("notes", "fallback", "conversation", "llm")] == [2, 1, 1, 0]
