"""The UNMODIFIED pipecat HeyGenVideoService (LIVE_AVATAR) drives the local avatar service.

Real parts only: a real livekit-server, the avatar service as a child process,
pipecat's own client over HTTP, WebSocket and WebRTC. Speech is Debian flite's.
One pipecat session walks through idle -> speech -> silence -> interrupted speech,
so the suite pays for one session set-up.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import aiohttp
import numpy as np
import pytest
from loguru import logger
from pipecat.frames.frames import (
    Frame,
    OutputImageRawFrame,
    OutputTransportReadyFrame,
    SpeechOutputAudioRawFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.heygen.api_liveavatar import (
    LiveAvatarApi,
    LiveAvatarNewSessionRequest,
    VideoEncoding,
    VideoSettings,
)
from pipecat.services.heygen.client import ServiceType
from pipecat.services.heygen.video import HeyGenVideoService
from pipecat.workers.runner import WorkerRunner

from broadcaster.avatar.renderer import FaceRenderer
from broadcaster.config import Settings
from tests.fixtures_avatar import SPEECH_RATE

DARK_LUMA = 70  # an open mouth's inside is darker than anything else in the mouth box
CLOSED = 0.004  # dark share of the mouth box with the mouth shut (codec noise allowed)
BLOCK = 0.010  # seconds per audio analysis block
VOICED_DB = -45.0


@dataclass
class Received:
    images: list[tuple[float, tuple[int, int], float]] = field(default_factory=list)
    """(arrival time, size, dark share of the mouth box)"""
    audio: list[tuple[float, np.ndarray, int]] = field(default_factory=list)
    """(arrival time, int16 samples, sample rate)"""


class Collector(FrameProcessor):
    """Pipeline sink: measures what HeyGenVideoService pushes downstream."""

    def __init__(self, mouth_box: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.got = Received()
        self._box = mouth_box

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        now = time.monotonic()
        if isinstance(frame, OutputImageRawFrame):
            w, h = frame.size
            dark = float("nan")
            if frame.format == "RGB" and len(frame.image) == w * h * 3:
                x, y, bw, bh = self._box
                img = np.frombuffer(frame.image, np.uint8).reshape(h, w, 3)
                region = img[y : y + bh, x : x + bw].astype(np.float32)
                luma = region @ np.array([0.299, 0.587, 0.114], np.float32)
                dark = float((luma < DARK_LUMA).mean())
            self.got.images.append((now, (w, h), dark))
        elif isinstance(frame, SpeechOutputAudioRawFrame):
            samples = np.frombuffer(frame.audio, dtype=np.int16).copy()
            self.got.audio.append((now, samples, frame.sample_rate))
        await self.push_frame(frame, direction)


def _block_db(samples: np.ndarray, rate: int) -> np.ndarray:
    n = int(rate * BLOCK)
    usable = samples[: samples.size // n * n].astype(np.float64).reshape(-1, n)
    power = (usable**2).mean(axis=1) / 32768.0**2
    return 10 * np.log10(np.maximum(power, 1e-12))


def _voiced_span(samples: np.ndarray, rate: int) -> float:
    """Seconds from the first to the last voiced 10 ms block."""
    voiced = np.flatnonzero(_block_db(samples, rate) > VOICED_DB)
    return 0.0 if voiced.size == 0 else (voiced[-1] - voiced[0] + 1) * BLOCK


def _energy(samples: np.ndarray, rate: int) -> float:
    """Signal energy in (full scale)^2 * seconds: independent of the sample rate."""
    x = samples.astype(np.float64) / 32768.0
    return float((x**2).sum() / rate)


def _audio_between(got: Received, t0: float, t1: float) -> tuple[np.ndarray, int]:
    chunks = [(s, r) for t, s, r in got.audio if t0 <= t < t1]
    if not chunks:
        return np.zeros(0, np.int16), 48_000
    rates = {r for _, r in chunks}
    assert len(rates) == 1, rates
    return np.concatenate([s for s, _ in chunks]), rates.pop()


def _voiced_times(got: Received, t0: float, t1: float) -> list[float]:
    """Arrival times of received audio frames that carry speech."""
    out = []
    for t, s, r in got.audio:
        if t0 <= t < t1 and s.size and float(_block_db(s, r).max(initial=-120)) > VOICED_DB:
            out.append(t)
    return out


def _lip_sync_lag(got: Received, t0: float, t1: float) -> tuple[float, float]:
    """(lag in s of the mouth behind the voice, correlation) over [t0, t1] at the receiver.

    Both series are put on a 10 ms grid: the loudness of the audio frames that
    arrived in each cell, and the dark share of the mouth in the latest frame.
    """
    grid = np.arange(t0, t1, BLOCK)
    loud = np.full(grid.size, -120.0)
    for t, samples, rate in got.audio:
        i = int((t - t0) / BLOCK)
        if 0 <= i < grid.size and samples.size:
            loud[i] = max(loud[i], float(_block_db(samples, rate).max(initial=-120)))
    loud = np.clip((loud + 50) / 35, 0, 1)
    times = np.array([t for t, _, _ in got.images])
    darks = np.array([d for _, _, d in got.images])
    idx = np.searchsorted(times, grid, side="right") - 1
    mouth = np.where(idx >= 0, darks[np.maximum(idx, 0)], 0.0)
    a = (loud - loud.mean()) / (loud.std() or 1)
    m = (mouth - mouth.mean()) / (mouth.std() or 1)
    best = (0.0, -1.0)
    for lag in range(-30, 31):  # +-300 ms
        if lag >= 0:
            c = float(np.mean(a[: a.size - lag] * m[lag:]))
        else:
            c = float(np.mean(a[-lag:] * m[: m.size + lag]))
        if c > best[1]:
            best = (lag * BLOCK, c)
    return best


async def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


async def _speak(worker: PipelineWorker, speech: np.ndarray) -> None:
    """Feed an utterance the way a TTS service does: faster than real time, 20 ms frames."""
    step = SPEECH_RATE // 50
    frames: list[Frame] = [TTSStartedFrame()]
    for i in range(0, speech.size, step):
        chunk = speech[i : i + step].tobytes()
        frames.append(TTSAudioRawFrame(audio=chunk, sample_rate=SPEECH_RATE, num_channels=1))
    frames.append(TTSStoppedFrame())
    await worker.queue_frames(frames)


async def _agent_states(http: aiohttp.ClientSession, base: str, s: Settings) -> list[str]:
    """Agent states of the started sessions, from the service's debug listing."""
    async with http.get(f"{base}/sessions", headers={"X-API-KEY": s.avatar_api_key}) as resp:
        sessions = (await resp.json())["data"]["sessions"]
    return [x["agent_state"] for x in sessions if x["state"] == "started"]


