"""The MP4 recorder, driven by synthetic frames in a minimal pipecat pipeline (no servers).

One scenario runs once (module fixture): 720p I420 avatar frames at 25 fps with a
moving bar and a little arrival jitter, the avatar's 48 kHz speech stream (10 ms
chunks, silence with beeps), and a speaker's 16 kHz microphone (20 ms chunks, other
beeps); at each avatar beep a flash frame is emitted at the same instant. The file is
then opened with PyAV and checked: playable, duration, size/fps, every frame in
order, audio energy where the beeps are and silence elsewhere, and A/V sync.
Smaller tests cover the timing logic, a slow encoder (drops, never stalls the
pipeline) and cancellation.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import numpy as np
import pytest
import pytest_asyncio
from loguru import logger
from pipecat.frames.frames import (
    EndFrame,
    OutputImageRawFrame,
    SpeechOutputAudioRawFrame,
    TTSAudioRawFrame,
    UserAudioRawFrame,
)

from broadcaster.bot.recorder import (
    AUDIO_RATE,
    AudioMixer,
    Recorder,
    RecordingOptions,
    VideoClock,
    recording_dir,
)
from broadcaster.bot.recorder.writer import Writer
from broadcaster.frames import I420
from tests.helpers.pipeline import Pacer, start_pipeline

pytestmark = pytest.mark.timeout(60)

W, H, FPS = 640, 360, 25  # 720p costs 4x the CPU; docs/recording.md has its numbers
SECONDS = 4.0
BAR = 32
BG, FG = 60, 235
FLASH = (slice(H - 120, H), slice(W - 120, W))
STAMP = 16  # frame index: 8 bits as 16x16 blocks in the top-left corner
AVATAR_BEEPS = (0.8, 1.96, 3.12)  # s after the first frame: beep + flash frames together
SPEAKER_BEEPS = (1.4, 2.6)
BEEP_MS = 120
AVATAR_CHUNK = AUDIO_RATE // 100  # 10 ms at 48 kHz
MIC_RATE = 16_000
MIC_CHUNK = MIC_RATE // 50  # 20 ms at 16 kHz
SYNC_TOLERANCE = 0.040


# ------------------------------------------------------------------------ synthetic media
def bar_x(i: int) -> int:
    return (i * 24) % (W - BAR)


class Frames:
    """I420 frames: grey, a white bar that moves 24 px per frame, the frame index stamped
    in the corner, an optional flash box."""

    def __init__(self, w: int = W, h: int = H) -> None:
        self.w, self.h = w, h
        self.chroma = np.full(2 * (w // 2) * (h // 2), 128, np.uint8)

    def make(self, i: int, *, flash: bool = False) -> OutputImageRawFrame:
        y = np.full((self.h, self.w), BG, np.uint8)
        x = bar_x(i) % max(1, self.w - BAR)
        y[2 * STAMP :, x : x + BAR] = FG
        for b in range(8):
            y[:STAMP, b * STAMP : (b + 1) * STAMP] = FG if (i >> b) & 1 else 16
        if flash:
            y[FLASH] = FG
        buf = np.concatenate([y.ravel(), self.chroma]).tobytes()
        return OutputImageRawFrame(image=buf, size=(self.w, self.h), format=I420)


def tone(n: int, rate: int, freq: float, offset: int = 0, amp: int = 12_000) -> bytes:
    t = (np.arange(n) + offset) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.int16).tobytes()


def avatar_chunk(j: int) -> SpeechOutputAudioRawFrame:
    """10 ms chunk j of the avatar's stream: 1 kHz beeps at AVATAR_BEEPS, else silence."""
    t = j / 100
    for b in AVATAR_BEEPS:
        k = round((t - b) * 100)
        if 0 <= k < BEEP_MS // 10:
            pcm = tone(AVATAR_CHUNK, AUDIO_RATE, 1000.0, k * AVATAR_CHUNK)
            break
    else:
        pcm = bytes(2 * AVATAR_CHUNK)
    return SpeechOutputAudioRawFrame(audio=pcm, sample_rate=AUDIO_RATE, num_channels=1)


def mic_chunk(j: int) -> UserAudioRawFrame:
    """20 ms chunk j of the speaker's microphone (16 kHz): 500 Hz beeps at SPEAKER_BEEPS."""
    t = j / 50
    for b in SPEAKER_BEEPS:
        k = round((t - b) * 50)
        if 0 <= k < BEEP_MS // 20:
            pcm = tone(MIC_CHUNK, MIC_RATE, 500.0, k * MIC_CHUNK)
            break
    else:
        pcm = bytes(2 * MIC_CHUNK)
    return UserAudioRawFrame(audio=pcm, sample_rate=MIC_RATE, num_channels=1,
                             user_id="presenter")


