"""'Ask the avatar' in the bot (issue 13 item 6), without a room: only a server-sent
packet on the ask topic becomes a question; the responder says who asked, the question,
then the notes' answer."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st
from pipecat.frames.frames import LLMFullResponseStartFrame, LLMTextFrame
from pipecat.tests.utils import run_test

from broadcaster.bot.asked import AskedQuestions, parse_ask
from broadcaster.bot.responder import Responder
from broadcaster.config import DATA_DIR
from broadcaster.frames import AudienceQuestionFrame
from broadcaster.protocol import ASK_TOPIC


def packet(body: object, *, sender: str | None = None, topic: str = ASK_TOPIC):
    who = None if sender is None else SimpleNamespace(identity=sender)
    return SimpleNamespace(data=json.dumps(body).encode(), participant=who, topic=topic)


async def test_only_the_servers_packets_on_the_topic_become_questions() -> None:
    asked = AskedQuestions()
    queued: list[AudienceQuestionFrame] = []

    async def queue_frame(frame: AudienceQuestionFrame) -> None:
        queued.append(frame)

    asked.queue_frame = queue_frame  # type: ignore[method-assign]
    good = {"id": 7, "name": "Priya", "text": "Will the slides be shared?"}
    asked.on_data(packet(good, sender="rogue"))          # a participant: dropped
    asked.on_data(packet(good, topic="lk.chat"))         # another topic: ignored
    asked.on_data(packet({"id": "7", "name": "P", "text": "x"}))  # malformed
    asked.on_data(packet(good))                          # the web app
    asked.on_data(packet(good))                          # a retried send: once
    await asyncio.sleep(0)
    assert [(f.question_id, f.asker, f.text) for f in queued] == [
        (7, "Priya", "Will the slides be shared?")]


@settings(max_examples=200, deadline=None)
@given(raw=st.one_of(st.binary(max_size=80), st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(["id", "name", "text", "x"]),
                                            inner, max_size=4)),
    max_leaves=8).map(lambda v: json.dumps(v).encode())))
def test_any_packet_is_a_question_or_nothing(raw: bytes) -> None:
    frame = parse_ask(raw)
    if frame is not None:
        assert frame.asker and frame.text and isinstance(frame.question_id, int)


async def test_the_responder_says_who_asked_then_answers() -> None:
    responder = Responder.from_file(DATA_DIR / "sample-agenda.md")
    down, _ = await run_test(
        responder,
        frames_to_send=[AudienceQuestionFrame(question_id=1, asker="Priya",
                                              text="what is on the agenda today")],
        expected_down_frames=None,
    )
    texts = [f.text for f in down if isinstance(f, LLMTextFrame)]
    assert any(isinstance(f, LLMFullResponseStartFrame) for f in down)
    assert texts == [f"Priya asks: what is on the agenda today? "
                     f"{responder.answer('what is on the agenda today').text}"]
