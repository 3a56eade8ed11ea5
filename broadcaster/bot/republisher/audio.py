"""The audio side of the republisher: speech into one ``rtc.AudioSource``, in sync, interruptible.

Audio and video stay in sync because both are captured as they arrive (the avatar
delivers them in sync); continuous speech that falls more than ``max_audio_lag``
behind is dropped to restore lip sync, TTS bursts (faster than real time) queue.
Frames go to LiveKit inline when its queue has room (no task hop), else through a
queue in order. A barge-in ducks (``duck``) or mutes (``interrupt``) the avatar's
speech: the rest of the interrupted answer is published as silence, not left out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np
from livekit import rtc
from loguru import logger
from pipecat.audio.utils import create_stream_resampler, is_silence
from pipecat.frames.frames import (
    BotSpeakingFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    OutputAudioRawFrame,
    SpeechOutputAudioRawFrame,
)

from broadcaster.bot.caption_timing import SPEECH_RMS, block_rms
from broadcaster.bot.republisher.stats import RepublisherStats

BOT_VAD_STOP_SECS = 0.35  # same as pipecat's output transport
BOT_SPEAKING_PERIOD = 0.2


@dataclass
class QueuedAudio:
    """An audio frame waiting for LiveKit's queue, with when it entered the republisher."""

    frame: OutputAudioRawFrame
    entered: float
    """``time.monotonic()`` at entry."""