@pytest.fixture(scope="module")
def mouth_box(avatar_settings: Settings) -> tuple[int, int, int, int]:
    s = avatar_settings
    return FaceRenderer(s.video_width, s.video_height).mouth_box()


async def test_pipecat_heygen_service_drives_local_avatar(
    avatar_service: str,
    avatar_settings: Settings,
    speech_clip: np.ndarray,
    mouth_box: tuple[int, int, int, int],
) -> None:
    s = avatar_settings
    LiveAvatarApi.BASE_URL = avatar_service  # pipecat reads the class attribute per request
    collector = Collector(mouth_box)
    async with aiohttp.ClientSession() as http:
        heygen = HeyGenVideoService(
            api_key=s.avatar_api_key,
            session=http,
            service_type=ServiceType.LIVE_AVATAR,
            session_request=LiveAvatarNewSessionRequest(
                avatar_id=s.effective_avatar_id,
                video_settings=VideoSettings(encoding=VideoEncoding.VP8),
            ),
        )
        worker = PipelineWorker(
            Pipeline([heygen, collector]),
            params=PipelineParams(audio_out_sample_rate=SPEECH_RATE),
            idle_timeout_secs=None,
            enable_rtvi=False,
        )
        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        run = asyncio.create_task(runner.run())
        got = collector.got
        try:
            await worker.queue_frame(OutputTransportReadyFrame())
            await _wait_for(lambda: len(got.images) > 0, 25, "the first avatar frame")

            # --- idle: size, frame rate, mouth shut -----------------------------------
            await asyncio.sleep(1.0)  # let the stream settle
            idle0 = time.monotonic()
            await asyncio.sleep(3.0)
            idle1 = time.monotonic()
            idle = [im for im in got.images if idle0 <= im[0] < idle1]
            assert {im[1] for im in got.images} == {(s.video_width, s.video_height)}
            idle_fps = len(idle) / (idle1 - idle0)
            assert abs(idle_fps - s.video_fps) <= 0.1 * s.video_fps, idle_fps
            assert max(im[2] for im in idle) <= CLOSED, "mouth open while idle"

            # --- speech ----------------------------------------------------------------
            spoken = speech_clip.size / SPEECH_RATE
            sent_at = time.monotonic()
            await _speak(worker, speech_clip)
            await asyncio.sleep(spoken + 3.0)
            done = time.monotonic()
            received, rate = _audio_between(got, sent_at, done)
            energy_ratio = _energy(received, rate) / _energy(speech_clip, SPEECH_RATE)
            span_sent = _voiced_span(speech_clip, SPEECH_RATE)
            span_got = _voiced_span(received, rate)
            voiced = _voiced_times(got, sent_at, done)
            assert voiced, "no speech came back"
            first_voice, last_voice = voiced[0], voiced[-1]
            latency = first_voice - sent_at
            during = [im[2] for im in got.images if first_voice + 0.2 <= im[0] <= last_voice - 0.2]
            after = [im[2] for im in got.images if last_voice + 0.4 <= im[0] <= done]
            speech_fps = len([im for im in got.images if sent_at <= im[0] < done]) / (
                done - sent_at
            )
            lag, corr = _lip_sync_lag(got, first_voice - 0.3, last_voice + 0.3)
            logger.info(
                "avatar: speech {:.2f} s sent, {:.2f} s voiced back, energy ratio {:.3f}, "
                "first audio after {:.0f} ms, fps idle {:.2f} / speaking {:.2f}, "
                "mouth vs voice at the receiver: lag {:+.0f} ms (correlation {:.2f})",
                span_sent, span_got, energy_ratio, latency * 1000, idle_fps, speech_fps,
                lag * 1000, corr,
            )
            assert energy_ratio >= 0.9, energy_ratio
            assert abs(span_got - span_sent) <= 0.1 * span_sent, (span_got, span_sent)
            assert abs(speech_fps - s.video_fps) <= 0.1 * s.video_fps, speech_fps
            assert during and max(during) > 0.02, "the mouth did not open while speaking"
            assert len({round(d, 3) for d in during}) >= 5, "the mouth did not move"
            assert after and max(after) <= CLOSED, "the mouth stayed open after speech"
            assert corr > 0.3 and abs(lag) <= 0.12, (lag, corr)  # visibly in sync

            # --- interrupt -------------------------------------------------------------
            t0 = time.monotonic()
            await _speak(worker, speech_clip)
            await _wait_for(lambda: bool(_voiced_times(got, t0, time.monotonic())), 5,
                            "the second utterance")
            await asyncio.sleep(1.5)
            cut = time.monotonic()
            await worker.queue_frame(UserStartedSpeakingFrame())
            await asyncio.sleep(1.5)
            assert "listening" in await _agent_states(http, avatar_service, s)
            await worker.queue_frame(UserStoppedSpeakingFrame())
            last_after_cut = max(_voiced_times(got, cut, time.monotonic()), default=cut)
            audio_stop_ms = (last_after_cut - cut) * 1000
            images_after = [(t, d) for t, _, d in got.images if t >= cut]
            open_after = [t for t, d in images_after if d > CLOSED]
            mouth_stop_ms = ((max(open_after) - cut) if open_after else 0.0) * 1000
            logger.info(
                "avatar: interrupt -> speech silent after {:.0f} ms, mouth shut after {:.0f} ms",
                audio_stop_ms, mouth_stop_ms,
            )
            assert audio_stop_ms <= 400, audio_stop_ms
            assert mouth_stop_ms <= 400, mouth_stop_ms
        finally:
            await worker.cancel()
            await asyncio.wait_for(run, 20)