# ------------------------------------------------------------------------ reading the file
@dataclass
class Decoded:
    path: Path
    duration: float
    width: int
    height: int
    rate: float
    video_codec: str
    audio_codec: str
    audio_rate: int
    audio_channels: int
    times: np.ndarray  # video frame times (s)
    lumas: list[np.ndarray]  # Y planes
    audio: np.ndarray  # mono float, index = sample time at AUDIO_RATE


def read_stamp(y: np.ndarray) -> int:
    cores = y[4:12, : 8 * STAMP].reshape(8, 8, STAMP)[:, :, 4:12].mean(axis=(0, 2))
    return int(sum(1 << b for b in range(8) if cores[b] > 128))


def decode(path: Path) -> Decoded:
    with av.open(str(path)) as c:
        duration = float(c.duration or 0) / av.time_base
        vs, aus = c.streams.video[0], c.streams.audio[0]
        info = dict(width=vs.codec_context.width, height=vs.codec_context.height,
                    rate=float(vs.average_rate or 0), video_codec=vs.codec_context.name,
                    audio_codec=aus.codec_context.name, audio_rate=aus.codec_context.sample_rate,
                    audio_channels=aus.codec_context.channels)
        times, lumas = [], []
        for f in c.decode(vs):
            times.append(float(f.pts * f.time_base))
            lumas.append(f.to_ndarray()[: f.height])
    audio = np.zeros(round((duration + 1) * AUDIO_RATE), np.float32)
    with av.open(str(path)) as c:
        for f in c.decode(c.streams.audio[0]):
            start = round(float(f.pts * f.time_base) * AUDIO_RATE)
            data = f.to_ndarray().reshape(-1)
            if start < 0:
                data, start = data[-start:], 0
            audio[start : start + len(data)] = data[: len(audio) - start]
    return Decoded(path, duration, times=np.array(times), lumas=lumas, audio=audio, **info)