class AudioOut:
    """Captures audio frames into an audio source; mutes, ducks and reports speaking.

    ``signal`` is awaited with ``BotStartedSpeakingFrame`` / ``BotSpeakingFrame`` /
    ``BotStoppedSpeakingFrame`` as pipecat's output transport would send them, from
    what is published (only when ``speaking_frames`` is on).
    """

    def __init__(self, owner: object, stats: RepublisherStats, *, sample_rate: int,
                 channels: int, queue_ms: int, max_lag: float | None, speaking_frames: bool,
                 signal: Callable[[type[Frame]], Awaitable[None]]) -> None:
        self._owner = owner  # for log lines
        self.stats = stats
        self.sample_rate = sample_rate
        self.channels = channels
        self.queue_ms = queue_ms
        self._max_lag = max_lag
        self.speaking_frames = speaking_frames
        self._signal = signal
        self.source: rtc.AudioSource | None = None
        self._queue: asyncio.Queue[QueuedAudio] | None = None
        self._idle = False
        self._resampler = create_stream_resampler()
        self.muted = False
        """The avatar's speech is published as silence until its next answer starts."""
        self.ducked = False
        """Like muted, from a speech onset the VAD may still cancel."""
        self._speaking = False
        self._speech_last = 0.0
        self._speaking_frame_at = 0.0
        self.tap: Callable[[rtc.AudioFrame], None] | None = None
        """Also handed every captured frame (audience shards: broadcaster.bot.shard_fanout)."""

    def start(self, source: rtc.AudioSource | None) -> None:
        """Capture into ``source`` from now on; run :meth:`run` in a task alongside."""
        self.source = source
        self._queue = asyncio.Queue()

    async def drain(self) -> None:
        """Wait until queued speech has gone to LiveKit and played out."""
        if self._queue is not None:
            await self._queue.join()
        if self.source is not None:
            await self.source.wait_for_playout()

    def stop(self) -> None:
        """Publish nothing more (the source is the caller's to close)."""
        self._queue = None
        self.source = None

    async def offer(self, frame: OutputAudioRawFrame) -> OutputAudioRawFrame:
        """Publish ``frame`` (inline if LiveKit takes it at once, else queued, in order).

        Returns the frame as published: silence for the tail of an interrupted answer.
        Before :meth:`start` and after :meth:`stop` nothing is published.
        """
        self.stats.audio_frames_in += 1
        if (self.muted or self.ducked) and isinstance(frame, SpeechOutputAudioRawFrame):
            # The tail of an interrupted answer: published (and recorded) as silence,
            # not left out. Without packets a viewer's jitter buffer conceals the gap
            # by stretching the last speech (~50 ms more voice).
            self.stats.audio_frames_muted += 1
            frame = SpeechOutputAudioRawFrame(
                audio=bytes(len(frame.audio)), sample_rate=frame.sample_rate,
                num_channels=frame.num_channels)
        queue = self._queue
        if queue is not None:
            if self._idle and queue.empty() and self._fits(frame):
                await self._publish(frame, time.monotonic())  # no task hop
            else:  # keep order behind what is queued; never block video on audio
                queue.put_nowait(QueuedAudio(frame, time.monotonic()))
        return frame

    async def run(self) -> None:
        """Publish what could not go inline (TTS bursts that fill LiveKit's queue)."""
        queue = self._queue
        assert queue is not None
        while True:
            self._idle = True
            queued = await queue.get()
            self._idle = False
            try:
                await self._publish(queued.frame, queued.entered)
            finally:
                queue.task_done()

    def duck(self) -> None:
        """Silence what is about to play: the speaker may be barging in.

        Our own queue (TTS bursts, not the avatar's real-time speech) is kept until
        the VAD decides.
        """
        self.ducked = True
        if self.source is not None:
            self.source.clear_queue()

    def interrupt(self, frame: Frame) -> None:
        """Stop the avatar's speech for viewers: drop what is queued and mute.

        The avatar keeps sending the interrupted answer for a moment (audio in flight);
        viewers must not hear it, so speech stays muted until the next answer starts.
        """
        if not self.muted and (self._speaking or not self.speaking_frames):
            logger.info(f"{self._owner}: {type(frame).__name__}: the avatar's speech is muted "
                        "until its next answer")
        self.clear()
        self.muted, self.ducked = True, False

    def clear(self) -> None:
        """Drop everything not played yet, ours and LiveKit's."""
        if self._queue is not None:
            while not self._queue.empty():
                self._queue.get_nowait()
                self._queue.task_done()
        if self.source is not None:
            self.source.clear_queue()

    def _fits(self, frame: OutputAudioRawFrame) -> bool:
        """LiveKit's audio queue takes this frame without waiting (so it can go inline)."""
        source = self.source
        if source is None or frame.sample_rate <= 0:
            return False
        duration = frame.num_frames / frame.sample_rate
        return source.queued_duration + duration < self.queue_ms / 1000 - 0.05

    async def _pcm_for_source(self, frame: OutputAudioRawFrame) -> bytes:
        audio = frame.audio
        if frame.num_channels != self.channels:
            samples = np.frombuffer(audio, np.int16).reshape(-1, frame.num_channels)
            mono = samples.mean(axis=1).astype(np.int16)
            audio = np.repeat(mono[:, None], self.channels, axis=1).tobytes()
        if frame.sample_rate != self.sample_rate:
            audio = await self._resampler.resample(audio, frame.sample_rate, self.sample_rate)
        return audio

    async def _publish(self, frame: OutputAudioRawFrame, entered: float) -> None:
        source = self.source
        if source is None:
            return
        lag = time.monotonic() - entered + source.queued_duration
        self.stats.last_audio_lag_ms = lag * 1e3
        if (
            self._max_lag is not None
            and isinstance(frame, SpeechOutputAudioRawFrame)
            and lag > self._max_lag
        ):
            self.stats.audio_frames_dropped += 1
            return
        if frame.sample_rate == self.sample_rate and frame.num_channels == self.channels:
            pcm = frame.audio  # the avatar's 48 kHz mono: as is
        else:
            pcm = await self._pcm_for_source(frame)
        samples = len(pcm) // (2 * self.channels)
        if samples == 0:
            return
        captured = rtc.AudioFrame(pcm, self.sample_rate, self.channels, samples)
        try:
            await source.capture_frame(captured)
        except Exception as e:
            logger.error(f"{self._owner}: audio capture failed: {e}")
            return
        if self.tap is not None:
            self.tap(captured)
        self.stats.audio_frames_published += 1
        if self.speaking_frames:
            signal = self._speaking_signal(pcm)
            if signal is not None:
                await self._signal(signal)

    def _speaking_signal(self, pcm: bytes) -> type[Frame] | None:
        """Pipecat's output-transport bot-speaking signals, from what we publish.

        Speaking starts at speech loudness (``SPEECH_RMS``, as the captions measure the
        TTS audio), not at pipecat's silence peak: a faint sound before the voice would
        start it early and the captions anchored on it with it.
        """
        now = time.monotonic()
        if not is_silence(pcm):
            if not self._speaking and block_rms(np.frombuffer(pcm, np.int16)) < SPEECH_RMS:
                return None
            self._speech_last = now
            if not self._speaking:
                self._speaking = self.stats.speaking = True
                return BotStartedSpeakingFrame
            if now - self._speaking_frame_at >= BOT_SPEAKING_PERIOD:
                self._speaking_frame_at = now
                return BotSpeakingFrame
        elif self._speaking and now - self._speech_last > BOT_VAD_STOP_SECS:
            self._speaking = self.stats.speaking = False
            return BotStoppedSpeakingFrame
        return None
