"""Unit tests of the avatar service's parts that need no network: speech buffer,
mouth envelope, runtime state machine, frame clock, request validation."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from broadcaster.avatar.runtime import AvatarRuntime
from broadcaster.avatar.schema import InvalidRequest, parse_token_request, video_size
from broadcaster.avatar.speech import (
    BLOCK_SAMPLES,
    BufferFull,
    MouthTrack,
    SpeechBuffer,
    block_level,
)
from broadcaster.avatar.ticker import SteadyTicker


def _tone(seconds: float, rate: int = 24_000, amp: float = 8000.0) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * 300 * t) * amp).astype("<i2").tobytes()


def _drain(buf: SpeechBuffer, seconds: float) -> tuple[np.ndarray, list, list]:
    out, started, finished = [], [], []
    block = np.zeros(BLOCK_SAMPLES, np.int16)
    for _ in range(int(seconds * 100)):
        played = buf.read(block)
        out.append(block.copy())
        started += played.started
        finished += played.finished
    return np.concatenate(out), started, finished


# -------------------------------------------------------------------------- speech
def test_speech_is_resampled_to_48k_with_its_energy_and_events() -> None:
    buf = SpeechBuffer()
    pcm = _tone(1.0)
    for i in range(0, len(pcm), 9600):  # 0.2 s chunks, like the wire
        buf.push(pcm[i : i + 9600], "7")
    assert buf.end("7") is True
    assert buf.queued_seconds == pytest.approx(1.0, abs=0.01)
    out, started, finished = _drain(buf, 1.2)
    assert started == ["7"] and finished == ["7"]
    assert buf.total_out_samples == pytest.approx(48_000, abs=100)
    sent = np.frombuffer(pcm, "<i2").astype(float)
    ratio = (out.astype(float) ** 2).sum() / 48_000 / ((sent**2).sum() / 24_000)
    assert ratio == pytest.approx(1.0, abs=0.02)
    assert not buf.active


def test_speech_rejects_odd_audio_and_overflow_and_flushes() -> None:
    buf = SpeechBuffer(max_seconds=2.0)
    with pytest.raises(ValueError):
        buf.push(b"\x00\x01\x02", "1")
    buf.push(_tone(0.9), "1")
    with pytest.raises(BufferFull):
        buf.push(_tone(1.5), "1")
    assert buf.queued_seconds < 1.0
    _drain(buf, 0.1)
    assert buf.flush() == ["1"]
    assert buf.queued_seconds == 0 and not buf.active
    out, started, finished = _drain(buf, 0.1)
    assert not out.any() and not started and not finished
    assert buf.end("never-spoken") is False


def test_mouth_envelope_follows_the_block_heard_at_each_instant() -> None:
    loud = np.full(BLOCK_SAMPLES, 12000, np.int16)
    quiet = np.zeros(BLOCK_SAMPLES, np.int16)
    assert block_level(loud) > 0.9 and block_level(quiet) == 0.0
    track = MouthTrack()
    track.add(10.00, block_level(loud))
    for i in range(1, 10):
        track.add(10.00 + i * 0.01, block_level(quiet))
    assert track.at(9.99) == 0.0  # before any audio
    assert track.at(10.005) > 0.9
    assert 0 < track.at(10.015) < track.at(10.005)  # closing, not snapping shut
    assert track.at(10.06) == 0.0  # shut within 50 ms of silence
    track.add(10.10, 1.0)
    track.add(10.11, 1.0)
    track.close(10.095)  # interrupt: blocks queued after now are never heard
    assert track.at(10.105) == 0.0


# ------------------------------------------------------------------------- runtime
def test_runtime_states_and_events() -> None:
    events: list[dict] = []
    flushed: list[bool] = []
    rt = AvatarRuntime(events.append)
    rt.on_flush = lambda: flushed.append(True)
    block = np.zeros(BLOCK_SAMPLES, np.int16)

    rt.start_listening()
    rt.speak(_tone(0.3), "1")
    rt.speak_end("1")
    for i in range(40):
        rt.read_audio(block, 100.0 + i * 0.01)
    rt.stop_listening()
    kinds = [(e["type"], e.get("new_state") or e.get("event_id")) for e in events]
    assert kinds == [
        ("agent.state_updated", "listening"),
        ("agent.state_updated", "speaking"),
        ("agent.speak_started", "1"),
        ("agent.speak_ended", "1"),
        ("agent.state_updated", "listening"),
        ("agent.state_updated", "idle"),
    ]
    assert rt.visual(100.1)[0] > 0.3 and rt.visual(100.39)[0] == 0.0

    events.clear()
    rt.speak(_tone(2.0), "2")
    for i in range(10):
        rt.read_audio(block, 200.0 + i * 0.01)
    rt.interrupt()
    assert flushed == [True]
    assert events[-2] == {"type": "agent.speak_ended", "event_id": "2", "task": {"id": "2"},
                          "interrupted": True}
    assert events[-1]["new_state"] == "idle"
    assert rt.visual(time.monotonic() + 0.001) == (0.0, "idle")


# -------------------------------------------------------------------------- ticker
async def test_ticker_keeps_time_and_skips_after_a_stall() -> None:
    """Deadlines are t0 + k * period exactly (no drift); a stall skips ticks (no burst).

    Only lower bounds on lateness are asserted: the machine may be loaded.
    """
    period = 0.01
    ticker = SteadyTicker(period)
    for _ in range(20):
        k, deadline = await ticker.tick()
        assert deadline == pytest.approx(ticker.t0 + k * period, abs=1e-9)
        assert time.monotonic() >= deadline - 0.002  # never early
    skipped_before = ticker.skipped
    time.sleep(0.1)  # stall the loop for ten periods
    k2, _ = await ticker.tick()
    k3, deadline3 = await ticker.tick()
    assert k2 >= k + 9 and ticker.skipped - skipped_before >= 8  # missed ticks dropped...
    assert k3 == k2 + 1 and time.monotonic() >= deadline3 - 0.002  # ...not replayed at once


# -------------------------------------------------------------------------- schema
def test_schema_accepts_pipecat_defaults_and_refuses_junk() -> None:
    req = parse_token_request({"mode": "LITE", "avatar_id": "local-presenter",
                               "is_sandbox": False,
                               "video_settings": {"encoding": "H264"}, "extra": 1})
    assert req.codec == "H264" and req.quality == "high" and req.livekit is None
    req = parse_token_request({"avatar_id": "a", "livekit_config": {
        "livekit_url": "wss://lk.example", "livekit_room": "r", "livekit_client_token": "t"}})
    assert req.livekit is not None and req.livekit.room == "r"
    for bad in (None, "x", {"avatar_id": ""}, {"avatar_id": "a", "max_session_duration": True},
                {"avatar_id": "a", "livekit_config": {"livekit_url": "ftp://x",
                                                      "livekit_room": "r",
                                                      "livekit_client_token": "t"}}):
        with pytest.raises(InvalidRequest):
            parse_token_request(bad)
    assert video_size(1280, 720, "portrait") == (720, 1280)
    assert video_size(720, 1280, "landscape") == (1280, 720)
    assert video_size(1280, 720, None) == (1280, 720)


# ----------------------------------------------------------------------- publisher
async def test_publisher_hands_the_renderer_buffer_to_livekit_without_copying() -> None:
    from broadcaster.avatar.publisher import AvatarPublisher, MediaConfig
    from broadcaster.avatar.renderer import FaceRenderer

    config = MediaConfig(width=320, height=180, fps=50)
    renderer = FaceRenderer(config.width, config.height)
    publisher = AvatarPublisher(config, AvatarRuntime(), renderer)
    captured: list[int] = []
    publisher._video.capture_frame = lambda frame, **_: captured.append(  # type: ignore[method-assign]
        np.frombuffer(frame.data, np.uint8).ctypes.data
    )
    loop = asyncio.create_task(publisher._video_loop())
    await asyncio.sleep(0.2)
    loop.cancel()
    await publisher.stop()
    buffer = renderer.render(0.0, 0.0)
    assert len(captured) >= 5
    assert set(captured) == {buffer.ctypes.data}  # the renderer's own memory, every frame
