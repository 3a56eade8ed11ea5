"""The account of what an avatar session was sent and has said (the rollover's handover).

Pure: no service. The handover cuts the rest of an utterance where this account says
the current session is; if it ran ahead the next session would skip words, if it lagged
it would say some twice.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from broadcaster.bot.sent_speech import BYTES_PER_S, SentSpeech, voiced_blocks
from probes.tone_words import GAP_S, PAUSE_S, WORD_S, tone_answer

RATE = 24_000


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 24_000), st.floats(0.0, 2.0)), min_size=1,
                max_size=12))
def test_the_session_plays_pieces_in_order_in_real_time_waiting_when_short(
        pieces: list[tuple[int, float]]) -> None:
    said = SentSpeech()
    now, total, play_end = 100.0, 0, 100.0
    for size, wait in pieces:
        now += wait
        size *= 2  # bytes of whole samples
        said.sent(b"\0\1" * (size // 2), "e", now)
        start = max(now, play_end)  # a session short of audio waits for the next piece
        play_end = start + size / BYTES_PER_S
        total += size
        # by the moment the piece starts, everything before it was said
        assert abs(said.played(start) - (total - size)) <= 2
    assert said.played(play_end + 1) == total
    assert said.played(99.0) == 0
    assert said.in_flight(play_end - 0.01) and said.in_flight(play_end + 5)  # no end yet
    said.end("e")
    assert not said.in_flight(play_end + 0.01)
    positions = [said.played(100.0 + i * 0.05) for i in range(400)]
    assert positions == sorted(positions), "what was said only grows"


def test_the_next_pause_is_between_sentences_not_between_words() -> None:
    audio = tone_answer(8, 4, RATE)  # a pause after the 4th word
    said = SentSpeech()
    said.sent(audio, "e", 10.0)
    first = 4 * WORD_S + 3 * GAP_S  # the sentence's end
    at = said.pause_ahead(10.0)
    assert at is not None and abs(at - (10.0 + first + 0.05)) < 0.02
    # inside the pause, with enough of it left: now; past it: none (one sentence pause)
    assert said.pause_ahead(10.0 + first + 0.1) == 10.0 + first + 0.1
    assert said.pause_ahead(10.0 + first + PAUSE_S) is None
    # what is left to say from there is the second sentence, whole
    rest = audio[said.played(at):]
    assert voiced_blocks(rest) >= 4 * WORD_S * 100 - 4
    assert not np.frombuffer(rest[:2000], "<i2").any(), "the rest starts in the pause"


def test_a_new_utterance_or_an_interrupt_starts_the_account_over() -> None:
    said = SentSpeech()
    said.sent(b"\1\0" * 24_000, "a", 1.0)
    said.sent(b"\1\0" * 24_000, "b", 1.2)
    assert said.event_id == "b" and len(said.audio) == 48_000
    assert said.played(1.7) == 24_000  # b started when it was sent, not after a
    said.reset()
    assert not said.in_flight(1.3) and said.played(5.0) == 0
