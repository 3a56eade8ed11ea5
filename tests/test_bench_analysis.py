"""The benchmarks' reading of what viewers saw, on made-up records: the barge-in bench's
10 ms audio blocks, the republish latency bench's frame stamps."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from bench import e2e
from bench.barge_in import silenced_at, voiced_share
from bench.receiver import AudioRecord, Receiver, VideoRecord
from bench.relay import RelayRun
from bench.republish_latency import analyse

MS = 1000  # µs


@pytest.fixture(autouse=True)
def event_loop_for_sdk_objects() -> Iterator[None]:
    """A Receiver holds an rtc.Room, whose constructor asks for the current event loop;
    async tests run earlier in the session may have left the thread with none."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield
    asyncio.set_event_loop(None)
    loop.close()


def viewer(*spans: tuple[int, int, float]) -> Receiver:
    """A receiver whose audio is 10 ms blocks of the given (start ms, end ms, rms)."""
    rx = Receiver("viewer")
    rx.audio = [AudioRecord(t * MS, rms) for start, end, rms in spans
                for t in range(start, end, 10)]
    return rx


def test_a_phrase_start_is_seen_only_just_after_a_pause() -> None:
    rx = viewer((0, 1000, 900.0), (1000, 1200, 5.0), (1200, 3000, 900.0))
    assert e2e._phrase_started(rx, 1260 * MS)  # voiced again for 60 ms after 200 ms quiet
    assert not e2e._phrase_started(rx, 1220 * MS)  # too soon: 20 ms is no phrase yet
    assert not e2e._phrase_started(rx, 1600 * MS)  # long into the phrase
    assert not e2e._phrase_started(viewer((0, 3000, 900.0)), 1260 * MS)  # no pause at all
    short = viewer((0, 1000, 900.0), (1000, 1100, 5.0), (1100, 3000, 900.0))
    assert not e2e._phrase_started(short, 1160 * MS)  # a 100 ms gap is within a phrase


def test_silence_counts_only_when_it_lasts() -> None:
    rx = viewer((0, 2000, 900.0), (2000, 2100, 5.0), (2100, 2300, 900.0), (2300, 4000, 5.0))
    assert silenced_at(rx, 1800 * MS) == 2300 * MS  # the 100 ms gap is no stop
    assert silenced_at(viewer((0, 2000, 900.0), (2000, 2400, 5.0)), 0) is None  # too short
    assert voiced_share(rx, 1900 * MS, 2000 * MS) == 1.0
    assert voiced_share(rx, 1950 * MS, 2050 * MS) == 0.5


def relay_run(entries: dict[int, tuple[int, int]]) -> RelayRun:
    """Ten source frames 40 ms apart; the direct viewer gets each 25 ms after capture,
    the republished one 55 ms after (stamped with the relay's entry time, capture + 5 ms)."""
    direct, rep = Receiver("direct"), Receiver("republished")
    t0 = 1_000_000_000
    for i in range(10):
        ts = t0 + i * 40 * MS
        direct.video.append(VideoRecord(ts + 25 * MS, i + 1, ts, 1280, 720))
        rep.video.append(VideoRecord(ts + 55 * MS, i + 1, ts + 5 * MS, 1280, 720))
    return RelayRun(direct, rep, entries, {}, {}, 1.0, t0, t0 + 400 * MS)


def test_republish_latency_is_read_through_the_relays_entries() -> None:
    t0 = 1_000_000_000
    entries = {t0 + i * 40 * MS + 5 * MS: (t0 + i * 40 * MS, i + 1) for i in range(10)}
    res = analyse(relay_run(entries))
    assert res["frames_compared"] == 10
    assert res["p50_ms"] == pytest.approx(30.0) and res["pass"]


def test_republish_latency_fails_loudly_when_no_frame_can_be_compared() -> None:
    """No entries (the relay's hook never ran): an error, never a result with n=0."""
    with pytest.raises(RuntimeError, match="relay entries 0"):
        analyse(relay_run({}))


def test_caption_sync_takes_a_sentence_start_from_the_sound_where_whisper_misplaces_it(
) -> None:
    # the viewer's audio: a sentence's voice 0-1 s, the pause between sentences (150 ms),
    # the next sentence from 1150 ms with a comma's pause (60 ms) inside, then a barge-in's
    # digital silence from 2 s
    from bench.caption_sync import Shown, by_sound, pause_onsets

    rx = viewer((0, 1000, 900.0), (1000, 1150, 3.0), (1150, 1500, 900.0),
                (1500, 1560, 20.0), (1560, 2000, 900.0), (2000, 4000, 0.0))
    assert list(pause_onsets(rx)) == [1150 * MS]  # the comma's pause is too short
    start = Shown("s", 5, "Second,", 1140 * MS, 1140 * MS, starts_sentence=True)
    inside = Shown("s", 6, "how", 1300 * MS, 1140 * MS)
    cut = Shown("s", 9, "First,", 1900 * MS, 1900 * MS, starts_sentence=True)
    lost = Shown("s", 10, "a", 1950 * MS, 1900 * MS)
    pairs, info = by_sound(rx, [(start, 1600 * MS), (inside, 1350 * MS),
                                (cut, 3000 * MS), (lost, 3100 * MS)])
    heard = {s.word: at // MS for s, at in pairs}
    # Whisper put "Second," 450 ms late: the onset after the pause wins; a word inside a
    # sentence keeps Whisper's time; a sentence start Whisper put in the silence after a
    # barge-in is heard at the last onset before it; a mid-sentence word there is left out
    assert heard == {"Second,": 1150, "how": 1350, "First,": 1150}
    assert info["heard_in_silence"] == ["a"]
