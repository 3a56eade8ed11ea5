"""Per-stage reply latency inside the bot: a pipecat observer.

One *turn* runs from the speaker's last word to the first avatar video frame of
the answer captured into LiveKit. The observer timestamps, from the frames it
sees pushed (first push only, so a frame forwarded by several processors counts
once):

====================  =============================================================
moment                frame
====================  =============================================================
speech end            ``VADUserStoppedSpeakingFrame.timestamp - stop_secs`` (the VAD
                      waits ``stop_secs`` of silence before it calls the utterance over)
VAD stop              ``VADUserStoppedSpeakingFrame`` (its own wall-clock timestamp)
transcript            the last final ``TranscriptionFrame`` before the answer
responder text        first ``LLMTextFrame`` after the VAD stop (our FAQ responder and
                      pipecat's LLM services both emit it)
TTS audio             first ``TTSAudioRawFrame`` after that
avatar speaks         first ``SpeechOutputAudioRawFrame`` (the avatar's audio out of
                      ``HeyGenVideoService``) as loud as ``speech_rms`` after that:
                      the avatar's mouth opens with its audio, so this stands for
                      "first avatar frame with the mouth open"
frame published       first avatar video frame pushed into the republisher after
                      that, plus the republisher's measured hop (``stats.last_hop_ms``)
====================  =============================================================

Each complete turn is observed into :class:`broadcaster.metrics.BotMetrics` (the
``broadcaster_bot_stage_seconds`` and ``broadcaster_bot_reply_seconds``
histograms) and logged as one line, ``reply latency <total> s: <stages> | <json>``.
A turn the speaker talks over (barge-in) or that never reaches the avatar within
``turn_timeout`` is counted as abandoned.

pipecat's own ``UserBotLatencyObserver`` ends at ``BotStartedSpeakingFrame``, which
an output transport sends when it plays audio; it knows nothing of the avatar
round trip or the video, which is most of our latency, hence this observer.

Push times come from the pipeline clock (``FramePushed.timestamp``), converted to
wall-clock time, so the observer's own queueing delay does not count.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from loguru import logger
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    LLMTextFrame,
    OutputImageRawFrame,
    SpeechOutputAudioRawFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.observers.base_observer import BaseObserver, FramePushed

from broadcaster.metrics import STAGES, BotMetrics


@dataclass
class Turn:
    """Wall-clock moments (time.time() seconds) of one turn; None until seen."""

    vad_stop: float
    stop_secs: float
    transcript: float | None = None
    text: float | None = None
    tts: float | None = None
    avatar: float | None = None
    published: float | None = None
    audio_out: float | None = None
    """The republisher started publishing non-silent audio (BotStartedSpeakingFrame)."""
    last_stage: str = "publish"
    """Where the turn ends: "publish", or "tts" in direct mode (the avatar's media never
    passes through the bot there)."""

    @property
    def speech_end(self) -> float:
        """When the speaker actually stopped: the VAD's stop minus its ``stop_secs``."""
        return self.vad_stop - self.stop_secs

    def stages(self) -> dict[str, float]:
        """Seconds per stage (the ones reached so far); they add up to :meth:`total`."""
        out = {"endpointing": self.stop_secs}
        if self.text is None:
            return out
        heard = max(self.transcript or self.vad_stop, self.vad_stop)
        out["transcription"] = heard - self.vad_stop
        out["responder"] = self.text - heard
        chain = (("tts", self.text, self.tts), ("avatar", self.tts, self.avatar),
                 ("publish", self.avatar, self.published))
        for name, start, end in chain:
            if start is None or end is None:
                break
            out[name] = end - start
        return out

    def total(self) -> float | None:
        """Return the whole reply latency, or None while the turn is incomplete."""
        end = self.tts if self.last_stage == "tts" else self.published
        return None if end is None else end - self.speech_end


def _rms(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype=np.int16)
    if samples.size == 0:
        return 0.0
    return float(np.sqrt(np.mean(samples.astype(np.float32) ** 2)))