def envelope(audio: np.ndarray, win: int = AUDIO_RATE // 1000) -> np.ndarray:
    """RMS per 1 ms."""
    n = len(audio) // win
    return np.sqrt((audio[: n * win].reshape(n, win) ** 2).mean(axis=1))


def onset(env: np.ndarray, near: float, threshold: float = 0.05) -> float:
    """First time (s) the 1 ms envelope crosses ``threshold`` within 0.25 s of ``near``."""
    lo = max(0, round((near - 0.25) * 1000))
    hi = round((near + 0.25) * 1000)
    above = np.nonzero(env[lo:hi] > threshold)[0]
    assert len(above), f"no sound near {near:.2f}s"
    return (lo + above[0]) / 1000


# ------------------------------------------------------------------------ the scenario
@dataclass
class Scenario:
    rec: Recorder
    file: Decoded
    sent: int
    span: float  # first frame -> EndFrame, s
    feeder_late: float  # worst lateness of the feeder itself (a busy machine), s
    finalize_s: float
    cpu_s: float


QUIET = 0.05  # the feeder was never later than this: timing assertions are meaningful


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    """The scenario, run again (at most twice) when a busy machine stalled the feeder."""
    base = tmp_path_factory.mktemp("recordings")
    for _ in range(3):
        sc = await record_scenario(base)
        if sc.feeder_late < QUIET:
            break
        logger.warning(f"the feeder itself stalled {sc.feeder_late * 1000:.0f} ms: again")
    return sc


def need_quiet(sc: Scenario) -> None:
    if sc.feeder_late >= QUIET:
        pytest.skip(f"machine too busy: the test's own feeder stalled "
                    f"{sc.feeder_late * 1000:.0f} ms in each of 3 runs")


async def record_scenario(base: Path) -> Scenario:
    captions = base / "captions.jsonl"
    rec = Recorder(directory=recording_dir(base, "stage/1"), captions_path=captions,
                   options=RecordingOptions(fps=FPS))
    frames = Frames()
    worker, run = await start_pipeline(rec, settle=0.2)
    rng = np.random.default_rng(7)
    flash = {round(b * FPS) + k for b in AVATAR_BEEPS for k in range(2)}
    n_video = int(SECONDS * FPS)
    events = sorted(
        [(i / FPS + (rng.uniform(-0.008, 0.008) if i % FPS else 0.0), 0, i)
         for i in range(n_video)]
        + [(j / 100, 1, j) for j in range(int(SECONDS * 100))]
        + [(j / 50, 2, j) for j in range(int(SECONDS * 50))]
    )
    # Jitter off the flash frames: they and their beep leave at the same instant.
    events = [(round(i / FPS, 6) if kind == 0 and i in flash else t, kind, i)
              for t, kind, i in events]
    events.sort()
    cpu0 = time.process_time()
    pace = Pacer()
    first = None
    late = 0.0
    for t, kind, i in events:
        await pace.until(t)
        late = max(late, time.monotonic() - pace.t0 - t)
        if kind == 0:
            await worker.queue_frame(frames.make(i, flash=i in flash))
            if first is None:
                first = time.monotonic()
                line = {"time": (datetime.now(UTC) + timedelta(seconds=1)).isoformat(),
                        "speaker": "presenter", "source": "stt", "text": "hello there"}
                captions.write_text(json.dumps(line) + "\n")
        elif kind == 1:
            await worker.queue_frame(avatar_chunk(i))
        else:
            await worker.queue_frame(mic_chunk(i))
    await pace.until(SECONDS)
    assert first is not None
    ended = time.monotonic()
    await worker.queue_frame(EndFrame())
    await asyncio.wait_for(run, 20)
    done = time.monotonic()
    cpu = time.process_time() - cpu0
    logger.info(f"recorder stats: {rec.stats}; finalize {done - ended:.2f}s")
    assert rec.path is not None
    return Scenario(rec, decode(rec.path), n_video, ended - first, late, done - ended, cpu)


# ------------------------------------------------------------------------ tests
async def test_file_is_complete_and_playable(scenario: Scenario) -> None:
    path = scenario.file.path
    assert path.suffix == ".mp4" and path.parent.name == "stage_1"
    assert path.exists() and not path.with_name(path.name + ".part").exists()
    assert path.read_bytes().find(b"moov") > 0, "no moov atom: the file was not finalized"
    assert scenario.rec.stats.error is None
    assert scenario.finalize_s < 5.0, f"closing took {scenario.finalize_s:.1f}s"
    f = scenario.file
    assert (f.video_codec, f.audio_codec) == ("h264", "aac")
    assert (f.audio_rate, f.audio_channels) == (AUDIO_RATE, 1)


async def test_duration_size_and_frame_rate(scenario: Scenario) -> None:
    f = scenario.file
    assert abs(f.duration - scenario.span) <= 0.05 * scenario.span, (f.duration, scenario.span)
    assert (f.width, f.height) == (W, H)
    need_quiet(scenario)
    assert abs(f.rate - FPS) <= 0.05 * FPS, f.rate
    on_grid = np.isclose(np.diff(f.times)[:-1], 1 / FPS, atol=1e-3)
    assert on_grid.mean() >= 0.9, "jittered arrivals not on the frame grid"


async def test_every_frame_in_order(scenario: Scenario) -> None:
    f = scenario.file
    stats = scenario.rec.stats
    stamps = [read_stamp(y) for y in f.lumas]
    assert stamps[-1] == scenario.sent - 1
    while len(stamps) > 1 and stamps[-2] == stamps[-1]:  # the last picture held to the end
        stamps.pop()
    assert all(a < b for a, b in zip(stamps, stamps[1:], strict=False)), stamps
    for y, i in zip(f.lumas, stamps, strict=False):  # the moving bar moved with them
        columns = y[H // 4 : H // 2].mean(axis=0)
        assert abs(int(np.argmax(columns > (BG + FG) / 2)) - bar_x(i)) <= 2
    missing = scenario.sent - len(stamps)
    assert missing == stats.video_frames_dropped_rate + stats.video_frames_dropped_backlog
    need_quiet(scenario)
    assert missing == 0, stats


async def test_audio_has_the_beeps_and_silence_between(scenario: Scenario) -> None:
    need_quiet(scenario)
    env = envelope(scenario.file.audio)
    for b in (*AVATAR_BEEPS, *SPEAKER_BEEPS):
        at = onset(env, b)
        assert abs(at - b) < SYNC_TOLERANCE, f"beep sent at {b}s is at {at:.3f}s in the file"
        mid = round((at + BEEP_MS / 2000) * 1000)
        assert env[mid - 20 : mid + 20].mean() > 0.2, f"beep at {b}s is weak"
    quiet = [(0.1, 0.7), (1.1, 1.3), (2.2, 2.5), (2.8, 3.0)]
    for lo, hi in quiet:
        assert env[round(lo * 1000) : round(hi * 1000)].max() < 0.01, f"noise in {lo}-{hi}s"
    stats = scenario.rec.stats
    assert stats.audio_chunks_dropped_backlog == stats.audio_chunks_dropped_lead == 0
    assert stats.audio_late_ms == 0


async def test_flash_and_beep_in_sync(scenario: Scenario) -> None:
    need_quiet(scenario)
    f = scenario.file
    env = envelope(f.audio)
    flashes = [t for t, y in zip(f.times, f.lumas, strict=True) if y[FLASH].mean() > 150]
    offsets = []
    for b in AVATAR_BEEPS:
        flash_at = min(t for t in flashes if t > b - 0.2)
        offsets.append(onset(env, b) - flash_at)
    logger.info(f"A/V offsets (audio - video) ms: {[round(o * 1000, 1) for o in offsets]}; "
                f"encode {scenario.rec.stats.encode_ms_per_frame:.2f} ms/frame (worker wall), "
                f"process CPU {scenario.cpu_s / scenario.sent * 1000:.2f} ms/frame all in")
    assert max(abs(o) for o in offsets) <= SYNC_TOLERANCE, offsets


async def test_sidecars(scenario: Scenario) -> None:
    path = scenario.file.path
    info = json.loads(path.with_suffix(".json").read_text())
    assert info["file"] == path.name and info["video"]["width"] == W
    assert abs(info["duration_s"] - scenario.span) < 0.05 * scenario.span
    assert info["stats"]["video_frames_encoded"] == scenario.rec.stats.video_frames_encoded
    vtt = path.with_suffix(".vtt").read_text()
    assert vtt.startswith("WEBVTT") and "presenter: hello there" in vtt
    assert "00:00:01.0" in vtt or "00:00:00.9" in vtt
    for f in (path, path.with_suffix(".json"), path.with_suffix(".vtt")):
        assert f.stat().st_mode & 0o777 == 0o600, f"{f.name} is readable by others"


# ------------------------------------------------------------------------ timing logic
def test_video_clock_grid_gap_and_rate() -> None:
    clock = VideoClock(25)
    rng = np.random.default_rng(1)
    pts = [clock.place(100 + i / 25 + (rng.uniform(-0.015, 0.015) if i else 0.0))
           for i in range(50)]
    assert pts == pytest.approx([i / 25 for i in range(50)])
    # a 1 s pause: the next frame starts a new grid where it arrived
    assert clock.place(100 + 50 / 25 + 1.0) == pytest.approx(3.0)
    assert clock.place(100 + 51 / 25 + 1.0) == pytest.approx(3.04)
    assert clock.gaps == 1
    # a burst of 5 at once keeps one (faster than fps), then the stream goes on
    burst = [clock.place(100 + 3.085) for _ in range(5)]
    assert burst.count(None) == 4 and clock.dropped == 4


def test_audio_mixer_jitter_gaps_sources_and_cut() -> None:
    m = AudioMixer(gap_tolerance=0.25, max_lead=0.25)
    chunk = np.full(480, 16_384, np.int16)  # 10 ms at 0.5
    rng = np.random.default_rng(2)
    for j in range(100):  # 1 s with up to 30 ms of arrival jitter: contiguous
        m.add("a", j / 100 + (rng.uniform(0, 0.03) if j else 0.0), chunk, AUDIO_RATE,
              live=True)
    for j in range(50):  # resumes after a 1 s pause: placed at its arrival
        m.add("a", 2.0 + j / 100, chunk, AUDIO_RATE, live=True)
    mic = np.full(160, 8_192, np.int16)  # 10 ms at 16 kHz, 0.25
    for j in range(100):
        m.add("mic", 0.5 + j / 100, mic, 16_000, live=True)
    out = m.mix(round(3.0 * AUDIO_RATE))
    assert out is not None and len(out) == 3 * AUDIO_RATE
    sec = AUDIO_RATE
    assert np.allclose(out[: sec // 2], 0.5)
    assert np.allclose(out[sec // 2 + 100 : sec - 100], 0.75, atol=0.01)  # summed
    assert np.allclose(out[round(1.6 * sec) : 2 * sec], 0.0)  # the pause is silence
    assert np.allclose(out[2 * sec : round(2.5 * sec)], 0.5)
    # playout audio (a TTS burst, 2 s delivered at once) is cut by an interruption
    for _ in range(200):
        m.add("tts", 3.0, chunk, AUDIO_RATE, live=False)
    m.cut(3.5)
    out = m.mix(round(5.0 * AUDIO_RATE))
    assert out is not None
    assert np.allclose(out[: sec // 2], 0.5) and np.allclose(out[sec // 2 :], 0.0)
    # a live source running far ahead of real time loses chunks
    for _ in range(60):
        m.add("b", 5.0, chunk, AUDIO_RATE, live=True)
    assert m.dropped_lead == 60 - 26


def test_audio_mixer_servo_keeps_live_sources_on_their_arrivals() -> None:
    chunk = np.full(480, 16_384, np.int16)
    sec = AUDIO_RATE
    # a 0.4 s stall of the pipeline: the backlog arrives at once and fills the hole
    m = AudioMixer()
    for j in range(300):
        t = j / 100
        m.add("a", 1.4 if 1.0 <= t < 1.4 else t, chunk, AUDIO_RATE, live=True)
    out = m.mix(3 * sec)
    assert out is not None and np.allclose(out, 0.5) and m.realigned == 0
    # a 0.5 s pause of the source (shorter than gap_tolerance): first closed up, then
    # moved back onto the arrivals within two servo windows
    m = AudioMixer()
    for j in range(400):
        t = j / 100 + (0.5 if j >= 100 else 0.0)
        m.add("a", t, chunk, AUDIO_RATE, live=True)
    out = m.mix(round(4.5 * sec))
    assert out is not None and m.realigned == 1
    silent = np.nonzero(out == 0.0)[0]
    assert len(silent) == sec // 2 and silent[-1] - silent[0] == len(silent) - 1  # one hole
    assert 1.0 * sec <= silent[0] <= 2.5 * sec  # after the pause, within two windows
    assert m.sources["a"].cursor == round(4.5 * sec)  # back on the arrivals


# ------------------------------------------------------------------------ robustness
async def test_slow_encoder_drops_but_never_stalls(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    original = Writer.encode_video

    def slow(self: Writer, pts: float, vf: av.VideoFrame) -> None:
        time.sleep(0.1)  # 10 fps at best
        original(self, pts, vf)

    monkeypatch.setattr(Writer, "encode_video", slow)
    rec = Recorder(path=tmp_path / "slow.mp4", max_backlog_seconds=0.4,
                   options=RecordingOptions(fps=FPS))
    frames = Frames(320, 180)
    worker, run = await start_pipeline(rec, settle=0.2)
    pace = Pacer()
    late = 0.0
    for i in range(int(1.5 * FPS)):
        await pace.until(i / FPS)
        late = max(late, time.monotonic() - pace.t0 - i / FPS)
        await worker.queue_frame(frames.make(i))
        for j in range(4):
            await worker.queue_frame(avatar_chunk(i * 4 + j))
    await worker.queue_frame(EndFrame())
    await asyncio.wait_for(run, 20)
    stats = rec.stats
    assert late < 0.25, f"the feeder fell {late * 1000:.0f} ms behind"  # blocking: 2+ s
    assert stats.video_frames_dropped_backlog > 0
    assert stats.video_frames_encoded + stats.video_frames_dropped_backlog >= int(1.5 * FPS)
    assert rec.path is not None and decode(rec.path).duration > 1.0


async def test_cancel_still_leaves_a_playable_file(tmp_path: Path) -> None:
    rec = Recorder(path=tmp_path / "cancel.mp4", options=RecordingOptions(fps=FPS))
    finished: list[Path | None] = []

    @rec.event_handler("on_recording_finished")
    async def _done(_: Recorder, path: Path | None, __: object) -> None:
        finished.append(path)

    frames = Frames(320, 180)
    worker, run = await start_pipeline(rec, settle=0.2)
    pace = Pacer()
    for i in range(25):
        await pace.until(i / FPS)
        await worker.queue_frame(frames.make(i))
        await worker.queue_frame(TTSAudioRawFrame(audio=tone(1920, AUDIO_RATE, 440.0),
                                                  sample_rate=AUDIO_RATE, num_channels=1,
                                                  context_id="c"))
    await worker.cancel()
    await asyncio.wait_for(run, 20)
    assert finished == [tmp_path / "cancel.mp4"]
    f = decode(tmp_path / "cancel.mp4")
    assert len(f.times) >= 24 and f.duration > 0.9
    assert envelope(f.audio)[100:900].mean() > 0.1  # the TTS audio played out