class LatencyObserver(BaseObserver):
    """Times each reply turn by stage; see the module docstring.

    Args:
        metrics: where complete and abandoned turns are recorded (optional).
        republisher: the ``LiveKitRepublisher``; its last hop is added to the moment a
            frame enters it (optional: without it the entry time counts as published).
        stop_secs: the VAD's stop_secs, used when the VAD frame does not carry it.
        speech_rms: RMS (int16) above which avatar audio counts as speech; 190 is
            -44.6 dBFS, the loudness at which the local avatar opens its mouth to 0.1.
        turn_timeout: seconds after the VAD stop after which an unfinished turn is
            abandoned.
        last_stage: "publish", or "tts" when the avatar's media does not pass through
            the bot (direct mode): a turn then ends at its first TTS audio.
        on_turn: called with each complete :class:`Turn`.
    """

    def __init__(
        self,
        metrics: BotMetrics | None = None,
        *,
        republisher: Any = None,
        stop_secs: float = 0.2,
        speech_rms: float = 190.0,
        turn_timeout: float = 30.0,
        last_stage: str = "publish",
        on_turn: Callable[[Turn], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(observe_every_push=False, **kwargs)
        self.last_stage = last_stage
        self.metrics = metrics
        self.republisher = republisher
        self.stop_secs = stop_secs
        self.speech_rms = speech_rms
        self.turn_timeout = turn_timeout
        self.on_turn = on_turn
        self.turns: list[Turn] = []
        self.abandoned = 0
        self._turn: Turn | None = None
        self._last_transcript: float | None = None
        self._offset_ns: int | None = None

    def _wall(self, pipeline_ns: int) -> float:
        """Wall-clock seconds of a pipeline-clock push time.

        ``time.time_ns() - pipeline_ns`` is the clock offset plus this observer's queue
        delay; its minimum over all pushes converges to the offset.
        """
        now = time.time_ns()
        if pipeline_ns <= 0:
            return now / 1e9
        offset = now - pipeline_ns
        if self._offset_ns is None or offset < self._offset_ns:
            self._offset_ns = offset
        return (pipeline_ns + self._offset_ns) / 1e9

    async def on_push_frame(self, data: FramePushed) -> None:
        """Time the turn's stage boundaries as frames pass."""
        frame = data.frame
        t = self._wall(data.timestamp)
        turn = self._turn
        if turn is not None and t - turn.vad_stop > self.turn_timeout:
            self._abandon("no avatar frame within the timeout")
            turn = None

        if isinstance(frame, OutputImageRawFrame):
            if turn is not None and turn.avatar is not None and turn.published is None:
                hop = 0.0
                if self.republisher is not None:
                    hop = getattr(self.republisher.stats, "last_hop_ms", 0.0) / 1e3
                turn.published = t + hop
                self._finish(turn)
        elif isinstance(frame, SpeechOutputAudioRawFrame):
            if (turn is not None and turn.tts is not None and turn.avatar is None
                    and _rms(frame.audio) >= self.speech_rms):
                turn.avatar = t
        elif isinstance(frame, TTSAudioRawFrame):
            if turn is not None and turn.text is not None and turn.tts is None:
                turn.tts = t
                if turn.last_stage == "tts":
                    self._finish(turn)
        elif isinstance(frame, LLMTextFrame):
            if turn is not None and turn.text is None:
                turn.text = t
                turn.transcript = self._last_transcript
        elif isinstance(frame, TranscriptionFrame):
            self._last_transcript = t
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            stop_secs = frame.stop_secs or self.stop_secs
            if turn is None:
                self._turn = Turn(vad_stop=frame.timestamp, stop_secs=stop_secs,
                                  last_stage=self.last_stage)
            elif turn.text is None:  # the speaker paused and went on: the last stop counts
                turn.vad_stop, turn.stop_secs = max(turn.vad_stop, frame.timestamp), stop_secs
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            if turn is not None:
                if turn.text is None:
                    self._turn = None  # still the same question
                else:
                    self._abandon("the speaker talked over the answer")
        elif isinstance(frame, BotStartedSpeakingFrame):
            if turn is not None and turn.tts is not None and turn.audio_out is None:
                turn.audio_out = t

    def _abandon(self, why: str) -> None:
        turn, self._turn = self._turn, None
        if turn is None:
            return
        self.abandoned += 1
        logger.info(f"reply turn abandoned ({why}): reached "
                    f"{', '.join(turn.stages())}")
        if self.metrics is not None:
            self.metrics.observe_stages({}, None)

    def _finish(self, turn: Turn) -> None:
        self._turn = None
        self.turns.append(turn)
        stages = turn.stages()
        total = turn.total()
        if self.metrics is not None:
            self.metrics.observe_stages(stages, total)
        record = {"total": total, "stages": stages, "moments": asdict(turn)}
        parts = " + ".join(f"{name} {stages[name]:.3f}" for name in STAGES if name in stages)
        logger.info(f"reply latency {total:.3f} s: {parts} | {json.dumps(record)}")
        if self.on_turn is not None:
            self.on_turn(turn)
